/*
 * fmtnum.h - the shortest decimal text that reads back as the same double.
 *
 * Output records carry computed doubles (probabilities, regression values,
 * feature values). Printing 17 significant digits always round-trips but is
 * long ("0.32101884164240085") and costs a printf-grade conversion; the
 * shortest digit string that strtod maps back to the same bits is usually
 * 15-17 digits for computed values and 2-6 for data ("65.33"), and takes a
 * few 128-bit multiplications to find (fmtnum.c explains the method).
 *
 * The text is what printf("%.17g") would print with the shortest digits in
 * place of its 17: the same choice between fixed and exponent notation
 * (exponent when the decimal exponent is below -4 or at least 17), "e-05"
 * style exponents, "-0" for negative zero; so it is never longer than
 * %.17g's, and integers below 2^53 print as integers ("42").
 */
#ifndef KS_FMTNUM_H
#define KS_FMTNUM_H

#include <stdint.h>

/* Longest text ks_fmt_shortest writes: "-1.2345678901234567e-308" (24), plus a NUL. */
#define KS_FMT_SHORTEST_MAX 25

/* Writes finite v into out (room for KS_FMT_SHORTEST_MAX bytes), NUL-terminated;
 * returns the length. Of the decimals with the fewest significant digits that
 * parse back to v, the one nearest to v (ties to an even last digit), so the
 * result equals printf's correctly rounded "%.{n}g" for the smallest n that
 * round-trips, except where only a non-nearest n-digit decimal round-trips
 * (then it is that one, shorter). Non-finite v is the caller's (JSON has no
 * spelling for it). Thread-safe; the first call builds a 10 KB table (~1 ms). */
int ks_fmt_shortest(char *out, double v);

/* The same as digits: v = *digits * 10^*exp10 with *digits having no trailing
 * zeros (0 for v == 0); v finite, sign ignored. For tests and other writers. */
void ks_fmt_shortest_digits(double v, uint64_t *digits, int *exp10);

#endif
