/*
 * main.c - the `kscore` command: run, predict, features, validate, deploy,
 * deployments, model, version.
 * Uses only the public header and the tools of cli/cli.h. Exit codes: 0 ok, 1 runtime failure, 2 bad
 * usage or config (see kscore.h).
 */
#include "cli/cli.h"
#include "kscore/kscore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ks_pipeline_t *running;

static void usage(FILE *out)
{
    fprintf(out,
            "kscore %s - real-time ML predictions on Kafka streams\n\n"
            "Usage:\n"
            "  kscore run      -c pipeline.yaml [--set key=value ...]   run on Kafka until SIGTERM\n"
            "  kscore predict  -c pipeline.yaml [--set ...] [--lookup NAME=snapshot.jsonl] < events.jsonl > predictions.jsonl\n"
            "                  the same decode/features/model/encode path, offline;\n"
            "                  dead letters go to stderr as JSON lines\n"
            "  kscore features -c pipeline.yaml [--set ...] [--lookup NAME=snapshot.jsonl] < history.jsonl > features.csv\n"
            "                  point-in-time feature rows for training sets, through the same\n"
            "                  decode/lookups/windows/features path (no model needed): a header,\n"
            "                  then id (output.id_field), line, and every feature column in order\n"
            "  kscore validate -c pipeline.yaml [--set ...] [--online]  check config and model\n"
            "                                          (--online: and that the topics exist;\n"
            "                                          exactly_once: that transactions work)\n"
            "  kscore deploy   -c pipeline.yaml [--model m.json] --version V\n"
            "                  (--shadow | --canary PERCENT | --ab V1=P1,V2=P2 | --promote |\n"
            "                   --rollback | --retire) [--reason TEXT]\n"
            "                  writes a deployment to model.deployments_topic (docs/deployments.md)\n"
            "  kscore deployments -c pipeline.yaml [--json]   the state every replica applies\n"
            "  kscore model info FILE                                   model metadata\n"
            "  kscore model predict FILE < rows.csv                     score raw feature rows\n"
            "  kscore backtest -c pipeline.yaml --events history.jsonl --labels labels.jsonl\n"
            "                  (or --topic T --from 2026-11-01T00:00Z [--to TIME] for --events)\n"
            "                  [--model candidate.json ...] --out DIR   replay history through\n"
            "                  each model, report AUC, log loss, ... and plots in DIR\n"
            "  kscore model reference FILE --sample train.csv [-o OUT] [--bins N]\n"
            "                  store the training reference drift is measured against\n"
            "                  (default OUT: FILE.reference.json, read with the model)\n"
            "  kscore gen --topic T [--brokers B] [--count N | --duration S] [--rate R]\n"
            "             [--poisson] [--keys K] [--zipf S] [--malformed F] [--seed N]\n"
            "             [--start N] [--stdout] [--fraud F] [--labels FILE] [--profiles FILE]\n"
            "                  open-loop fraud-example event generator\n"
            "  kscore config-reference [--markdown]                     every config key\n"
            "  kscore version\n\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config or model.\n",
            ks_version());
}

static void on_signal(int sig)
{
    if (!running)
        return;
    if (sig == SIGHUP)
        ks_pipeline_request_reload(running);
    else
        ks_pipeline_stop(running);
}

