/*
 * fmtnum.c - shortest round-trip formatting of doubles (see fmtnum.h).
 *
 * The method is Giulietti's Schubfach ("The Schubfach way to render doubles",
 * 2020), written from the paper's description. A finite v > 0 is c * 2^q
 * (c < 2^53). Every real in its rounding interval R_v (halfway to each
 * neighbour; the ends belong to it when c is even, as strtod rounds ties to
 * even) reads back as v. With k = floor(log10(2^q)) (floor(log10(3/4 2^q))
 * when v is a power of two above the subnormals, whose lower gap is half),
 * R_v is between 1 and 10 units of 10^k wide, so it holds s 10^k or
 * (s + 1) 10^k, s = floor(v / 10^k), and at most one multiple of 10^(k+1):
 * that multiple if there is one (fewer digits), else whichever of s, s + 1
 * lies in R_v, else the nearer to v. These tests only compare v and the ends
 * of R_v, scaled by 4 / 10^k, with even integers; each scaled value is taken
 * rounded to odd (floor, and the last bit set when a fraction was dropped),
 * which keeps those comparisons exact with 2 bits of fraction.
 *
 * The scaling multiplies by g ~ 10^-k 2^-r, a 126-bit value per k (617 of
 * them). g is exact where 10^-k 2^-r is an integer, else rounded up, so the
 * 128-bit product overshoots by less than the multiplier (< 2^-67 after the
 * shift): when the dropped fraction is at least that, floor and sticky bit
 * are certain; otherwise the value may be an integer and is decided exactly
 * (divisibility by 5^-k when 10^k is small) or, should a case remain (never
 * seen in the tests), the digits come from printf("%.*e") + strtod, the
 * fewest that round-trip. The table is computed once, with schoolbook big
 * integers, instead of being pasted in as 617 constants.
 */
#include "base/fmtnum.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* ---- the table: g(e) for 10^e, e = -k in [E_MIN, E_MAX] ------------------ */

#define E_MIN (-292)
#define E_MAX 324
#define N_G (E_MAX - E_MIN + 1)
#define BN_LIMBS 18 /* 10^324 < 2^1077 */

static u128 g_val[N_G];       /* floor(10^e 2^(125 - beta)) (+1 unless exact) */
static int16_t g_beta[N_G];   /* beta = floor(log2(10^e)) */
static uint8_t g_exact[N_G];  /* 10^e 2^(125 - beta) is an integer */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ready; /* set once the table is built: skips pthread_once */

typedef struct bn {
    uint64_t w[BN_LIMBS]; /* little-endian limbs */
} bn_t;

static int bn_bitlen(const bn_t *a)
{
    for (int i = BN_LIMBS - 1; i >= 0; i--)
        if (a->w[i])
            return i * 64 + 64 - __builtin_clzll(a->w[i]);
    return 0;
}

static uint64_t bn_limb(const bn_t *a, int i)
{
    return i >= 0 && i < BN_LIMBS ? a->w[i] : 0;
}

/* floor(a / 2^lo) mod 2^128, lo >= 0 */
static u128 bn_shr128(const bn_t *a, int lo)
{
    int i = lo >> 6, sh = lo & 63;
    u128 x = (u128)bn_limb(a, i + 1) << 64 | bn_limb(a, i);
    if (sh)
        x = x >> sh | (u128)bn_limb(a, i + 2) << (128 - sh);
    return x;
}

/* Are the bits of a below bit lo all zero? */
static int bn_low_zero(const bn_t *a, int lo)
{
    for (int i = 0; i < lo >> 6; i++)
        if (a->w[i])
            return 0;
    return (lo & 63) == 0 || (a->w[lo >> 6] & ((UINT64_C(1) << (lo & 63)) - 1)) == 0;
}

