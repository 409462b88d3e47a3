/*
 * cli.h - the tools behind the `kscore` command that are not the pipeline:
 * `kscore gen` (cli/gen.c) and `kscore model info|predict` (cli/model_cli.c).
 * Tool code lives here, above the library; main.c wires the subcommands.
 */
#ifndef KS_CLI_H
#define KS_CLI_H

#include <stdio.h>

/* Model tools behind `kscore model info|predict`. Return a KS_EXIT_* code and
 * print errors to stderr. */
int ks_model_cli_info(const char *path, FILE *out);
int ks_model_cli_predict(const char *path, FILE *in, FILE *out);
/* `kscore model reference MODEL --sample train.csv [-o OUT] [--bins N]`:
 * writes the training reference to OUT (default MODEL.reference.json, the
 * sidecar ks_model_load_file reads). */
/* `kscore backtest ...` (cli/backtest.c); argv holds the arguments after
 * "backtest". Returns a KS_EXIT_* code. */
int ks_backtest_cli(int argc, char **argv);
int ks_model_cli_reference(const char *path, const char *sample, const char *out_path,
                           size_t bins);

/* `kscore gen`: open-loop generator of fraud-example events (cli/gen.c). */
typedef struct ks_gen_opts {
    const char *brokers, *topic;
    int to_stdout;              /* write JSON lines instead of producing */
    unsigned long long count;   /* 0 = unbounded (use duration_s) */
    unsigned long long start;   /* first event number (ids are e<start>...) */
    double duration_s;          /* 0 = unbounded (use count) */
    double rate;                /* events/s; 0 = as fast as possible */
    int poisson;                /* exponential inter-arrival gaps */
    unsigned long long keys;    /* distinct user ids (Kafka keys) */
    double zipf_s;              /* 0 = uniform keys, else zipf exponent */
    double malformed_fraction;  /* exactly round(count * f) malformed events */
    unsigned long long seed;
    double tick_us;             /* with rate: wake at most once per tick (0 = per event) */
    double fraud;               /* > 0: the fraud scenario, F = attack start rate (gen.c) */
    const char *labels_path;    /* write {"id","label"} per well-formed event here */
    const char *profiles_path;  /* write the users' profile snapshot here */
    const char *const *props;   /* librdkafka producer "key=value" overrides (-X) */
    size_t n_props;
} ks_gen_opts_t;
int ks_gen_run(const ks_gen_opts_t *opts);

#endif
