/*
 * test_expr.c - the expression language: precedence (checked on the compiled
 * postfix program), every function, numpy NaN/inf semantics, field types,
 * constant folding, and error messages with columns.
 */
#include "base/common.h"
#include "features/expr.h"
#include "test.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>

/* A hand-built schema (schema.c belongs to the decoder). */
static ks_field_t test_fields[] = {
    {.name = "a", .type = KS_FIELD_NUMBER},
    {.name = "b", .type = KS_FIELD_NUMBER},
    {.name = "c", .type = KS_FIELD_NUMBER},
    {.name = "payment.amount", .type = KS_FIELD_NUMBER},
    {.name = "flag", .type = KS_FIELD_BOOL},
    {.name = "mcc", .type = KS_FIELD_STRING},
    {.name = "anything", .type = KS_FIELD_ANY},
    {.name = "odd-name", .type = KS_FIELD_NUMBER},
    {.name = "log", .type = KS_FIELD_NUMBER},
    {.name = "ts", .type = KS_FIELD_TIMESTAMP},
};
static ks_schema_t schema = {test_fields, KS_ARRAY_LEN(test_fields), KS_ARRAY_LEN(test_fields)};

enum { A, B, C, AMOUNT, FLAG, MCC, ANY, ODD, LOGF, TS, NF };

static ks_value_t num(double x)
{
    return (ks_value_t){.type = KS_VAL_NUM, .num = x};
}

static ks_value_t row[NF];

static void reset_row(void)
{
    for (int i = 0; i < NF; i++)
        row[i] = (ks_value_t){.type = KS_VAL_MISSING};
    row[A] = num(2);
    row[B] = num(3);
    row[C] = num(4);
    row[AMOUNT] = num(100);
    row[FLAG] = (ks_value_t){.type = KS_VAL_BOOL, .b = 1};
    row[MCC] = (ks_value_t){.type = KS_VAL_STR, .str = "grocery", .len = 7};
    row[ODD] = num(7);
    row[LOGF] = num(10);
}

/* Compiles and evaluates; on failure records the message and returns NaN. */
static double ev(const char *text)
{
    ks_expr_t *e = NULL;
    char err[256];
    double v = NAN;
    int rc = ks_expr_compile(text, &schema, &e, err, sizeof(err));
    CHECK_MSG(rc == 0, "compile \"%s\": %s", text, err);
    if (rc == 0) {
        rc = ks_expr_eval(e, row, &v, err, sizeof(err));
        CHECK_MSG(rc == 0, "eval \"%s\": %s", text, err);
    }
    ks_expr_free(e);
    return v;
}

static const char *disasm(const char *text)
{
    static char buf[512];
    ks_expr_t *e = NULL;
    char err[256];
    buf[0] = '\0';
    if (ks_expr_compile(text, &schema, &e, err, sizeof(err)) == 0)
        ks_expr_disasm(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "ERROR: %s", err);
    ks_expr_free(e);
    return buf;
}

static const char *compile_error(const char *text)
{
    static char err[256];
    ks_expr_t *e = NULL;
    err[0] = '\0';
    int rc = ks_expr_compile(text, &schema, &e, err, sizeof(err));
    CHECK_MSG(rc == KS_EINVAL, "\"%s\" should not compile", text);
    CHECK(e == NULL);
    ks_expr_free(e);
    return err;
}

/* The argument goes through a volatile so that the compiler cannot fold the
 * libm call at build time (GCC folds with MPFR, correctly rounded, while the
 * machine evaluates with the platform libm, as numpy does). */
static double rt(double x)
{
    volatile double v = x;
    return v;
}

static int same_bits(double x, double y)
{
    return memcmp(&x, &y, sizeof(x)) == 0;
}

static void test_precedence(void)
{
    CHECK_EQ_STR(disasm("a + b * c"), "a b c * +");
    CHECK_EQ_STR(disasm("(a + b) * c"), "a b + c *");
    CHECK_EQ_STR(disasm("a - b - c"), "a b - c -");
    CHECK_EQ_STR(disasm("a / b / c"), "a b / c /");
    CHECK_EQ_STR(disasm("a ** b ** c"), "a b c ** **");   /* right-assoc */
    CHECK_EQ_STR(disasm("-a ** b"), "a b ** neg");        /* like Python */
    CHECK_EQ_STR(disasm("a ** -b"), "a b neg **");
    CHECK_EQ_STR(disasm("- - a"), "a neg neg");
    CHECK_EQ_STR(disasm("+a"), "a");
    CHECK_EQ_STR(disasm("a + b < c * 2"), "a b + c 2 * <");
    CHECK_EQ_STR(disasm("a < b and b < c or not flag"), "a b < b c < and flag not or");
    CHECK_EQ_STR(disasm("not a == b"), "a b == not");
    CHECK_EQ_STR(disasm("a or b and c"), "a b c and or");
    CHECK_EQ_STR(disasm("payment.amount * 2"), "payment.amount 2 *");
    CHECK_EQ_STR(disasm("`odd-name` + 1"), "odd-name 1 +");
    CHECK_EQ_STR(disasm("log + log(log)"), "log log log +"); /* field vs function */
    CHECK_EQ_STR(disasm("min(a, b, c)"), "a b min c min");
    CHECK_EQ_STR(disasm("clip(a, 0, 1)"), "a 0 1 clip");
    CHECK_EQ_STR(disasm(" a\t+\nb "), "a b +");
    CHECK(ev("2 + 3 * 4") == 14);
    CHECK(ev("(2 + 3) * 4") == 20);
    CHECK(ev("2 ** 3 ** 2") == 512);
    CHECK(ev("-2 ** 2") == -4);
    CHECK(ev("10 - 4 - 3") == 3);
    CHECK(ev("a * b + c") == 10);
    CHECK(ev("1.5e2 + .5 + 2.") == 152.5);
}

