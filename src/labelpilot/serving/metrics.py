"""The model server's Prometheus metrics (prometheus-client), one registry per server so
that several servers in one process (the tests) count apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("labelpilot_predict_requests", "Predict requests answered, by "
                                "model and HTTP status", ["model", "code"], registry=r)
        self.latency = Histogram("labelpilot_predict_seconds", "Predict request latency, "
                                 "from the body read to the answer", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("labelpilot_queue_wait_seconds", "Time a request waited "
                                    "for its batch to start", ["model"],
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("labelpilot_batch_seconds", "Time a batch took to run",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("labelpilot_batch_size", "Requests per batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("labelpilot_queue_depth", "Requests waiting for a batch",
                                 ["model"], registry=r)
        self.errors = Counter("labelpilot_predict_errors", "Predict requests refused or "
                              "failed, by reason", ["model", "reason"], registry=r)
        self.loaded = Gauge("labelpilot_model_loaded", "1 for the version of a model being "
                            "served", ["model", "version", "variant"], registry=r)
        self.swaps = Counter("labelpilot_model_swaps", "Versions swapped in without a restart",
                             ["model"], registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)