typedef struct args {
    int online;             /* validate --online */
    int deploy;             /* deploy / deployments: their options are allowed */
    int json;               /* deployments --json */
    ks_deploy_request_t req;
    const char *config;
    const char **sets;
    size_t n_sets;
    char **owned;       /* --lookup rewritten as --set */
    size_t n_owned;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    a->sets = calloc((size_t)argc + 1, sizeof(char *));
    a->owned = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if ((!strcmp(arg, "-c") || !strcmp(arg, "--config")) && i + 1 < argc)
            a->config = argv[++i];
        else if (!strncmp(arg, "--config=", 9))
            a->config = arg + 9;
        else if (!strcmp(arg, "--set") && i + 1 < argc)
            a->sets[a->n_sets++] = argv[++i];
        else if (!strncmp(arg, "--set=", 6))
            a->sets[a->n_sets++] = arg + 6;
        else if (!strcmp(arg, "--online"))
            a->online = 1;
        else if (a->deploy && !strcmp(arg, "--json"))
            a->json = 1;
        else if (a->deploy && (!strcmp(arg, "--shadow") || !strcmp(arg, "--promote") ||
                               !strcmp(arg, "--rollback") || !strcmp(arg, "--retire"))) {
            if (a->req.action) {
                fprintf(stderr, "kscore deploy: give one action, not %s and %s\n",
                        a->req.action, arg + 2);
                return KS_EXIT_USAGE;
            }
            a->req.action = arg + 2;
        } else if (a->deploy && i + 1 < argc &&
                   (!strcmp(arg, "--canary") || !strcmp(arg, "--ab"))) {
            if (a->req.action) {
                fprintf(stderr, "kscore deploy: give one action, not %s and %s\n",
                        a->req.action, arg + 2);
                return KS_EXIT_USAGE;
            }
            a->req.action = arg + 2;
            const char *v = argv[++i];
            if (arg[2] == 'a') {
                a->req.variants = v;
            } else {
                char *end;
                a->req.percent = strtod(v, &end);
                if (end == v || *end) {
                    fprintf(stderr, "kscore deploy: --canary %s: expected a percent\n", v);
                    return KS_EXIT_USAGE;
                }
            }
        } else if (a->deploy && i + 1 < argc && !strcmp(arg, "--model"))
            a->req.model_path = argv[++i];
        else if (a->deploy && i + 1 < argc && !strcmp(arg, "--version"))
            a->req.version = argv[++i];
        else if (a->deploy && i + 1 < argc && !strcmp(arg, "--reason"))
            a->req.reason = argv[++i];
        else if (!strcmp(arg, "--lookup") && i + 1 < argc) {
            /* --lookup profile=file.jsonl: that lookup reads a snapshot, not Redis */
            const char *v = argv[++i], *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "kscore: --lookup %s: expected NAME=FILE.jsonl\n", v);
                return KS_EXIT_USAGE;
            }
            size_t n = strlen(v) + 32;
            char *set = malloc(n);
            snprintf(set, n, "lookups.%.*s.snapshot=%s", (int)(eq - v), v, eq + 1);
            a->owned[a->n_owned++] = set;
            a->sets[a->n_sets++] = set;
        } else {
            fprintf(stderr, "kscore: unexpected argument '%s' (see kscore --help)\n", arg);
            return KS_EXIT_USAGE;
        }
    }
    if (!a->config) {
        fprintf(stderr, "kscore: missing -c pipeline.yaml (see kscore --help)\n");
        return KS_EXIT_USAGE;
    }
    return KS_EXIT_OK;
}

