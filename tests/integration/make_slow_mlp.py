#!/usr/bin/env python3
# make_slow_mlp.py BASE.json VERSION OUT.json - a kscore MLP (16 -> 4 x 1024 -> 1)
# with the base model's features, classes and scaler: correct outputs, about
# 2 ms per row, for the guard's p99 test (test_deployments.sh).
import json, random, sys
random.seed(7)
base = json.load(open(sys.argv[1]))
sizes = [16, 1024, 1024, 1024, 1024, 1]
layers = []
for a, b in zip(sizes, sizes[1:]):
    layers.append({"weights": [[round(random.uniform(-0.05, 0.05), 4) for _ in range(b)] for _ in range(a)],
                   "bias": [0.0] * b})
m = {k: base[k] for k in ("format", "format_version", "task", "feature_names", "classes", "preprocess")}
m.update(model_type="mlp", version=sys.argv[2], objective="slow MLP (guard test)",
         mlp={"hidden_activation": "relu", "link": "logistic", "layers": layers})
json.dump(m, open(sys.argv[3], "w"))
