/*
 * test_evaluate.c - model/evaluate.h on small cases worked by hand (the
 * large comparison with scikit-learn is tests/cli/test_backtest.sh).
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "model/evaluate.h"

static void test_auc(void)
{
    /* scikit-learn's roc_auc_score docstring example */
    double s[] = {0.1, 0.4, 0.35, 0.8};
    int y[] = {0, 0, 1, 1};
    CHECK_NEAR(ks_eval_auc(s, y, 4), 0.75, 1e-15);
    /* all tied: 0.5; one class only: NaN */
    double t[] = {0.5, 0.5, 0.5, 0.5};
    int u[] = {0, 1, 0, 1};
    CHECK_NEAR(ks_eval_auc(t, u, 4), 0.5, 1e-15);
    int ones[] = {1, 1, 1, 1};
    CHECK(isnan(ks_eval_auc(s, ones, 4)));
    /* a tie across classes counts half: pairs (0.3+,0.3-)=0.5, others 1 */
    double v[] = {0.3, 0.3, 0.9, 0.1};
    int w[] = {1, 0, 1, 0};
    CHECK_NEAR(ks_eval_auc(v, w, 4), 3.5 / 4, 1e-15);
}

static void test_losses(void)
{
    double s[] = {0.9, 0.2, 0.6, 0.0};
    int y[] = {1, 0, 0, 0};
    ks_eval_t e;
    ks_eval_compute(s, y, 4, 0.5, &e);
    CHECK_NEAR(e.log_loss, -(log(0.9) + log(0.8) + log(0.4) + log(1 - 2.220446049250313e-16)) / 4,
               1e-15);
    CHECK_NEAR(e.brier, (0.01 + 0.04 + 0.36 + 0) / 4, 1e-15);
    CHECK_EQ_INT(e.tp, 1);
    CHECK_EQ_INT(e.fp, 1);
    CHECK_EQ_INT(e.tn, 2);
    CHECK_NEAR(e.precision, 0.5, 0);
    CHECK_NEAR(e.recall, 1.0, 0);
    uint64_t cnt[10];
    double ms[10], pr[10];
    ks_eval_calibration(s, y, 4, 10, cnt, ms, pr);
    CHECK_EQ_INT(cnt[9], 1);
    CHECK_EQ_INT(cnt[0], 1);
    CHECK(isnan(ms[5]) && pr[9] == 1.0);
    double *fpr, *tpr;
    size_t n = ks_eval_roc(s, y, 4, &fpr, &tpr);
    CHECK_EQ_INT(n, 5);
    CHECK(fpr[n - 1] == 1 && tpr[n - 1] == 1 && tpr[1] == 1 && fpr[1] == 0);
    free(fpr);
    free(tpr);
}

int main(void)
{
    RUN(test_auc);
    RUN(test_losses);
    return test_summary();
}