static int cmd_pipeline(const char *cmd, int argc, char **argv)
{
    args_t a = {0};
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    char err[1024];
    a.deploy = !strcmp(cmd, "deploy") || !strcmp(cmd, "deployments");
    int rc = parse_args(argc, argv, &a);
    if (rc)
        goto out;
    if (!strcmp(cmd, "deploy") && !a.req.action) {
        fprintf(stderr, "kscore deploy: give an action: --shadow, --canary PERCENT, --ab "
                        "V1=P1,V2=P2, --promote, --rollback or --retire\n");
        rc = KS_EXIT_USAGE;
        goto out;
    }
    int features = !strcmp(cmd, "features");
    if (ks_config_load(a.config, a.sets, a.n_sets, &cfg, err, sizeof(err)) ||
        (features ? ks_pipeline_new_features(cfg, &p, err, sizeof(err))
                  : ks_pipeline_new(cfg, &p, err, sizeof(err)))) {
        fprintf(stderr, "kscore: %s\n", err);
        rc = KS_EXIT_USAGE;
        goto out;
    }
    if (!strcmp(cmd, "deploy") || !strcmp(cmd, "deployments")) {
        rc = cmd[6] ? ks_pipeline_deployments(p, stdout, a.json, err, sizeof(err))
                    : ks_pipeline_deploy(p, &a.req, stdout, err, sizeof(err));
        if (rc)
            fprintf(stderr, "kscore %s: %s\n", cmd, err);
    } else if (!strcmp(cmd, "validate")) {
        ks_pipeline_describe(p, stdout);
        if (a.online) {
            if ((rc = ks_pipeline_check_topics(p, 15000, err, sizeof(err))))
                fprintf(stderr, "kscore: %s\n", err);
            else
                printf("%s\n", err); /* what was checked */
        }
    } else if (!strcmp(cmd, "predict")) {
        rc = ks_pipeline_predict_stream(p, stdin, stdout, stderr);
    } else if (features) {
        rc = ks_pipeline_features_stream(p, stdin, stdout, stderr);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        running = p;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        ks_obs_t *obs = NULL;
        if (ks_obs_start(p, &obs, err, sizeof(err))) {
            fprintf(stderr, "kscore: %s\n", err);
            rc = KS_EXIT_USAGE;
            goto out;
        }
        if ((rc = ks_pipeline_check_topics(p, 15000, err, sizeof(err))) == KS_EXIT_USAGE) {
            fprintf(stderr, "kscore: %s\n", err);
            ks_obs_stop(obs);
            goto out;
        }
        rc = ks_pipeline_run(p);
        running = NULL;
        if (ks_pipeline_free(p) != 0) /* a stuck worker may still call the observers */
            goto out_stuck;
        p = NULL;
        ks_obs_stop(obs);
    }
out:
    if (ks_pipeline_free(p) == 0) /* else a stuck worker still uses both: just exit */
        ks_config_free(cfg);
out_stuck:
    for (size_t i = 0; i < a.n_owned; i++)
        free(a.owned[i]);
    free(a.owned);
    free(a.sets);
    return rc;
}

static int cmd_gen(int argc, char **argv)
{
    ks_gen_opts_t o = {.brokers = "127.0.0.1:9092", .keys = 10000, .seed = 1, .tick_us = 200};
    const char **props = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_props = 0;
    int rc = KS_EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("kscore gen - open-loop fraud-example event generator (a Kafka producer)\n\n"
                   "  --topic T          topic to produce to (or --stdout: JSON lines)\n"
                   "  --brokers B        bootstrap servers (default 127.0.0.1:9092)\n"
                   "  --count N          number of events, and/or\n"
                   "  --duration S       seconds to run (whichever ends first)\n"
                   "  --rate R           events/s, constant gaps (0 = as fast as possible)\n"
                   "  --poisson          exponential gaps with mean 1/R instead\n"
                   "  --keys K           distinct user ids, the Kafka keys (default 10000)\n"
                   "  --zipf S           zipf(S) key popularity (default 0 = uniform)\n"
                   "  --malformed F      fraction of malformed events, exactly floor(N*F)\n"
                   "  --seed N           same seed, same events (default 1)\n"
                   "  --start N          first event number (ids e<N>, e<N+1>, ...)\n"
                   "  --tick-us T        with --rate, wake at most every T us and send what\n"
                   "                     is due (default 200; 0 = wake for every event)\n"
                   "  --fraud F          the fraud scenario of examples/fraud: a merchant_id,\n"
                   "                     amounts around each user's usual, and card-testing\n"
                   "                     bursts starting at an event with probability F times\n"
                   "                     the user's risk (new account, past chargebacks)\n"
                   "  --labels FILE      the label of every well-formed event, JSON lines\n"
                   "                     {\"id\",\"label\"} (1 = an attack's transaction)\n"
                   "  --profiles FILE    the profiles of users u0..u(K-1) as a lookup snapshot\n"
                   "                     ({\"key\":\"features:uN\",\"value\":{...}} lines); alone\n"
                   "                     (no --count/--duration), writes only these\n"
                   "  -X key=value       librdkafka producer property, e.g. -X linger.ms=1\n\n"
                   "Each event carries sent_at_us, its intended send time (epoch us). A JSON\n"
                   "summary goes to stderr (sent, acked, rate, send lateness, CPU).\n");
            rc = KS_EXIT_OK;
            goto out;
        }
        if (!strcmp(a, "--stdout")) {
            o.to_stdout = 1;
            continue;
        }
        if (!strcmp(a, "--poisson")) {
            o.poisson = 1;
            continue;
        }
        if (!strncmp(a, "-X", 2) && a[2]) { /* -Xkey=value, as kcat accepts */
            props[n_props++] = a + 2;
            continue;
        }
        if (!v)
            goto bad;
        i++;
        if (!strcmp(a, "-X"))
            props[n_props++] = v;
        else if (!strcmp(a, "--brokers"))
            o.brokers = v;
        else if (!strcmp(a, "--topic"))
            o.topic = v;
        else if (!strcmp(a, "--count"))
            o.count = strtoull(v, &end, 10);
        else if (!strcmp(a, "--start"))
            o.start = strtoull(v, &end, 10);
        else if (!strcmp(a, "--duration"))
            o.duration_s = strtod(v, &end);
        else if (!strcmp(a, "--rate"))
            o.rate = strtod(v, &end);
        else if (!strcmp(a, "--keys"))
            o.keys = strtoull(v, &end, 10);
        else if (!strcmp(a, "--zipf"))
            o.zipf_s = strtod(v, &end);
        else if (!strcmp(a, "--malformed"))
            o.malformed_fraction = strtod(v, &end);
        else if (!strcmp(a, "--seed"))
            o.seed = strtoull(v, &end, 10);
        else if (!strcmp(a, "--tick-us"))
            o.tick_us = strtod(v, &end);
        else if (!strcmp(a, "--fraud"))
            o.fraud = strtod(v, &end);
        else if (!strcmp(a, "--labels"))
            o.labels_path = v;
        else if (!strcmp(a, "--profiles"))
            o.profiles_path = v;
        else
            goto bad;
        if (end && (*end || end == v))
            goto bad;
        continue;
    bad:
        fprintf(stderr, "kscore gen: bad argument '%s' (see kscore gen --help)\n", a);
        goto out;
    }
    if (!o.count && o.duration_s <= 0 && !o.profiles_path) {
        fprintf(stderr, "kscore gen: give --count N or --duration SECONDS\n");
        goto out;
    }
    o.props = props;
    o.n_props = n_props;
    rc = ks_gen_run(&o);
