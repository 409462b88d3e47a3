#!/usr/bin/env python3
"""make_reference.py - the offline side of the feature parity test.

Generates a few thousand synthetic events, computes every feature of
parity.yaml the way a data scientist would offline (numpy float64 arrays,
sklearn.utils.murmurhash3_32, Python's datetime), and writes

  tests/features/parity.yaml     the input fields and the feature list (kscore config syntax)
  tests/features/reference.tsv   inputs and expected feature columns, one row per event

tests/unit/test_features_parity.c feeds the same inputs through ks_features_compute
and compares column by column: bit for bit for IEEE-exact operations (+ - * /,
sqrt, comparisons, min/max/clip, floor/ceil/round, maps, hashes, timestamps),
within 1 ulp for the transcendental functions (log*, exp*, pow). numpy on a CPU
with AVX-512 evaluates those with its own SIMD kernels, which differ from the
platform libm in the last bit for some inputs; run with
    NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL"
(or on a CPU without AVX-512) and numpy calls libm, and every column matches
bit for bit. The TSV's first line records which numpy and dispatch made it.

Usage (from the repository root; needs numpy and scikit-learn, e.g. .venv):
    .venv/bin/python tests/features/make_reference.py [--rows N] [--seed S]

Output is deterministic for a given seed, numpy version and CPU dispatch.
"""
import argparse
import math
import os
import random
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import sklearn
from sklearn.utils import murmurhash3_32

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Input fields: name -> kscore type.
FIELDS = {
    "amount": "number",
    "count": "number",
    "age": "number",
    "flag": "bool",
    "mcc": "string",
    "user": "string",
    "level": "number",
    "ts_s": "number",
    "ts_ms": "number",
    "ts_iso": "string",
}

MCC_VALUES = ["grocery", "travel", "online", "fuel", "gambling", "Grocery", "unknown", ""]
USER_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/ é日本ß€😀"


def gen_rows(n, rng):
    """Synthetic events: dicts of field -> value, None = missing, 'null' kept apart."""
    rows = []
    for i in range(n):
        r = {}
        u = rng.random()
        if u < 0.08:
            r["amount"] = None
        elif u < 0.10:
            r["amount"] = "null"
        elif u < 0.14:
            r["amount"] = 0.0
        elif u < 0.16:
            r["amount"] = rng.choice([-0.0, 1e-310, 5e-324, 1e300, 1.7976931348623157e308, 709.0,
                                      710.0, -745.0, 1e-17, 0.5, 1.0, 2.0])
        elif u < 0.22:
            r["amount"] = -rng.lognormvariate(0, 2)
        else:
            r["amount"] = rng.lognormvariate(3, 2)
        r["count"] = None if rng.random() < 0.1 else float(rng.randint(0, 30))
        r["age"] = None if rng.random() < 0.05 else rng.uniform(0, 3000)
        f = rng.random()
        r["flag"] = None if f < 0.1 else (f < 0.55)
        r["mcc"] = None if rng.random() < 0.08 else rng.choice(MCC_VALUES)
        if rng.random() < 0.05:
            r["user"] = None
        else:
            r["user"] = "".join(rng.choice(USER_ALPHABET) for _ in range(rng.randint(0, 20)))
        r["level"] = None if rng.random() < 0.1 else rng.choice([1.0, 2.0, 2.5, 3.0, 4.0, -0.0])
        # seconds: 1950..2100, fractional; milliseconds: integers
        r["ts_s"] = None if rng.random() < 0.05 else rng.uniform(-631152000, 4102444800)
        if rng.random() < 0.1:
            r["ts_s"] = float(math.floor(r["ts_s"] or 0))
        r["ts_ms"] = None if rng.random() < 0.05 else float(rng.randint(-631152000000, 4102444800000))
        r["ts_iso"] = None if rng.random() < 0.05 else gen_iso(rng)
        rows.append(r)
    return rows


def gen_iso(rng):
    t = EPOCH + timedelta(seconds=rng.randint(-631152000, 4102444800))
    form = rng.randint(0, 7)
    if form == 0:
        return t.strftime("%Y-%m-%d")
    if form == 1:
        return t.strftime("%Y-%m-%dT%H:%M")
    if form == 2:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    if form == 3:
        digits = rng.randint(1, 9)
        frac = "".join(rng.choice("0123456789") for _ in range(digits))
        return t.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice([".", ","]) + frac + "Z"
    # with an offset
    minutes = rng.randint(-23 * 60 - 59, 23 * 60 + 59)
    if form == 4:
        minutes = int(minutes / 60) * 60  # whole hours, toward zero
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    local = t + timedelta(minutes=minutes)
    base = local.strftime("%Y-%m-%dT%H:%M:%S")
    if form == 4:
        return base + "%s%02d" % (sign, hh)
    if form == 5:
        return base + "%s%02d%02d" % (sign, hh, mm)
    return base + "%s%02d:%02d" % (sign, hh, mm)


