/*
 * expr.c - compiler and stack machine for `expr:` features (see expr.h for the
 * grammar and the semantics).
 *
 * The compiler is a recursive-descent parser that emits postfix code as it
 * goes: operands first, then the operator. Emitting an operator whose operands
 * are all constants folds them on the spot by running the very same machine
 * over a three-instruction program, so folding can never disagree with
 * evaluation. n-ary min/max are emitted as a left fold of binary operations,
 * which keeps the stack shallow; the final program's stack need is computed
 * once and checked against KS_EXPR_MAX_STACK so that evaluation can keep its
 * stack in a local array.
 *
 * A power with a constant exponent of 2, -1 or 0.5 becomes x*x, 1/x or
 * sqrt(x), as numpy's power ufunc does for a scalar exponent.
 *
 * Evaluation is a loop over a switch: no allocation, no string handling, one
 * type dispatch per field load. The only failure is a string in a numeric
 * context (a field of type any/timestamp), reported with the field's name.
 */
#include "features/expr.h"
#include "base/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 48   /* parentheses, unary operators and calls */
#define MAX_NUMBER_LEN 64

typedef enum {
    OP_CONST, OP_LOAD,
    OP_NEG, OP_NOT, OP_LOG, OP_LOG1P, OP_LOG2, OP_LOG10, OP_EXP, OP_EXPM1, OP_SQRT, OP_ABS,
    OP_FLOOR, OP_CEIL, OP_ROUND, OP_ISNAN, OP_SQUARE, OP_RECIP,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
    OP_AND, OP_OR, OP_MIN, OP_MAX, OP_FILLNA,
    OP_CLIP, OP_IF,
    OP__COUNT
} opcode_t;

/* Operand count and disassembly name of each opcode. */
static const struct {
    int nargs;
    const char *name;
} op_info[OP__COUNT] = {
    [OP_CONST] = {0, "const"}, [OP_LOAD] = {0, "load"},
    [OP_NEG] = {1, "neg"},     [OP_NOT] = {1, "not"},     [OP_LOG] = {1, "log"},
    [OP_LOG1P] = {1, "log1p"}, [OP_LOG2] = {1, "log2"},   [OP_LOG10] = {1, "log10"},
    [OP_EXP] = {1, "exp"},     [OP_EXPM1] = {1, "expm1"}, [OP_SQRT] = {1, "sqrt"},
    [OP_ABS] = {1, "abs"},     [OP_FLOOR] = {1, "floor"}, [OP_CEIL] = {1, "ceil"},
    [OP_ROUND] = {1, "round"}, [OP_ISNAN] = {1, "isnan"},
    [OP_SQUARE] = {1, "square"}, [OP_RECIP] = {1, "recip"},
    [OP_ADD] = {2, "+"},       [OP_SUB] = {2, "-"},       [OP_MUL] = {2, "*"},
    [OP_DIV] = {2, "/"},       [OP_POW] = {2, "**"},      [OP_LT] = {2, "<"},
    [OP_LE] = {2, "<="},       [OP_GT] = {2, ">"},        [OP_GE] = {2, ">="},
    [OP_EQ] = {2, "=="},       [OP_NE] = {2, "!="},       [OP_AND] = {2, "and"},
    [OP_OR] = {2, "or"},       [OP_MIN] = {2, "min"},     [OP_MAX] = {2, "max"},
    [OP_FILLNA] = {2, "fillna"},
    [OP_CLIP] = {3, "clip"},   [OP_IF] = {3, "if"},
};

/* Functions callable by name. max_args < 0: any number >= min_args, folded. */
static const struct {
    const char *name;
    opcode_t op;
    int min_args, max_args;
} functions[] = {
    {"log", OP_LOG, 1, 1},       {"log1p", OP_LOG1P, 1, 1}, {"log2", OP_LOG2, 1, 1},
    {"log10", OP_LOG10, 1, 1},   {"exp", OP_EXP, 1, 1},     {"expm1", OP_EXPM1, 1, 1},
    {"sqrt", OP_SQRT, 1, 1},     {"abs", OP_ABS, 1, 1},     {"floor", OP_FLOOR, 1, 1},
    {"ceil", OP_CEIL, 1, 1},     {"round", OP_ROUND, 1, 1}, {"isnan", OP_ISNAN, 1, 1},
    {"pow", OP_POW, 2, 2},       {"fillna", OP_FILLNA, 2, 2},
    {"clip", OP_CLIP, 3, 3},     {"if", OP_IF, 3, 3},
    {"min", OP_MIN, 2, -1},      {"max", OP_MAX, 2, -1},
};

