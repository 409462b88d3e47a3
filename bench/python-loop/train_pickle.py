"""Trains the basic example's scikit-learn model exactly as examples/basic/train.py
does and pickles it, for the Python-loop baseline (bench/python-loop/run)."""
import importlib.util
import os
import pickle
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("train", os.path.join(root, "examples/basic/train.py"))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
X, y, names = train.features(np.random.default_rng(20261122), 50000)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
with open(sys.argv[1], "wb") as f:
    pickle.dump(model, f)