# ---- offline feature definitions: (name, kscore spec, numpy function, tolerance)

def col(rows, name):
    """A float64 column the way pandas would hold it: missing/null -> NaN, bool -> 1/0."""
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        v = r[name]
        out[i] = np.nan if v is None or v == "null" else float(v)
    return out


def strings(rows, name):
    return [None if r[name] in (None, "null") else r[name] for r in rows]


def where_nan(x, default):
    return np.where(np.isnan(x), default, x)


def np_map(values, mapping, default=np.nan):
    """pandas' s.map(mapping).fillna(default)."""
    return np.array([mapping.get(v, default) if v is not None else default for v in values],
                    dtype=np.float64)


def hash_col(values, buckets, seed=0):
    return np.array([np.nan if v is None else murmurhash3_32(v, seed=seed, positive=True) % buckets
                     for v in values], dtype=np.float64)


def time_col(rows, name, unit, what):
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        v = r[name]
        if v is None:
            out[i] = np.nan
            continue
        if isinstance(v, str):
            d = datetime.fromisoformat(v)
            if d.tzinfo is None:
                d = d.replace(tzinfo=timezone.utc)
            d = d.astimezone(timezone.utc)
        elif unit == "ms":
            d = EPOCH + timedelta(milliseconds=int(v))
        else:
            d = EPOCH + timedelta(seconds=math.floor(v))
        out[i] = d.hour if what == "hour" else d.weekday()
    return out


def features(rows):
    a, c, age = col(rows, "amount"), col(rows, "count"), col(rows, "age")
    flag, lvl = col(rows, "flag"), col(rows, "level")
    mcc, user = strings(rows, "mcc"), strings(rows, "user")
    with np.errstate(all="ignore"):
        F = [
            ("amount", '{name: amount, expr: amount}', a, "exact"),
            ("log1p_amount", '{name: log1p_amount, expr: "log1p(amount)"}', np.log1p(a), "ulp"),
            ("log_amount", '{name: log_amount, expr: "log(amount)"}', np.log(a), "ulp"),
            ("log2_age", '{name: log2_age, expr: "log2(age)"}', np.log2(age), "ulp"),
            ("log10_amount", '{name: log10_amount, expr: "log10(amount)"}', np.log10(a), "ulp"),
            ("exp_amount", '{name: exp_amount, expr: "exp(amount / 100)"}', np.exp(a / 100), "ulp"),
            ("expm1_amount", '{name: expm1_amount, expr: "expm1(amount / 1000)"}',
             np.expm1(a / 1000), "ulp"),
            ("pow_amount", '{name: pow_amount, expr: "pow(amount, 0.3)"}', np.power(a, 0.3), "ulp"),
            ("pow_op", '{name: pow_op, expr: "age ** 1.5"}', age ** 1.5, "ulp"),
            ("sqrt_amount", '{name: sqrt_amount, expr: "sqrt(amount)"}', np.sqrt(a), "exact"),
            ("sqrt_op", '{name: sqrt_op, expr: "amount ** 0.5"}', a ** 0.5, "exact"),
            ("recip", '{name: recip, expr: "count ** -1"}', c ** -1, "exact"),
            ("ratio", '{name: ratio, expr: "amount / count"}', a / c, "exact"),
            ("poly", '{name: poly, expr: "amount * 0.01 + count ** 2 - 3 / (age + 1)"}',
             a * 0.01 + c ** 2 - 3 / (age + 1), "exact"),
            ("neg_square", '{name: neg_square, expr: "-amount ** 2"}', -(a ** 2), "exact"),
            ("min3", '{name: min3, expr: "min(amount, count * 10, 500)"}',
             np.minimum(np.minimum(a, c * 10), 500), "exact"),
            ("max2", '{name: max2, expr: "max(amount, age)"}', np.maximum(a, age), "exact"),
            ("clip", '{name: clip, expr: "clip(amount, 0, 1000)"}', np.clip(a, 0, 1000), "exact"),
            ("gt", '{name: gt, expr: "amount > 1000"}', (a > 1000).astype(np.float64), "exact"),
            ("eq", '{name: eq, expr: "count == 0"}', (c == 0).astype(np.float64), "exact"),
            ("ne", '{name: ne, expr: "amount != amount"}', (a != a).astype(np.float64), "exact"),
            ("le", '{name: le, expr: "age <= 30"}', (age <= 30).astype(np.float64), "exact"),
            ("logic", '{name: logic, expr: "amount > 100 and not flag or count >= 25"}',
             np.logical_or(np.logical_and(a > 100, np.logical_not(flag)), c >= 25)
             .astype(np.float64), "exact"),
            ("if_flag", '{name: if_flag, expr: "if(flag, amount, -amount)"}',
             np.where(flag, a, -a), "exact"),
            ("abs", '{name: abs, expr: "abs(amount - 100)"}', np.abs(a - 100), "exact"),
            ("floor", '{name: floor, expr: "floor(age)"}', np.floor(age), "exact"),
            ("ceil", '{name: ceil, expr: "ceil(-age)"}', np.ceil(-age), "exact"),
            ("round", '{name: round, expr: "round(age / 7)"}', np.round(age / 7), "exact"),
            ("fillna", '{name: fillna, expr: "fillna(amount, -1)"}', where_nan(a, -1), "exact"),
            ("isnan", '{name: isnan, expr: "isnan(count)"}', np.isnan(c).astype(np.float64),
             "exact"),
            ("with_default", '{name: with_default, expr: "count / age", default: 0}',
             where_nan(c / age, 0), "exact"),
            ("mcc_idx", '{name: mcc_idx, map: {field: mcc, values: {grocery: 0, travel: 1, '
             'online: 2}, default: -1}}',
             np_map(mcc, {"grocery": 0, "travel": 1, "online": 2}, -1), "exact"),
            ("level_w", '{name: level_w, map: {field: level, values: {1: 0.5, 2: 1.5, 2.5: 9, '
             '0: -3}}, default: -7}',
             where_nan(np_map([None if np.isnan(x) else float(x) for x in lvl],
                              {1.0: 0.5, 2.0: 1.5, 2.5: 9, 0.0: -3}), -7), "exact"),
            ("user_bucket", '{name: user_bucket, hash: {field: user, buckets: 1024}}',
             hash_col(user, 1024), "exact"),
            ("user_bucket7", '{name: user_bucket7, hash: {field: user, buckets: 1000003, '
             'seed: 7}, default: -1}', where_nan(hash_col(user, 1000003, 7), -1), "exact"),
            ("hour_s", '{name: hour_s, hour_of_day: ts_s}', time_col(rows, "ts_s", "s", "hour"),
             "exact"),
            ("dow_s", '{name: dow_s, day_of_week: ts_s}', time_col(rows, "ts_s", "s", "dow"),
             "exact"),
            ("hour_ms", '{name: hour_ms, hour_of_day: {field: ts_ms, unit: ms}}',
             time_col(rows, "ts_ms", "ms", "hour"), "exact"),
            ("dow_ms", '{name: dow_ms, day_of_week: {field: ts_ms, unit: ms}, default: -1}',
             where_nan(time_col(rows, "ts_ms", "ms", "dow"), -1), "exact"),
            ("hour_iso", '{name: hour_iso, hour_of_day: ts_iso}',
             time_col(rows, "ts_iso", "s", "hour"), "exact"),
            ("dow_iso", '{name: dow_iso, day_of_week: ts_iso}',
             time_col(rows, "ts_iso", "s", "dow"), "exact"),
        ]
        onehot_values = ["grocery", "travel", "online", "fuel", ""]
        onehot = ('{name: mcc, onehot: {field: mcc, values: [grocery, travel, online, fuel, '
                  '""]}}')
    cols = []
    for name, spec, values, tol in F:
        cols.append((name, values, tol))
    specs = [spec for _, spec, _, _ in F] + [onehot]
    for v in onehot_values:
        cols.append(("mcc=" + v, np.array([1.0 if m == v else 0.0 for m in mcc]), "exact"))
    return specs, cols


