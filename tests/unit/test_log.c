/*
 * test_log.c - the logger (base/log.c): logfmt and JSON lines, levels, the
 * rate limit on repeated messages with its "(repeated N times)" summary, and
 * the ring of recent warnings for the status page. stderr is redirected to a
 * temporary file and read back.
 */
#include "base/log.h"
#include "base/json.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static FILE *capture;
static int saved_stderr;

static void capture_start(void)
{
    fflush(stderr);
    capture = tmpfile();
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
}

/* Restores stderr; returns what was written (caller frees). */
static char *capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    long n = ftell(capture);
    char *text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(capture);
    if (n > 0 && fread(text, 1, (size_t)n, capture) != (size_t)n)
        text[0] = '\0';
    fclose(capture);
    return text;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_logfmt_and_levels(void)
{
    ks_log_set_format(KS_LOG_LOGFMT);
    ks_log_set_level(KS_LOG_INFO);
    capture_start();
    ks_debug("hidden debug line");
    ks_info("hello \"quoted\" and\nnewline");
    ks_log_set_level(KS_LOG_ERROR);
    ks_warn("hidden warning");
    ks_error("shown error");
    ks_log_set_level(KS_LOG_INFO);
    char *out = capture_end();
    CHECK(strstr(out, "hidden") == NULL);
    CHECK_CONTAINS(out, "level=info msg=\"hello \\\"quoted\\\" and\\nnewline\"\n");
    CHECK_CONTAINS(out, "level=error msg=\"shown error\"\n");
    CHECK(strncmp(out, "ts=20", 5) == 0);
    CHECK_EQ_INT(count(out, "\n"), 2);
    free(out);
    CHECK_EQ_INT(ks_log_level_parse("WARNING"), KS_LOG_WARN);
    CHECK_EQ_INT(ks_log_format_parse("json"), KS_LOG_JSON);
    CHECK_EQ_INT(ks_log_format_parse("xml"), -1);
}

static void test_json_lines(void)
{
    ks_log_set_format(KS_LOG_JSON);
    capture_start();
    ks_warn("disk \"full\"\tat\x01 %d%%", 99);
    char *out = capture_end();
    ks_log_set_format(KS_LOG_LOGFMT);
    char err[128];
    ks_json_t *root = NULL;
    size_t len = strlen(out);
    CHECK(len > 0 && out[len - 1] == '\n');
    CHECK_MSG(ks_json_parse(out, len, &root, err, sizeof(err)) == 0, "%s: %s", err, out);
    CHECK_EQ_STR(ks_json_str(ks_json_get(root, "level")), "warn");
    CHECK_EQ_STR(ks_json_str(ks_json_get(root, "msg")), "disk \"full\"\tat\x01 99%");
    CHECK(ks_json_str(ks_json_get(root, "ts")) != NULL);
    ks_json_free(root);
    free(out);
}

static void test_rate_limit(void)
{
    capture_start();
    /* the same message (numbers differ) 60 times: KS_LOG_BURST lines, then a
     * summary of the rest once flushed */
    for (int i = 0; i < 60; i++)
        ks_warn("connect to 10.0.0.%d failed (%d identical errors suppressed)", i % 7, i);
    ks_info("another message");
    ks_log_flush_repeats(1);
    char *out = capture_end();
    CHECK_EQ_INT(count(out, "connect to 10.0.0."), KS_LOG_BURST + 1);
    char want[64];
    snprintf(want, sizeof(want), "(repeated %d times)", 60 - KS_LOG_BURST);
    CHECK_CONTAINS(out, want);
    CHECK_CONTAINS(out, "connect to 10.0.0.3 failed (59 identical errors suppressed)");
    CHECK_EQ_INT(count(out, "another message"), 1);
    free(out);

    /* still hot: the next occurrences stay suppressed (one summary per window) */
    capture_start();
    ks_warn("connect to 10.0.0.1 failed (1 identical errors suppressed)");
    ks_log_flush_repeats(1);
    out = capture_end();
    CHECK_CONTAINS(out, "(repeated 1 times)");
    CHECK_EQ_INT(count(out, "\n"), 1);
    free(out);
}

static void test_recent(void)
{
    capture_start();
    ks_info("info lines are not kept");
    ks_error("recent error \"%s\"", "x");
    char *out = capture_end();
    free(out);
    ks_buf_t b = {0};
    ks_log_recent_json(&b, 3);
    char err[128];
    ks_json_t *root = NULL;
    CHECK_MSG(ks_json_parse(b.data, b.len, &root, err, sizeof(err)) == 0, "%s", err);
    size_t n = ks_json_len(root);
    CHECK(n >= 1 && n <= 3);
    const ks_json_t *last = ks_json_at(root, n - 1);
    CHECK_EQ_STR(ks_json_str(ks_json_get(last, "msg")), "recent error \"x\"");
    CHECK_EQ_STR(ks_json_str(ks_json_get(last, "level")), "error");
    ks_buf_putc(&b, '\0');
    CHECK(strstr(b.data, "info lines") == NULL);
    ks_json_free(root);
    ks_buf_free(&b);
}

int main(void)
{
    RUN(test_logfmt_and_levels);
    RUN(test_json_lines);
    RUN(test_rate_limit);
    RUN(test_recent);
    return test_summary();
}