static void test_constant_folding(void)
{
    CHECK_EQ_STR(disasm("1 + 2 * 3"), "7");
    CHECK_EQ_STR(disasm("a * (2 + 3)"), "a 5 *");
    CHECK_EQ_STR(disasm("log1p(0) + max(1, 2, 3)"), "3");
    CHECK_EQ_STR(disasm("a + 1 + 2"), "a 1 + 2 +"); /* left-assoc: not reassociated */
    ks_expr_t *e = NULL;
    char err[128];
    double k = 0;
    CHECK_EQ_INT(ks_expr_compile("-(1/0)", &schema, &e, err, sizeof(err)), 0);
    CHECK(ks_expr_is_constant(e, &k) && isinf(k) && k < 0);
    CHECK_EQ_INT(ks_expr_single_field(e), -1);
    ks_expr_free(e);
    CHECK_EQ_INT(ks_expr_compile("payment.amount", &schema, &e, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_expr_single_field(e), AMOUNT);
    CHECK(!ks_expr_is_constant(e, &k));
    ks_expr_free(e);
}

static void test_arithmetic_ieee(void)
{
    CHECK(ev("1 / 0") == INFINITY);
    CHECK(ev("-1 / 0") == -INFINITY);
    CHECK(isnan(ev("0 / 0")));
    CHECK(same_bits(ev("-0 * 1"), -0.0));
    CHECK(same_bits(ev("1 / -(1/0)"), -0.0));
    CHECK(ev("1e308 * 10") == INFINITY);
    CHECK(ev("1e400") == INFINITY);          /* literal overflow is inf, like float() */
    CHECK(ev("a / b") == 2.0 / 3.0);
    CHECK(ev("0.1 + 0.2") == 0.1 + 0.2);
    CHECK(ev("pow(2, 0.5)") == sqrt(rt(2.0)));
    CHECK(ev("pow(0, -1)") == INFINITY);     /* numpy, not Python's ZeroDivisionError */
    CHECK(isnan(ev("pow(-8, 1/3)")));
    /* numpy's power fast paths for a scalar exponent */
    CHECK_EQ_STR(disasm("a ** 2"), "a square");
    CHECK_EQ_STR(disasm("pow(a, -1)"), "a recip");
    CHECK_EQ_STR(disasm("a ** 0.5"), "a sqrt");
    CHECK_EQ_STR(disasm("a ** (1 / 2)"), "a sqrt");
    CHECK_EQ_STR(disasm("a ** 3"), "a 3 **");
    CHECK_EQ_STR(disasm("2 ** a"), "2 a **");
    CHECK(same_bits(ev("(-0) ** 0.5"), -0.0));       /* pow(-0, 0.5) would be +0 */
    CHECK(isnan(ev("(-1/0) ** 0.5")));               /* pow(-inf, 0.5) would be inf */
    CHECK(ev("(-1/0) ** 3") == -INFINITY);
    CHECK(ev("0 ** -1") == INFINITY);
    CHECK(ev("3 ** 2") == 9);
}

static void test_functions(void)
{
    reset_row();
    CHECK(ev("log(a)") == log(rt(2.0)));
    CHECK(ev("log1p(a)") == log1p(rt(2.0)));
    CHECK(ev("log2(8)") == 3);
    CHECK(ev("log10(1000)") == 3);
    CHECK(ev("exp(a)") == exp(rt(2.0)));
    CHECK(ev("expm1(1e-10)") == expm1(rt(1e-10)));
    CHECK(ev("sqrt(c)") == 2);
    CHECK(ev("abs(-a)") == 2);
    CHECK(same_bits(ev("abs(-0)"), 0.0));
    CHECK(ev("floor(-2.5)") == -3);
    CHECK(ev("ceil(-2.5)") == -2);
    CHECK(ev("round(2.5)") == 2);            /* half to even, like np.round */
    CHECK(ev("round(3.5)") == 4);
    CHECK(ev("round(-0.5)") == 0);
    CHECK(ev("min(a, b)") == 2);
    CHECK(ev("max(a, b)") == 3);
    CHECK(ev("min(c, b, a, 5)") == 2);
    CHECK(ev("max(1, c, b, a)") == 4);
    CHECK(ev("clip(a, 0, 1)") == 1);
    CHECK(ev("clip(-a, 0, 1)") == 0);
    CHECK(ev("clip(0.5, 0, 1)") == 0.5);
    CHECK(ev("clip(5, 3, 1)") == 1);         /* lo > hi: hi, like np.clip */
    CHECK(ev("if(a > 1, 10, 20)") == 10);
    CHECK(ev("if(a > 5, 10, 20)") == 20);
    CHECK(ev("fillna(a, 0)") == 2);
    CHECK(ev("isnan(a)") == 0);
    CHECK(ev("pow(a, b)") == 8);
}

static void test_nan_semantics(void)
{
    reset_row();
    row[A] = (ks_value_t){.type = KS_VAL_MISSING};
    row[B] = (ks_value_t){.type = KS_VAL_NULL};
    CHECK(isnan(ev("a")));
    CHECK(isnan(ev("b")));
    CHECK(isnan(ev("a + 1")));
    CHECK(isnan(ev("log(-1)")));
    CHECK(isnan(ev("sqrt(-1)")));
    CHECK(ev("log(0)") == -INFINITY);
    CHECK(ev("log1p(-1)") == -INFINITY);
    CHECK(isnan(ev("log1p(-2)")));
    /* comparisons with NaN are false, except != (np.not_equal) */
    CHECK(ev("a < 1") == 0);
    CHECK(ev("a <= 1") == 0);
    CHECK(ev("a > 1") == 0);
    CHECK(ev("a >= 1") == 0);
    CHECK(ev("a == a") == 0);
    CHECK(ev("a != a") == 1);
    /* min/max/clip propagate NaN from any argument (np.minimum/np.maximum) */
    CHECK(isnan(ev("min(a, 1)")));
    CHECK(isnan(ev("min(1, a)")));
    CHECK(isnan(ev("max(1, 2, a)")));
    CHECK(isnan(ev("clip(a, 0, 1)")));
    CHECK(isnan(ev("clip(0.5, a, 1)")));
    /* numpy's tie rule with signed zeros: the second argument wins */
    CHECK(same_bits(ev("min(0, -0)"), -0.0));
    CHECK(same_bits(ev("min(-0, 0)"), 0.0));
    CHECK(same_bits(ev("max(0, -0)"), -0.0));
    /* numpy truthiness: NaN is nonzero, so it is true */
    CHECK(ev("a and 1") == 1);
    CHECK(ev("a or 0") == 1);
    CHECK(ev("not a") == 0);
    CHECK(ev("0 and a") == 0);
    CHECK(ev("if(a, 1, 2)") == 1);
    CHECK(ev("if(a > 0, 1, 2)") == 2);
    /* helpers for missing values */
    CHECK(ev("isnan(a)") == 1);
    CHECK(ev("fillna(a, -1)") == -1);
    CHECK(ev("fillna(a, b)") != ev("fillna(a, b)")); /* NaN */
    CHECK(isnan(ev("if(1, a, 2)")));
    CHECK(ev("if(0, a, 2)") == 2);
}

static void test_field_types(void)
{
    reset_row();
    CHECK(ev("flag") == 1);
    CHECK(ev("flag + flag") == 2);
    row[FLAG].b = 0;
    CHECK(ev("flag") == 0);
    CHECK(ev("not flag") == 1);
    row[ANY] = num(5);
    CHECK(ev("anything * 2") == 10);
    row[ANY] = (ks_value_t){.type = KS_VAL_BOOL, .b = 1};
    CHECK(ev("anything") == 1);
    row[TS] = num(1700000000);
    CHECK(ev("ts / 86400") == 1700000000.0 / 86400);

    /* a declared string field is refused at compile time */
    CHECK_CONTAINS(compile_error("log1p(mcc)"),
                   "field 'mcc' is a string and cannot be used in arithmetic");
    CHECK_CONTAINS(compile_error("log1p(mcc)"), "at column 7");

    /* a string at runtime in an `any` field is an error naming the field */
    ks_expr_t *e = NULL;
    char err[256];
    double v = 0;
    CHECK_EQ_INT(ks_expr_compile("anything + 1", &schema, &e, err, sizeof(err)), 0);
    row[ANY] = (ks_value_t){.type = KS_VAL_STR, .str = "12\"x\n", .len = 5};
    CHECK_EQ_INT(ks_expr_eval(e, row, &v, err, sizeof(err)), KS_EINVAL);
    CHECK_CONTAINS(err, "field 'anything' holds the string \"12?x?\"");
    row[ANY] = (ks_value_t){.type = KS_VAL_NULL};
    CHECK_EQ_INT(ks_expr_eval(e, row, &v, err, sizeof(err)), 0);
    CHECK(isnan(v));
    ks_expr_free(e);

    /* an ISO string in a timestamp field, too */
    CHECK_EQ_INT(ks_expr_compile("ts", &schema, &e, err, sizeof(err)), 0);
    row[TS] = (ks_value_t){.type = KS_VAL_STR, .str = "2024-03-01T00:00:00Z", .len = 20};
    CHECK_EQ_INT(ks_expr_eval(e, row, &v, err, sizeof(err)), KS_EINVAL);
    CHECK_CONTAINS(err, "field 'ts' holds the string");
    ks_expr_free(e);
}

static void test_errors(void)
{
    reset_row();
    CHECK_EQ_STR(compile_error("(a + b))"), "unexpected ')' at column 8 (expected an operator or the end)");
    CHECK_EQ_STR(compile_error("log1p(a) * (b + 1))"),
                 "unexpected ')' at column 19 (expected an operator or the end)");
    CHECK_EQ_STR(compile_error(""), "empty expression");
    CHECK_EQ_STR(compile_error("   "), "empty expression");
    CHECK_CONTAINS(compile_error("a +"), "unexpected end of expression at column 4");
    CHECK_CONTAINS(compile_error("(a + b"), "unexpected end of expression at column 7 "
                                            "(expected ')' to close the '(' at column 1)");
    CHECK_CONTAINS(compile_error("a + * b"), "unexpected '*' at column 5");
    CHECK_CONTAINS(compile_error("amout * 2"), "unknown field 'amout' (declare it under "
                                               "input.fields) at column 1");
    CHECK_CONTAINS(compile_error("2 * lg(a)"), "unknown function 'lg'");
    CHECK_CONTAINS(compile_error("2 * lg(a)"), "at column 5");
    CHECK_CONTAINS(compile_error("log(a, b)"), "log() takes 1 argument at column 1");
    CHECK_CONTAINS(compile_error("clip(a, b)"), "clip() takes 3 arguments at column 1");
    CHECK_CONTAINS(compile_error("min(a)"), "min() takes at least 2 arguments at column 1");
    CHECK_CONTAINS(compile_error("max()"), "max() takes at least 2 arguments");
    CHECK_CONTAINS(compile_error("log(a b)"), "unexpected 'b' at column 7 (expected ',' or ')')");
    CHECK_CONTAINS(compile_error("a = 1"), "unexpected '=' (write == to compare) at column 3");
    CHECK_CONTAINS(compile_error("!a"), "at column 1");
    CHECK_CONTAINS(compile_error("a < b < c"), "comparisons cannot be chained");
    CHECK_CONTAINS(compile_error("a $ b"), "unexpected character '$' at column 3");
    CHECK_CONTAINS(compile_error("a \xc3\xa9"), "unexpected byte \\xc3 at column 3");
    CHECK_CONTAINS(compile_error("1.2.3"), "unexpected '.' after a number at column 4");
    CHECK_CONTAINS(compile_error("2x"), "unexpected 'x' after a number at column 2");
    CHECK_CONTAINS(compile_error("1e+"), "malformed number");
    CHECK_CONTAINS(compile_error("payment."), "a field name cannot end with '.' at column 8");
    CHECK_CONTAINS(compile_error("`odd-name"), "unterminated `quoted name` at column 1");
    CHECK_CONTAINS(compile_error("``"), "empty `quoted name`");
    CHECK_CONTAINS(compile_error("a and"), "unexpected end of expression");
    CHECK_CONTAINS(compile_error("and"), "unexpected 'and' at column 1");
    CHECK_CONTAINS(compile_error("a, b"), "unexpected ','");

    /* nesting is bounded, and the stack too */
    char deep[400];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        deep[n++] = '(';
    deep[n++] = 'a';
    for (int i = 0; i < 100; i++)
        deep[n++] = ')';
    deep[n] = '\0';
    CHECK_CONTAINS(compile_error(deep), "nested too deeply");
    n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "a*(");
    deep[n++] = 'a';
    for (int i = 0; i < 40; i++)
        deep[n++] = ')';
    deep[n] = '\0';
    CHECK(ev(deep) == ldexp(1, 41)); /* 40 levels are fine */
}

int main(void)
{
    reset_row();
    RUN(test_precedence);
    RUN(test_constant_folding);
    RUN(test_arithmetic_ieee);
    RUN(test_functions);
    RUN(test_nan_semantics);
    RUN(test_field_types);
    RUN(test_errors);
    return test_summary();
}