static void bn_mul10(bn_t *a)
{
    uint64_t carry = 0;
    for (int i = 0; i < BN_LIMBS; i++) {
        u128 t = (u128)a->w[i] * 10 + carry;
        a->w[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
}

static void bn_div10(bn_t *a)
{
    uint64_t rem = 0;
    for (int i = BN_LIMBS - 1; i >= 0; i--) {
        u128 t = (u128)rem << 64 | a->w[i];
        a->w[i] = (uint64_t)(t / 10);
        rem = (uint64_t)(t % 10);
    }
}

/* g(e) = floor(10^e 2^(125 - beta)) for 10^e in [2^beta, 2^(beta+1)), plus
 * one unless exact. For e >= 0 that is the top 126 bits of 10^e; for e < 0
 * the top 126 bits of R = floor(2^M / 10^-e), since floor(floor(x) / 2^j) =
 * floor(x / 2^j). R for the next e comes from dividing by 10, exactly for
 * the same reason; M leaves R at least 126 bits down to 10^E_MIN. */
static void g_init(void)
{
    enum { M = BN_LIMBS * 64 - 2 };
    bn_t p = {{1}}, r = {{0}};
    r.w[M >> 6] = (uint64_t)1 << (M & 63);
    for (int e = 0; e <= E_MAX; e++, bn_mul10(&p)) {
        int len = bn_bitlen(&p), lo = len - 126;
        u128 g = lo >= 0 ? bn_shr128(&p, lo) : bn_shr128(&p, 0) << -lo;
        int exact = lo <= 0 || bn_low_zero(&p, lo);
        g_val[e - E_MIN] = g + !exact;
        g_exact[e - E_MIN] = (uint8_t)exact;
        g_beta[e - E_MIN] = (int16_t)(len - 1);
    }
    for (int e = -1; e >= E_MIN; e--) {
        bn_div10(&r); /* floor(2^M / 10^-e): in (2^(M-L), 2^(M-L+1)), L = bitlen(10^-e) */
        int rlen = bn_bitlen(&r);
        g_val[e - E_MIN] = bn_shr128(&r, rlen - 126) + 1; /* 10^e is never exact */
        g_exact[e - E_MIN] = 0;
        g_beta[e - E_MIN] = (int16_t)(rlen - 1 - M); /* floor(log2(10^e)) = -L */
    }
}

/* ---- the conversion ------------------------------------------------------- */

/* floor(log10(2^q)) and floor(log10(3/4 2^q)), exact for |q| < 2^16 */
static inline int flog10_pow2(int q)
{
    return (int)((int64_t)q * 661971961083LL >> 41);
}

static inline int flog10_three_quarters_pow2(int q)
{
    return (int)(((int64_t)q * 661971961083LL - 274743187321LL) >> 41);
}

static const uint64_t pow5[23] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull, 390625ull, 1953125ull,
    9765625ull, 48828125ull, 244140625ull, 1220703125ull, 6103515625ull, 30517578125ull,
    152587890625ull, 762939453125ull, 3814697265625ull, 19073486328125ull, 95367431640625ull,
    476837158203125ull, 2384185791015625ull,
};

/* x = cpb 2^h g / 2^128 rounded to odd. Clears *ok when the overshoot of an
 * inexact g might have crossed an integer and it cannot be decided here. */
static inline uint64_t scale_rto(u128 g, uint64_t cpb, int h, int e, int exact, int *ok)
{
    uint64_t cp = cpb << h;
    u128 lo = (u128)(uint64_t)g * cp;
    u128 hi = (u128)(uint64_t)(g >> 64) * cp + (lo >> 64);
    uint64_t y = (uint64_t)(hi >> 64), r1 = (uint64_t)hi, r0 = (uint64_t)lo;
    if (exact)
        return y | ((r1 | r0) != 0);
    if (r1 != 0 || r0 >= cp)
        return y | 1; /* the true value lies strictly between y and y + 1 */
    /* within the overshoot of y: an integer (then exactly y) or not. For
     * -22 <= e < 0 the value is cpb 2^(q-k) / 5^k with q-k >= 0, an integer
     * exactly when 5^k divides cpb (2^(q-k) has no factor 5). */
    if (e < 0 && e >= -22)
        return y | (cpb % pow5[-e] != 0);
    *ok = 0;
    return y;
}

/* Schubfach on v = c 2^q > 0; returns 0 if undecided (see scale_rto). */
static int shortest_fast(uint64_t c, int q, uint64_t *digits, int *exp10)
{
    uint64_t cb = c << 2, cbr = cb + 2, cbl;
    int k, out = (int)(c & 1); /* odd c: the interval's ends read back as a neighbour */
    if (c != (UINT64_C(1) << 52) || q == -1074) {
        cbl = cb - 2;
        k = flog10_pow2(q);
    } else {
        cbl = cb - 1;
        k = flog10_three_quarters_pow2(q);
    }
    int e = -k, i = e - E_MIN, ok = 1;
    int h = q + g_beta[i] + 3; /* 2..6: 4 v / 10^k = cb 2^q 10^-k = cb 2^h g / 2^128 */
    u128 g = g_val[i];
    uint64_t vbl = scale_rto(g, cbl, h, e, g_exact[i], &ok);
    uint64_t vb = scale_rto(g, cb, h, e, g_exact[i], &ok);
    uint64_t vbr = scale_rto(g, cbr, h, e, g_exact[i], &ok);
    if (!ok)
        return 0;
    uint64_t s = vb >> 2;
    if (s >= 10) { /* a multiple of 10^(k+1) in R_v: one digit fewer */
        uint64_t sp = s / 10 * 10, tp = sp + 10;
        int upin = vbl + (uint64_t)out <= sp << 2;
        int wpin = (tp << 2) + (uint64_t)out <= vbr;
        if (upin != wpin) {
            *digits = upin ? sp : tp;
            *exp10 = k;
            return 1;
        }
    }
    uint64_t t = s + 1;
    int uin = vbl + (uint64_t)out <= s << 2;
    int win = (t << 2) + (uint64_t)out <= vbr;
    if (uin != win) {
        *digits = uin ? s : t;
    } else { /* both in R_v: the nearer to v, ties to even */
        uint64_t mid = (s + t) << 1;
        *digits = vb < mid || (vb == mid && !(s & 1)) ? s : t;
    }
    *exp10 = k;
    return 1;
}

/* The fewest printf digits that round-trip; for what shortest_fast leaves. */
static void shortest_slow(double v, uint64_t *digits, int *exp10)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    uint64_t f = 0;
    int nd = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') {
            f = f * 10 + (uint64_t)(*p - '0');
            nd++;
        }
    *digits = f;
    *exp10 = (*p == 'e' ? atoi(p + 1) : 0) - (nd - 1);
}

