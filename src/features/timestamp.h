/*
 * timestamp.h - calendar arithmetic for hour_of_day / day_of_week features:
 * ISO-8601 parsing and proleptic-Gregorian day numbers, all in UTC.
 *
 * Accepted ISO-8601 (the extended format pandas.to_datetime and Python's
 * datetime.fromisoformat read):
 *
 *   2024-03-01                          midnight
 *   2024-03-01T12:34                    'T', 't' or one space between date and time
 *   2024-03-01T12:34:56
 *   2024-03-01T12:34:56.123456789       '.' or ',' then 1 or more digits
 *   ...Z  ...z  ...+02:00  ...-0530  ...+02   offsets up to 23:59
 *
 * A time without an offset is taken as UTC. Years 0000-9999; month, day (with
 * leap years), hour 0-23, minute 0-59 and second 0-59 are range-checked.
 */
#ifndef KS_TIMESTAMP_H
#define KS_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
int64_t ks_timestamp_days_from_civil(int64_t year, int month, int day);

/* Parses `len` bytes (not NUL-terminated) as above into whole seconds since
 * the epoch (UTC, floored) and the nanoseconds within that second. Returns 0
 * or KS_EINVAL. Pure; any thread. */
int ks_timestamp_parse_iso8601(const char *s, size_t len, int64_t *secs, int32_t *nanos);

/* Floor division and modulo for splitting epoch seconds into days. */
static inline int64_t ks_timestamp_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

#endif