out:
    free(props);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return KS_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return KS_EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kscore %s\n", ks_version());
        return KS_EXIT_OK;
    }
    if (!strcmp(cmd, "config-reference")) {
        ks_config_print_reference(stdout, argc > 2 && !strcmp(argv[2], "--markdown"));
        return KS_EXIT_OK;
    }
    if (!strcmp(cmd, "gen"))
        return cmd_gen(argc - 2, argv + 2);
    if (!strcmp(cmd, "run") || !strcmp(cmd, "predict") || !strcmp(cmd, "features") ||
        !strcmp(cmd, "validate") ||
        !strcmp(cmd, "deploy") || !strcmp(cmd, "deployments"))
        return cmd_pipeline(cmd, argc - 2, argv + 2);
    if (!strcmp(cmd, "model") && argc == 4 && !strcmp(argv[2], "info"))
        return ks_model_cli_info(argv[3], stdout);
    if (!strcmp(cmd, "model") && argc == 4 && !strcmp(argv[2], "predict"))
        return ks_model_cli_predict(argv[3], stdin, stdout);
    if (!strcmp(cmd, "backtest"))
        return ks_backtest_cli(argc - 2, argv + 2);
    if (!strcmp(cmd, "model") && argc >= 4 && !strcmp(argv[2], "reference")) {
        const char *sample = NULL, *outp = NULL;
        long bins = 10;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--sample") && i + 1 < argc)
                sample = argv[++i];
            else if (!strcmp(argv[i], "-o") && i + 1 < argc)
                outp = argv[++i];
            else if (!strcmp(argv[i], "--bins") && i + 1 < argc)
                bins = strtol(argv[++i], NULL, 10);
            else
                sample = NULL, i = argc;
        }
        if (!sample || bins < 2) {
            fprintf(stderr, "usage: kscore model reference FILE --sample train.csv [-o OUT] "
                            "[--bins N]\n");
            return KS_EXIT_USAGE;
        }
        return ks_model_cli_reference(argv[3], sample, outp, (size_t)bins);
    }
    fprintf(stderr, "kscore: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return KS_EXIT_USAGE;
}