def fmt_input(v):
    """One input cell: \\N is a missing field, \\null a JSON null (strings have no '\\')."""
    if v is None:
        return "\\N"
    if v == "null":
        return "\\null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    assert not any(ch in v for ch in '\t\r\n\\'), v
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20240301)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = gen_rows(args.rows, rng)
    specs, cols = features(rows)

    with open(os.path.join(HERE, "parity.yaml"), "w") as f:
        f.write("# Generated by make_reference.py: the fields and features of the parity test.\n")
        f.write("fields:\n")
        for name, typ in FIELDS.items():
            f.write("  %s: %s\n" % (name, typ))
        f.write("features:\n")
        for s in specs:
            f.write("  - %s\n" % s)

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
        simd = " ".join(k for k in ("AVX2", "AVX512F", "AVX512_SKX") if feats.get(k))
    except ImportError:
        simd = "unknown"
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "")
    with open(os.path.join(HERE, "reference.tsv"), "w", newline="\n", encoding="utf-8") as f:
        f.write("# numpy %s, scikit-learn %s, python %s, cpu features: %s, disabled: %s\n"
                % (np.__version__, sklearn.__version__, sys.version.split()[0], simd,
                   disabled or "none"))
        header = ["in:" + n for n in FIELDS] + ["%s:%s" % (tol, n) for n, _, tol in cols]
        f.write("\t".join(header) + "\n")
        for i, r in enumerate(rows):
            cells = [fmt_input(r[n]) for n in FIELDS]
            cells += [repr(float(v[i])) for _, v, _ in cols]
            f.write("\t".join(cells) + "\n")
    print("wrote %d rows x %d columns" % (len(rows), len(cols)))


if __name__ == "__main__":
    main()