typedef struct insn {
    uint32_t op;    /* opcode_t */
    uint32_t slot;  /* OP_LOAD: schema field index */
    double k;       /* OP_CONST */
} insn_t;

struct ks_expr {
    insn_t *code;
    size_t n_code;
    int max_stack;
    char **field_names;     /* indexed by schema slot, only loaded ones set */
    size_t n_field_names;
};

/* ---------------------------------------------------------------- machine */

/* NaN-propagating minimum/maximum with numpy's choice among equal values
 * (np.minimum(0.0, -0.0) is -0.0: the second argument wins a tie). */
static inline double np_minimum(double a, double b)
{
    return (a < b || isnan(a)) ? a : b;
}

static inline double np_maximum(double a, double b)
{
    return (a > b || isnan(a)) ? a : b;
}

static int string_error(const ks_expr_t *e, uint32_t slot, const ks_value_t *v, char *errbuf,
                        size_t errsize)
{
    char shown[48];
    size_t n = v->len < sizeof(shown) - 1 ? v->len : sizeof(shown) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->str[i];
        shown[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    shown[n] = '\0';
    const char *name = slot < e->n_field_names && e->field_names[slot] ? e->field_names[slot]
                                                                       : "?";
    return ks_err(errbuf, errsize, KS_EINVAL,
                  "field '%s' holds the string \"%s%s\" where the expression needs a number",
                  name, shown, v->len > n ? "..." : "");
}

static int run(const ks_expr_t *e, const insn_t *code, size_t n, const ks_value_t *fields,
               double *out, char *errbuf, size_t errsize)
{
    double stack[KS_EXPR_MAX_STACK];
    double *sp = stack; /* next free slot */
    int rc = KS_OK;

    for (size_t pc = 0; pc < n; pc++) {
        const insn_t *in = &code[pc];
        double a, b, c;
        switch ((opcode_t)in->op) {
        case OP_CONST:
            *sp++ = in->k;
            break;
        case OP_LOAD: {
            const ks_value_t *v = &fields[in->slot];
            switch (v->type) {
            case KS_VAL_NUM:
                *sp++ = v->num;
                break;
            case KS_VAL_BOOL:
                *sp++ = v->b ? 1.0 : 0.0;
                break;
            case KS_VAL_STR:
                rc = string_error(e, in->slot, v, errbuf, errsize);
                goto out;
            default: /* missing, null */
                *sp++ = NAN;
                break;
            }
            break;
        }
        /* unary: operate on the top in place */
        case OP_NEG:   sp[-1] = -sp[-1]; break;
        case OP_NOT:   sp[-1] = sp[-1] == 0.0 ? 1.0 : 0.0; break;
        case OP_LOG:   sp[-1] = log(sp[-1]); break;
        case OP_LOG1P: sp[-1] = log1p(sp[-1]); break;
        case OP_LOG2:  sp[-1] = log2(sp[-1]); break;
        case OP_LOG10: sp[-1] = log10(sp[-1]); break;
        case OP_EXP:   sp[-1] = exp(sp[-1]); break;
        case OP_EXPM1: sp[-1] = expm1(sp[-1]); break;
        case OP_SQRT:  sp[-1] = sqrt(sp[-1]); break;
        case OP_ABS:   sp[-1] = fabs(sp[-1]); break;
        case OP_FLOOR: sp[-1] = floor(sp[-1]); break;
        case OP_CEIL:  sp[-1] = ceil(sp[-1]); break;
        case OP_ROUND: sp[-1] = nearbyint(sp[-1]); break;
        case OP_ISNAN: sp[-1] = isnan(sp[-1]) ? 1.0 : 0.0; break;
        case OP_SQUARE: sp[-1] = sp[-1] * sp[-1]; break;
        case OP_RECIP: sp[-1] = 1.0 / sp[-1]; break;
        /* binary: a op b, result replaces a */
#define BINARY(expr_) do { b = *--sp; a = sp[-1]; sp[-1] = (expr_); } while (0)
        case OP_ADD: BINARY(a + b); break;
        case OP_SUB: BINARY(a - b); break;
        case OP_MUL: BINARY(a * b); break;
        case OP_DIV: BINARY(a / b); break;
        case OP_POW: BINARY(pow(a, b)); break;
        case OP_LT:  BINARY(a < b ? 1.0 : 0.0); break;
        case OP_LE:  BINARY(a <= b ? 1.0 : 0.0); break;
        case OP_GT:  BINARY(a > b ? 1.0 : 0.0); break;
        case OP_GE:  BINARY(a >= b ? 1.0 : 0.0); break;
        case OP_EQ:  BINARY(a == b ? 1.0 : 0.0); break;
        case OP_NE:  BINARY(a != b ? 1.0 : 0.0); break;
        case OP_AND: BINARY((a != 0.0 && b != 0.0) ? 1.0 : 0.0); break;
        case OP_OR:  BINARY((a != 0.0 || b != 0.0) ? 1.0 : 0.0); break;
        case OP_MIN: BINARY(np_minimum(a, b)); break;
        case OP_MAX: BINARY(np_maximum(a, b)); break;
        case OP_FILLNA: BINARY(isnan(a) ? b : a); break;
#undef BINARY
        case OP_CLIP:
            c = *--sp;
            b = *--sp;
            a = sp[-1];
            sp[-1] = np_minimum(np_maximum(a, b), c);
            break;
        case OP_IF:
            c = *--sp;
            b = *--sp;
            a = sp[-1];
            sp[-1] = a != 0.0 ? b : c;
            break;
        case OP__COUNT:
            break;
        }
    }
    *out = sp[-1];
out:
    return rc;
}

int ks_expr_eval(const ks_expr_t *e, const ks_value_t *fields, double *out, char *errbuf,
                 size_t errsize)
{
    return run(e, e->code, e->n_code, fields, out, errbuf, errsize);
}

int ks_expr_is_constant(const ks_expr_t *e, double *value)
{
    if (e->n_code != 1 || e->code[0].op != OP_CONST)
        return 0;
    *value = e->code[0].k;
    return 1;
}

int ks_expr_single_field(const ks_expr_t *e)
{
    return e->n_code == 1 && e->code[0].op == OP_LOAD ? (int)e->code[0].slot : -1;
}

size_t ks_expr_disasm(const ks_expr_t *e, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < e->n_code; i++) {
        const insn_t *in = &e->code[i];
        const char *sep = i ? " " : "";
        char *dst = len < size ? buf + len : NULL;
        size_t room = len < size ? size - len : 0;
        int w;
        if (in->op == OP_CONST)
            w = snprintf(dst, room, "%s%.17g", sep, in->k);
        else if (in->op == OP_LOAD)
            w = snprintf(dst, room, "%s%s", sep, e->field_names[in->slot]);
        else
            w = snprintf(dst, room, "%s%s", sep, op_info[in->op].name);
        if (w > 0)
            len += (size_t)w;
    }
    return len;
}