/* ks_fmt_shortest_digits, inlined into the writer */
static inline __attribute__((always_inline)) void shortest(double v, uint64_t *digits,
                                                         int *exp10)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    int be = (int)((bits >> 52) & 0x7ff);
    if (be == 0 && frac == 0) {
        *digits = 0;
        *exp10 = 0;
        return;
    }
    if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) {
        pthread_once(&g_once, g_init);
        __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
    }
    uint64_t c = be ? frac | (UINT64_C(1) << 52) : frac;
    int q = be ? be - 1075 : -1074;
    uint64_t f;
    int k;
    if (!shortest_fast(c, q, &f, &k))
        shortest_slow(fabs(v), &f, &k);
    if (f % 10 == 0) { /* trailing zeros: at most 16 */
        while (f % 100000000 == 0) {
            f /= 100000000;
            k += 8;
        }
        if (f % 10000 == 0) {
            f /= 10000;
            k += 4;
        }
        if (f % 100 == 0) {
            f /= 100;
            k += 2;
        }
        if (f % 10 == 0) {
            f /= 10;
            k++;
        }
    }
    *digits = f;
    *exp10 = k;
}

void ks_fmt_shortest_digits(double v, uint64_t *digits, int *exp10)
{
    shortest(v, digits, exp10);
}

/* ---- the text ------------------------------------------------------------- */

static const char pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static const uint64_t pow10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

