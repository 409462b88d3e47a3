#!/usr/bin/env python3
"""Generates src/obs/status_page.c from src/obs/status_page.html (the source of
the status page served at /). Run after editing the HTML:

    python3 src/obs/gen_status_page.py

unit.test_http fails when the two disagree, so a forgotten run is caught.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def c_literal(line):
    out = []
    for ch in line:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def main():
    with open(os.path.join(HERE, "status_page.html"), encoding="utf-8") as f:
        html = f.read()
    lines = html.splitlines(keepends=True)
    body = "\n".join("    " + c_literal(l) for l in lines)
    with open(os.path.join(HERE, "status_page.c"), "w", encoding="utf-8") as f:
        f.write("/*\n"
                " * status_page.c - the live status page served at / (obs/http.c): one\n"
                " * self-contained HTML document, inline CSS and JS, no external resources.\n"
                " *\n"
                " * GENERATED from status_page.html by gen_status_page.py: edit the HTML and\n"
                " * re-run the script (unit.test_http checks that the two agree).\n"
                " */\n"
                '#include "obs/http.h"\n\n'
                "const char ks_status_page_html[] =\n")
        f.write(body)
        f.write(";\n")


if __name__ == "__main__":
    main()
