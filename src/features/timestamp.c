/*
 * timestamp.c - ISO-8601 parsing and civil-date arithmetic (see timestamp.h).
 *
 * days_from_civil is Howard Hinnant's algorithm ("chrono-Compatible Low-Level
 * Date Algorithms"), exact for every proleptic Gregorian date. The parser is a
 * strict hand-written scanner: it never reads past `len`, allocates nothing
 * and accepts only the forms listed in the header, so an event either yields
 * the instant pandas would compute or is rejected.
 */
#include "features/timestamp.h"
#include "base/common.h"

int64_t ks_timestamp_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Reads exactly n digits at *i into *out. */
static int digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    if (*i + (size_t)n > len)
        return 0;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    *out = v;
    return 1;
}

int ks_timestamp_parse_iso8601(const char *s, size_t len, int64_t *secs, int32_t *nanos)
{
    int rc = KS_EINVAL;
    size_t i = 0;
    int year, month, day, hour = 0, minute = 0, second = 0;
    int32_t ns = 0;
    int offset_min = 0;

    if (!digits(s, len, &i, 4, &year) || i >= len || s[i++] != '-' ||
        !digits(s, len, &i, 2, &month) || i >= len || s[i++] != '-' ||
        !digits(s, len, &i, 2, &day))
        goto out;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        goto out;
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            goto out;
        i++;
        if (!digits(s, len, &i, 2, &hour) || i >= len || s[i++] != ':' ||
            !digits(s, len, &i, 2, &minute))
            goto out;
        if (i < len && s[i] == ':') {
            i++;
            if (!digits(s, len, &i, 2, &second))
                goto out;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;
                int n = 0;
                int32_t scale = 100000000;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                    ns += (int32_t)(s[i] - '0') * scale; /* digits past 1 ns are dropped */
                    scale /= 10;
                    i++;
                    n++;
                }
                if (n == 0)
                    goto out;
            }
        }
        if (hour > 23 || minute > 59 || second > 59)
            goto out;
        if (i < len) {
            if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int sign = s[i++] == '-' ? -1 : 1;
                int oh, om = 0;
                if (!digits(s, len, &i, 2, &oh))
                    goto out;
                if (i < len && s[i] == ':') {
                    i++;
                    if (!digits(s, len, &i, 2, &om))
                        goto out;
                } else if (i < len && !digits(s, len, &i, 2, &om)) {
                    goto out;
                }
                if (oh > 23 || om > 59)
                    goto out;
                offset_min = sign * (oh * 60 + om);
            } else {
                goto out;
            }
        }
    }
    if (i != len)
        goto out;
    *secs = ks_timestamp_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
            second - (int64_t)offset_min * 60;
    *nanos = ns;
    rc = KS_OK;
out:
    return rc;
}