static inline int n_digits(uint64_t f)
{
    if (f < 10)
        return 1;
    int t = ((64 - __builtin_clzll(f | 1)) * 1233) >> 12;
    return t + (t < 20 && f >= pow10_u64[t]);
}

/* Exactly 8 digits of x < 10^8 at p. */
static inline void put8(char *p, uint32_t x)
{
    uint32_t hi = x / 10000, lo = x % 10000;
    memcpy(p, pairs + 2 * (hi / 100), 2);
    memcpy(p + 2, pairs + 2 * (hi % 100), 2);
    memcpy(p + 4, pairs + 2 * (lo / 100), 2);
    memcpy(p + 6, pairs + 2 * (lo % 100), 2);
}

/* The nd decimal digits of f, most significant first, at d. */
static inline void put_digits(char *d, uint64_t f, int nd)
{
    char *p = d + nd;
    while (f >= 100000000) {
        p -= 8;
        put8(p, (uint32_t)(f % 100000000));
        f /= 100000000;
    }
    uint32_t x = (uint32_t)f;
    while (x >= 100) {
        p -= 2;
        memcpy(p, pairs + 2 * (x % 100), 2);
        x /= 100;
    }
    if (x >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * x, 2);
    } else {
        *--p = (char)('0' + x);
    }
}

/* o[0..n) = o[1..n], 1 <= n <= 16: overlapping word moves (a byte loop
 * would become a memmove call). */
static inline void move_back(char *o, int n)
{
    if (n >= 8) {
        uint64_t x, y;
        memcpy(&x, o + 1, 8);
        memcpy(&y, o + n - 7, 8);
        memcpy(o, &x, 8);
        memcpy(o + n - 8, &y, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, o + 1, 4);
        memcpy(&y, o + n - 3, 4);
        memcpy(o, &x, 4);
        memcpy(o + n - 4, &y, 4);
    } else {
        char a = o[1], b = o[n / 2 + 1], c = o[n];
        o[0] = a;
        o[n / 2] = b;
        o[n - 1] = c;
    }
}

int ks_fmt_shortest(char *out, double v)
{
    char *o = out;
    if (signbit(v)) {
        *o++ = '-';
        v = -v;
    }
    if (v < 9007199254740992.0 && v == (double)(int64_t)v) { /* an integer below 2^53 */
        uint64_t n = (uint64_t)(int64_t)v;
        int nd = n_digits(n);
        put_digits(o, n, nd);
        o += nd;
        *o = '\0';
        return (int)(o - out);
    }
    uint64_t f;
    int k;
    shortest(v, &f, &k);
    int nd = n_digits(f), e10 = k + nd - 1;
    if (e10 < -4 || e10 >= 17) { /* d.ddde-XX, as %g writes it */
        put_digits(o + 1, f, nd);
        o[0] = o[1];
        if (nd > 1) {
            o[1] = '.';
            o += nd + 1;
        } else {
            o += 1;
        }
        *o++ = 'e';
        *o++ = e10 < 0 ? '-' : '+';
        unsigned x = (unsigned)(e10 < 0 ? -e10 : e10);
        if (x >= 100) {
            *o++ = (char)('0' + x / 100);
            x %= 100;
        }
        memcpy(o, pairs + 2 * x, 2);
        o += 2;
    } else if (e10 < 0) { /* 0.000ddd */
        memcpy(o, "0.000000", 8); /* (room: digits overwrite the rest) */
        o += 1 - e10;
        put_digits(o, f, nd);
        o += nd;
    } else if (nd <= e10 + 1) { /* ddd000 */
        put_digits(o, f, nd);
        o += nd;
        for (int i = nd; i <= e10; i++)
            *o++ = '0';
    } else { /* ddd.ddd: the digits one place on, the integer part moved back */
        put_digits(o + 1, f, nd);
        move_back(o, e10 + 1);
        o[e10 + 1] = '.';
        o += nd + 1;
    }
    *o = '\0';
    return (int)(o - out);
}
