#!/usr/bin/env bash
# Window features with delivery: exactly_once: the crash run of
# test_windows_durability.sh (three kill -9, then a rebalance) inside Kafka
# transactions. The changelog records of each commit interval are produced
# into the interval's transaction before it commits, and an abort restores
# the committed prefix. Passes when a read_committed reader sees every output
# once, with the window features of the uninterrupted run.
KSCORE_TEST_CRASH_SETS="--set delivery=exactly_once"
source "$(dirname "$0")/test_windows_durability.sh"
