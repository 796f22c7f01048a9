"""Prometheus metrics of the gateway (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Metrics:
    """One set per app, on its own registry (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ragserve_requests_total", "HTTP requests", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "ragserve_request_seconds", "HTTP request duration (streams: to last byte)",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token_seconds = Histogram(
            "ragserve_first_token_seconds", "Request arrival to first generated token",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inter_token_seconds = Histogram(
            "ragserve_inter_token_seconds", "Mean gap between tokens, one sample a stream",
            buckets=_FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "ragserve_tokens_total", "Tokens by direction", ["direction"], registry=r
        )
        # Per API key ("" without keys): bounded by the configured keys, never by clients.
        self.key_tokens = Counter(
            "ragserve_key_tokens_total", "Tokens by API key and direction, cut streams included",
            ["key", "direction"], registry=r,
        )  # fmt: skip
        self.retrieval_seconds = Histogram(
            "ragserve_retrieval_seconds", "Retrieval latency by stage", ["stage"],
            buckets=_FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.active_streams = Gauge("ragserve_active_streams", "Open SSE streams", registry=r)
        # Set when /metrics is read: a leak of tasks shows as a count that never comes down.
        self.event_loop_tasks = Gauge(
            "ragserve_event_loop_tasks", "asyncio tasks alive in the gateway", registry=r
        )
        self.upstream_healthy = Gauge(
            "ragserve_upstream_healthy", "1 when a replica's breaker is closed", ["upstream"],
            registry=r,
        )  # fmt: skip
        self.admission_backend_errors = Counter(
            "ragserve_admission_backend_errors_total",
            "Admissions decided by this replica alone because Redis was unreachable", registry=r,
        )  # fmt: skip
        self.answer_cache_requests = Counter(
            "ragserve_answer_cache_requests_total",
            "Answer cache lookups by result: hit, miss, or bypass (not cacheable or opted out);"
            " hit rate = hit / (hit + miss)", ["result"], registry=r,
        )  # fmt: skip
        for result in ("hit", "miss", "bypass"):
            self.answer_cache_requests.labels(result)  # exported at 0, so rates have a denominator
        self.answer_cache_errors = Counter(
            "ragserve_answer_cache_errors_total",
            "Answer cache reads (served as misses) and writes (dropped) that Redis failed",
            registry=r,
        )  # fmt: skip
        self.embed_batch_size = Histogram(
            "ragserve_embed_batch_size", "Queries per embedding forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )  # fmt: skip
