/*
 * expr.h - the expression language of `expr:` features: infix arithmetic over
 * the decoded input fields, compiled once at start-up into a flat postfix
 * program for a small stack machine, evaluated per event without allocating.
 *
 *   log1p(payment.amount) / max(count, 1)
 *   clip(amount * 0.01, 0, 10) + (country == 3)
 *   if(is_new and amount > 500, 1, 0)
 *
 * Grammar (lowest precedence first, like Python):
 *
 *   expr    := or
 *   or      := and ('or' and)*
 *   and     := not ('and' not)*
 *   not     := 'not' not | cmp
 *   cmp     := sum [('<' | '<=' | '>' | '>=' | '==' | '!=') sum]   (no chaining)
 *   sum     := term (('+' | '-') term)*
 *   term    := unary (('*' | '/') unary)*
 *   unary   := ('-' | '+') unary | power
 *   power   := primary ['**' unary]                                (right-assoc)
 *   primary := NUMBER | FIELD | NAME '(' expr (',' expr)* ')' | '(' expr ')'
 *
 *   NUMBER  := 12 | 1.5 | .5 | 1e-3          (decimal, C-locale strtod)
 *   FIELD   := a declared input field: [A-Za-z_][A-Za-z0-9_]* ('.' [A-Za-z0-9_]+)*
 *              or any name between backquotes: `odd-name`
 *
 * Functions: log log1p log2 log10 exp expm1 sqrt abs floor ceil round isnan
 * (1 argument); pow(x, y), fillna(x, v) (2); clip(x, lo, hi), if(c, a, b) (3);
 * min, max (2 or more). A name followed by '(' is a function; otherwise it is a
 * field, so fields named like functions still work. `and`, `or`, `not` are
 * keywords (backquote a field with that name).
 *
 * Semantics are numpy's for float64 arrays, so the offline path computes the
 * same bits: IEEE doubles, NaN propagates, log(-1) = NaN, 1/0 = inf, 0/0 = NaN;
 * comparisons give 1.0/0.0 and are false with NaN except != (np.not_equal);
 * min/max are np.minimum/np.maximum (NaN if any argument is NaN), folded left;
 * clip(x, lo, hi) = minimum(maximum(x, lo), hi); and/or/not/if use numpy
 * truthiness (nonzero is true, and NaN is nonzero); if() evaluates both
 * branches like np.where; round is np.round (half to even); x ** y and
 * pow(x, y) are np.power, which computes a constant exponent of 2, -1 or 0.5
 * as x*x, 1/x and sqrt(x) (so (-0) ** 0.5 is -0, not pow()'s +0).
 *
 * Field values: a number is itself, a bool is 1/0, missing or null is NaN.
 * A field declared `type: string` is refused at compile time. A field of type
 * `any` or `timestamp` that holds a string at runtime makes ks_expr_eval fail
 * with KS_EINVAL (the event goes to the DLQ): a wrong type is an error, never
 * silently a number.
 *
 * A compiled ks_expr_t is immutable and may be shared by threads.
 */
#ifndef KS_EXPR_H
#define KS_EXPR_H

#include <stddef.h>

#include "decode/value.h"
#include "decode/schema.h"

/* Deepest evaluation stack a compiled program may need; eval keeps it on the
 * C stack. Deeper expressions are a compile error. */
#define KS_EXPR_MAX_STACK 64

typedef struct ks_expr ks_expr_t;

/* Compiles `text` against `schema` (field names resolve to slots). On error
 * writes a message naming the 1-based column, e.g. "unexpected ')' at column
 * 14", without location prefix (the caller adds file:line: key). The result is
 * owned by the caller (ks_expr_free). Constant subexpressions are folded. */
int ks_expr_compile(const char *text, const ks_schema_t *schema, ks_expr_t **out,
                    char *errbuf, size_t errsize);

/* Evaluates for one event (`fields` indexed like schema->fields) into *out.
 * Returns 0, or KS_EINVAL with a message when a field holds a string. Never
 * allocates; any thread. */
int ks_expr_eval(const ks_expr_t *e, const ks_value_t *fields, double *out, char *errbuf,
                 size_t errsize);

/* 1 and *value set when the whole expression folded to a constant, else 0. */
int ks_expr_is_constant(const ks_expr_t *e, double *value);

/* Schema slot when the expression is exactly one field, else -1. */
int ks_expr_single_field(const ks_expr_t *e);

/* Writes the postfix program, e.g. "a b 2 * +" for a + b * 2, for tests and
 * debugging. Returns the length it wanted to write. */
size_t ks_expr_disasm(const ks_expr_t *e, char *buf, size_t size);

void ks_expr_free(ks_expr_t *e);

#endif