void ks_expr_free(ks_expr_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_field_names; i++)
        free(e->field_names[i]);
    free(e->field_names);
    free(e->code);
    free(e);
}

/* ---------------------------------------------------------------- lexer */

typedef enum {
    TOK_EOF, TOK_NUM, TOK_NAME, TOK_QUOTED, TOK_LPAREN, TOK_RPAREN, TOK_COMMA,
    TOK_PLUS, TOK_MINUS, TOK_STAR, TOK_SLASH, TOK_POW,
    TOK_LT, TOK_LE, TOK_GT, TOK_GE, TOK_EQ, TOK_NE,
    TOK_AND, TOK_OR, TOK_NOT,
} tok_type_t;

typedef struct token {
    tok_type_t type;
    size_t pos;         /* byte offset of the first character */
    size_t len;
    double num;         /* TOK_NUM */
} token_t;

typedef struct parser {
    const char *text;
    size_t text_len;
    size_t pos;         /* lexer position */
    token_t tok;        /* current token */
    const ks_schema_t *schema;
    ks_expr_t *e;
    size_t cap_code;
    int depth;
    char *errbuf;
    size_t errsize;
} parser_t;

static int is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* A short printable rendering of the current token for messages. */
static void describe_token(const parser_t *p, const token_t *t, char *buf, size_t size)
{
    if (t->type == TOK_EOF) {
        snprintf(buf, size, "end of expression");
        return;
    }
    size_t n = t->len > 32 ? 32 : t->len;
    char shown[40];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p->text[t->pos + i];
        shown[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    shown[n] = '\0';
    snprintf(buf, size, "'%s%s'", shown, t->len > n ? "..." : "");
}

static int error_at(parser_t *p, size_t pos, const char *fmt, ...) KS_PRINTF(3, 4);
static int error_at(parser_t *p, size_t pos, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ks_err(p->errbuf, p->errsize, KS_EINVAL, "%s at column %zu", msg, pos + 1);
}

static int unexpected(parser_t *p, const char *expected)
{
    char what[64];
    describe_token(p, &p->tok, what, sizeof(what));
    if (expected)
        return ks_err(p->errbuf, p->errsize, KS_EINVAL, "unexpected %s at column %zu (expected %s)",
                      what, p->tok.pos + 1, expected);
    return ks_err(p->errbuf, p->errsize, KS_EINVAL, "unexpected %s at column %zu", what,
                  p->tok.pos + 1);
}

static int lex_number(parser_t *p, token_t *t)
{
    const char *s = p->text;
    size_t i = p->pos;
    while (is_digit(s[i]))
        i++;
    if (s[i] == '.') {
        i++;
        while (is_digit(s[i]))
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (!is_digit(s[j]))
            return error_at(p, p->pos, "malformed number: exponent has no digits");
        while (is_digit(s[j]))
            j++;
        i = j;
    }
    if (is_name_char(s[i]) || s[i] == '.')
        return error_at(p, i, "unexpected '%c' after a number", s[i]);
    t->len = i - p->pos;
    if (t->len >= MAX_NUMBER_LEN)
        return error_at(p, p->pos, "number longer than 63 characters");
    char tmp[MAX_NUMBER_LEN];
    memcpy(tmp, s + p->pos, t->len);
    tmp[t->len] = '\0';
    t->num = strtod(tmp, NULL); /* overflow gives inf, like Python's float() */
    t->type = TOK_NUM;
    return KS_OK;
}

static int next(parser_t *p)
{
    const char *s = p->text;
    while (p->pos < p->text_len &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
    token_t *t = &p->tok;
    t->pos = p->pos;
    t->len = 1;
    if (p->pos >= p->text_len) {
        t->type = TOK_EOF;
        t->len = 0;
        return KS_OK;
    }
    int c = (unsigned char)s[p->pos];
    int c1 = p->pos + 1 < p->text_len ? (unsigned char)s[p->pos + 1] : 0;
    int rc = KS_OK;
    if (is_digit(c) || (c == '.' && is_digit(c1))) {
        rc = lex_number(p, t);
    } else if (is_name_start(c)) {
        size_t i = p->pos + 1;
        for (;;) {
            while (i < p->text_len && is_name_char((unsigned char)s[i]))
                i++;
            if (i < p->text_len && s[i] == '.') {
                if (i + 1 >= p->text_len || !is_name_char((unsigned char)s[i + 1]))
                    return error_at(p, i, "a field name cannot end with '.'");
                i++;
                continue;
            }
            break;
        }
        t->len = i - p->pos;
        t->type = TOK_NAME;
        if (t->len == 3 && memcmp(s + p->pos, "and", 3) == 0)
            t->type = TOK_AND;
        else if (t->len == 2 && memcmp(s + p->pos, "or", 2) == 0)
            t->type = TOK_OR;
        else if (t->len == 3 && memcmp(s + p->pos, "not", 3) == 0)
            t->type = TOK_NOT;
    } else if (c == '`') {
        const char *end = memchr(s + p->pos + 1, '`', p->text_len - p->pos - 1);
        if (!end)
            return error_at(p, p->pos, "unterminated `quoted name`");
        t->len = (size_t)(end - (s + p->pos)) + 1;
        if (t->len == 2)
            return error_at(p, p->pos, "empty `quoted name`");
        t->type = TOK_QUOTED;
    } else {
        switch (c) {
        case '(': t->type = TOK_LPAREN; break;
        case ')': t->type = TOK_RPAREN; break;
        case ',': t->type = TOK_COMMA; break;
        case '+': t->type = TOK_PLUS; break;
        case '-': t->type = TOK_MINUS; break;
        case '/': t->type = TOK_SLASH; break;
        case '*':
            t->type = c1 == '*' ? TOK_POW : TOK_STAR;
            t->len = c1 == '*' ? 2 : 1;
            break;
        case '<':
            t->type = c1 == '=' ? TOK_LE : TOK_LT;
            t->len = c1 == '=' ? 2 : 1;
            break;
        case '>':
            t->type = c1 == '=' ? TOK_GE : TOK_GT;
            t->len = c1 == '=' ? 2 : 1;
            break;
        case '=':
            if (c1 != '=')
                return error_at(p, p->pos, "unexpected '=' (write == to compare)");
            t->type = TOK_EQ;
            t->len = 2;
            break;
        case '!':
            if (c1 != '=')
                return error_at(p, p->pos, "unexpected '!' (write 'not x' or a != b)");
            t->type = TOK_NE;
            t->len = 2;
            break;
        default:
            if (c >= 0x20 && c < 0x7f)
                return error_at(p, p->pos, "unexpected character '%c'", c);
            else {
                return error_at(p, p->pos, "unexpected byte \\x%02x", (unsigned)c);
            }
        }
    }
    if (rc == KS_OK)
        p->pos = t->pos + t->len;
    return rc;
}

/* ---------------------------------------------------------------- emitter */

static void push_insn(parser_t *p, insn_t in)
{
    ks_expr_t *e = p->e;
    if (e->n_code == p->cap_code) {
        p->cap_code = p->cap_code ? p->cap_code * 2 : 16;
        e->code = ks_xrealloc(e->code, p->cap_code * sizeof(*e->code));
    }
    e->code[e->n_code++] = in;
}

/* Emits an operator; folds it when all its operands are constants (in postfix
 * code the operands of the last operator are the last nargs instructions
 * exactly when each of them is a constant). */
static void emit_op(parser_t *p, opcode_t op)
{
    ks_expr_t *e = p->e;
    if (op == OP_POW && e->code[e->n_code - 1].op == OP_CONST) {
        /* numpy's power ufunc with a scalar exponent computes x**2 as x*x,
         * x**-1 as 1/x and x**0.5 as sqrt(x) (which differ from pow() in the
         * last bit, or for -0 and -inf): do the same */
        double k = e->code[e->n_code - 1].k;
        opcode_t fast = k == 2.0 ? OP_SQUARE : k == -1.0 ? OP_RECIP : k == 0.5 ? OP_SQRT : OP_POW;
        if (fast != OP_POW) {
            e->n_code--;
            op = fast;
        }
    }
    int nargs = op_info[op].nargs;
    int foldable = e->n_code >= (size_t)nargs;
    for (int i = 1; foldable && i <= nargs; i++)
        foldable = e->code[e->n_code - (size_t)i].op == OP_CONST;
    if (foldable) {
        insn_t prog[4];
        memcpy(prog, &e->code[e->n_code - (size_t)nargs], (size_t)nargs * sizeof(insn_t));
        prog[nargs] = (insn_t){.op = op};
        double v = 0;
        run(e, prog, (size_t)nargs + 1, NULL, &v, NULL, 0); /* cannot fail: no loads */
        e->n_code -= (size_t)nargs;
        push_insn(p, (insn_t){.op = OP_CONST, .k = v});
        return;
    }
    push_insn(p, (insn_t){.op = op});
}

/* Resolves a field name to its schema slot (start-up only: linear search). */
static int resolve_field(parser_t *p, const char *name, size_t len, size_t pos)
{
    const ks_schema_t *s = p->schema;
    for (size_t i = 0; s && i < s->n_fields; i++) {
        const char *fn = s->fields[i].name;
        if (strlen(fn) != len || memcmp(fn, name, len) != 0)
            continue;
        if (s->fields[i].type == KS_FIELD_STRING) {
            return error_at(p, pos, "field '%s' is a string and cannot be used in arithmetic "
                            "(use a map, onehot or hash feature for strings)", fn);
        }
        ks_expr_t *e = p->e;
        if (i >= e->n_field_names) {
            e->field_names = ks_xrealloc(e->field_names, s->n_fields * sizeof(char *));
            for (size_t j = e->n_field_names; j < s->n_fields; j++)
                e->field_names[j] = NULL;
            e->n_field_names = s->n_fields;
        }
        if (!e->field_names[i])
            e->field_names[i] = ks_xstrdup(fn);
        push_insn(p, (insn_t){.op = OP_LOAD, .slot = (uint32_t)i});
        return KS_OK;
    }
    return error_at(p, pos, "unknown field '%.*s' (declare it under input.fields)",
                    len > 120 ? 120 : (int)len, name);
}

/* ---------------------------------------------------------------- parser */

static int parse_or(parser_t *p);

static int enter(parser_t *p)
{
    if (++p->depth > MAX_NESTING)
        return error_at(p, p->tok.pos, "expression nested too deeply");
    return KS_OK;
}

static int parse_call(parser_t *p, const token_t *name)
{
    int rc = KS_OK;
    size_t fi;
    for (fi = 0; fi < KS_ARRAY_LEN(functions); fi++)
        if (strlen(functions[fi].name) == name->len &&
            memcmp(functions[fi].name, p->text + name->pos, name->len) == 0)
            break;
    if (fi == KS_ARRAY_LEN(functions)) {
        return error_at(p, name->pos,
                        "unknown function '%.*s' (known: log, log1p, log2, log10, exp, expm1, "
                        "sqrt, abs, floor, ceil, round, isnan, pow, fillna, clip, if, min, max)",
                        name->len > 32 ? 32 : (int)name->len, p->text + name->pos);
    }
    if ((rc = next(p))) /* past '(' */
        goto out;
    int nargs = 0;
    int variadic = functions[fi].max_args < 0;
    if (p->tok.type == TOK_RPAREN) {
        /* no arguments: reported below */
    } else {
        for (;;) {
            if ((rc = parse_or(p)))
                goto out;
            nargs++;
            if (variadic && nargs >= 2)
                emit_op(p, functions[fi].op);
            if (!variadic && nargs > functions[fi].max_args)
                break;
            if (p->tok.type != TOK_COMMA)
                break;
            if ((rc = next(p)))
                goto out;
        }
    }
    if (nargs < functions[fi].min_args || (!variadic && nargs > functions[fi].max_args)) {
        if (variadic)
            rc = error_at(p, name->pos, "%s() takes at least %d arguments", functions[fi].name,
                          functions[fi].min_args);
        else
            rc = error_at(p, name->pos, "%s() takes %d argument%s", functions[fi].name,
                          functions[fi].min_args, functions[fi].min_args == 1 ? "" : "s");
        goto out;
    }
    if (p->tok.type != TOK_RPAREN) {
        rc = unexpected(p, "',' or ')'");
        goto out;
    }
    if (!variadic)
        emit_op(p, functions[fi].op);
    rc = next(p);
out:
    return rc;
}

static int parse_primary(parser_t *p)
{
    int rc = KS_OK;
    token_t t = p->tok;
    if ((rc = enter(p)))
        goto out;
    switch (t.type) {
    case TOK_NUM:
        push_insn(p, (insn_t){.op = OP_CONST, .k = t.num});
        rc = next(p);
        break;
    case TOK_QUOTED:
        if ((rc = resolve_field(p, p->text + t.pos + 1, t.len - 2, t.pos)))
            goto out;
        rc = next(p);
        break;
    case TOK_NAME:
        if ((rc = next(p)))
            goto out;
        if (p->tok.type == TOK_LPAREN)
            rc = parse_call(p, &t);
        else
            rc = resolve_field(p, p->text + t.pos, t.len, t.pos);
        break;
    case TOK_LPAREN:
        if ((rc = next(p)) || (rc = parse_or(p)))
            goto out;
        if (p->tok.type != TOK_RPAREN) {
            char msg[64];
            snprintf(msg, sizeof(msg), "')' to close the '(' at column %zu", t.pos + 1);
            rc = unexpected(p, msg);
            goto out;
        }
        rc = next(p);
        break;
    default:
        rc = unexpected(p, "a number, a field, a function or '('");
        break;
    }
out:
    p->depth--;
    return rc;
}

static int parse_unary(parser_t *p);

static int parse_power(parser_t *p)
{
    int rc = parse_primary(p);
    if (rc == KS_OK && p->tok.type == TOK_POW) {
        if ((rc = next(p)) || (rc = parse_unary(p)))
            return rc;
        emit_op(p, OP_POW);
    }
    return rc;
}

static int parse_unary(parser_t *p)
{
    int rc = KS_OK;
    tok_type_t t = p->tok.type;
    if (t != TOK_MINUS && t != TOK_PLUS)
        return parse_power(p);
    if ((rc = enter(p)) || (rc = next(p)) || (rc = parse_unary(p)))
        goto out;
    if (t == TOK_MINUS)
        emit_op(p, OP_NEG);
out:
    p->depth--;
    return rc;
}

static int parse_term(parser_t *p)
{
    int rc = parse_unary(p);
    while (rc == KS_OK && (p->tok.type == TOK_STAR || p->tok.type == TOK_SLASH)) {
        opcode_t op = p->tok.type == TOK_STAR ? OP_MUL : OP_DIV;
        if ((rc = next(p)) || (rc = parse_unary(p)))
            break;
        emit_op(p, op);
    }
    return rc;
}

static int parse_sum(parser_t *p)
{
    int rc = parse_term(p);
    while (rc == KS_OK && (p->tok.type == TOK_PLUS || p->tok.type == TOK_MINUS)) {
        opcode_t op = p->tok.type == TOK_PLUS ? OP_ADD : OP_SUB;
        if ((rc = next(p)) || (rc = parse_term(p)))
            break;
        emit_op(p, op);
    }
    return rc;
}

static int cmp_op(tok_type_t t, opcode_t *op)
{
    switch (t) {
    case TOK_LT: *op = OP_LT; return 1;
    case TOK_LE: *op = OP_LE; return 1;
    case TOK_GT: *op = OP_GT; return 1;
    case TOK_GE: *op = OP_GE; return 1;
    case TOK_EQ: *op = OP_EQ; return 1;
    case TOK_NE: *op = OP_NE; return 1;
    default: return 0;
    }
}

static int parse_cmp(parser_t *p)
{
    int rc = parse_sum(p);
    opcode_t op;
    if (rc == KS_OK && cmp_op(p->tok.type, &op)) {
        if ((rc = next(p)) || (rc = parse_sum(p)))
            return rc;
        emit_op(p, op);
        if (cmp_op(p->tok.type, &op))
            return error_at(p, p->tok.pos,
                            "comparisons cannot be chained (write (a < b) and (b < c))");
    }
    return rc;
}

static int parse_not(parser_t *p)
{
    int rc = KS_OK;
    if (p->tok.type != TOK_NOT)
        return parse_cmp(p);
    if ((rc = enter(p)) || (rc = next(p)) || (rc = parse_not(p)))
        goto out;
    emit_op(p, OP_NOT);
out:
    p->depth--;
    return rc;
}

static int parse_and(parser_t *p)
{
    int rc = parse_not(p);
    while (rc == KS_OK && p->tok.type == TOK_AND) {
        if ((rc = next(p)) || (rc = parse_not(p)))
            break;
        emit_op(p, OP_AND);
    }
    return rc;
}

static int parse_or(parser_t *p)
{
    int rc = parse_and(p);
    while (rc == KS_OK && p->tok.type == TOK_OR) {
        if ((rc = next(p)) || (rc = parse_and(p)))
            break;
        emit_op(p, OP_OR);
    }
    return rc;
}

static int stack_need(const ks_expr_t *e)
{
    int depth = 0, max = 0;
    for (size_t i = 0; i < e->n_code; i++) {
        depth += 1 - op_info[e->code[i].op].nargs;
        if (depth > max)
            max = depth;
    }
    return max;
}

int ks_expr_compile(const char *text, const ks_schema_t *schema, ks_expr_t **out, char *errbuf,
                    size_t errsize)
{
    int rc = KS_OK;
    parser_t p = {.text = text, .text_len = strlen(text), .schema = schema,
                  .errbuf = errbuf, .errsize = errsize};
    p.e = ks_xcalloc(1, sizeof(*p.e));
    *out = NULL;

    if ((rc = next(&p)))
        goto out;
    if (p.tok.type == TOK_EOF) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "empty expression");
        goto out;
    }
    if ((rc = parse_or(&p)))
        goto out;
    if (p.tok.type != TOK_EOF) {
        rc = unexpected(&p, "an operator or the end");
        goto out;
    }
    p.e->max_stack = stack_need(p.e);
    if (p.e->max_stack > KS_EXPR_MAX_STACK) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "expression needs %d stack slots, more than the %d allowed; simplify it",
                    p.e->max_stack, KS_EXPR_MAX_STACK);
        goto out;
    }
    *out = p.e;
    p.e = NULL;
out:
    ks_expr_free(p.e);
    return rc;
}
