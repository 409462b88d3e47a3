"""The hand-written Python loop kscore replaces, written the way a careful team
would: confluent-kafka (librdkafka underneath, like kscore), micro-batches,
numpy features, the scikit-learn model's predict_proba per batch, JSON out,
at-least-once (auto-commit off, idempotent producer, commit after flush).

It computes the basic example's features (examples/basic/pipeline.yaml) and
scores with the same model, so its outputs can be compared with kscore's.
Used by bench/python-loop/run; not a product component.

    loop.py BROKERS IN_TOPIC OUT_TOPIC GROUP MODEL.pkl [REDIS_PORT]   (until SIGTERM)

With REDIS_PORT it also does what hand-written consumers do for feature-store
lookups (bench/lookup/e2e): per event, one blocking redis-py GET of
features:{user_id}, json.loads, and the profile's tx_count_1h, avg_amount_1h
and segment (defaults -1, -2, "unknown", as tests/integration/lib.sh's
lookup_pipeline declares them for kscore) carried into the output record as
"profile.<field>", with the event's sent_at_us when it has one.
"""
import datetime
import json
import pickle
import signal
import sys
import time

import numpy as np
from confluent_kafka import Consumer, Producer

ONEHOT = ["grocery", "travel", "online", "restaurant", "fuel", "electronics", "gambling"]
RISK = {"NG": 2, "BR": 1, "IN": 1}
METHOD = {"card": 0, "wallet": 1, "bank": 2}


def features(ev):
    amount = float(ev["amount"])
    n_tx = float(ev.get("n_tx_24h", 0))
    age = ev.get("account_age_days")
    age = float("nan") if age is None else float(age)
    ts = datetime.datetime.fromisoformat(ev["ts"].replace("Z", "+00:00"))
    pay = ev.get("payment") or {}
    mcc = ev.get("merchant_category", "other")
    row = [amount, np.log1p(amount), n_tx, n_tx / max(age, 1.0) if age == age else 0.0,
           float((0.0 if age != age else age) < 30), float(ts.hour), float(ts.weekday())]
    row += [float(mcc == c) for c in ONEHOT]
    row += [float(RISK.get(pay.get("country", "US"), 0)), float(METHOD.get(pay.get("method", "card"), -1))]
    return row


PROFILE_DEFAULTS = {"tx_count_1h": -1, "avg_amount_1h": -2, "segment": "unknown"}


def profile(r, ev):
    """One GET per event, the hand-written consumer's lookup."""
    raw = r.get("features:%s" % ev.get("user_id", ""))
    try:
        prof = json.loads(raw) if raw is not None else {}
    except ValueError:
        prof = {}
    return {"profile." + k: prof.get(k, d) for k, d in PROFILE_DEFAULTS.items()}


def main():
    brokers, in_topic, out_topic, group, model_path = sys.argv[1:6]
    r = None
    if len(sys.argv) > 6:
        import redis
        r = redis.Redis(host="127.0.0.1", port=int(sys.argv[6]), db=0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True,
                         "linger.ms": 5, "queue.buffering.max.messages": 1000000})
    consumer.subscribe([in_topic])
    print("loop: ready", file=sys.stderr, flush=True)  # imports and model loaded
    last_commit = time.monotonic()
    pending = False  # consumed since the last commit (committing nothing is an error)
    while not stop:
        msgs = consumer.consume(num_messages=500, timeout=0.005)
        pending = pending or bool(msgs)
        good, rows = [], []
        for m in msgs:
            if m.error():
                continue
            ev = json.loads(m.value())
            if r is not None:
                ev["_profile"] = profile(r, ev)
            good.append((m, ev))
            rows.append(features(ev))
        if rows:
            proba = model.predict_proba(np.array(rows))
            now = datetime.datetime.now(datetime.timezone.utc).isoformat()
            for (m, ev), p in zip(good, proba):
                rec = {"id": ev["id"], "user_id": ev.get("user_id"), "amount": ev["amount"],
                       "prediction": int(p[1] >= p[0]),
                       "probabilities": {"0": float(p[0]), "1": float(p[1])},
                       "score": float(p[1]), "confidence": float(max(p)),
                       "label": bool(p[1] >= 0.5), "prediction_time": now}
                if r is not None:
                    rec.update(ev["_profile"])
                    if "sent_at_us" in ev:
                        rec["sent_at_us"] = ev["sent_at_us"]
                while True:
                    try:
                        producer.produce(out_topic, json.dumps(rec, separators=(",", ":")).encode(), key=ev["id"])
                        break
                    except BufferError:
                        producer.poll(0.05)
        producer.poll(0)
        if pending and time.monotonic() - last_commit > 1.0:
            producer.flush()
            consumer.commit(asynchronous=False)
            last_commit, pending = time.monotonic(), False
    producer.flush()
    if pending:
        consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    main()
