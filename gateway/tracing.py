"""OpenTelemetry spans: one per request, one per stage, exported over OTLP/HTTP.

Off unless ``RAGSERVE_OTLP_ENDPOINT`` is set: the API's no-op tracer then costs nothing. The
request span continues a caller's W3C ``traceparent``; the engine call carries it on to
vLLM, so a vLLM started with ``--otlp-traces-endpoint`` joins the same trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer("ragserve")  # a proxy: real once a provider is installed


def configure_tracing(endpoint: str | None, service_name: str) -> None:
    """Install an OTLP exporter once per process; a no-op when no endpoint is set."""
    if not endpoint or _installed():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    traces = endpoint.rstrip("/")
    if not traces.endswith("/v1/traces"):
        traces += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    trace.set_tracer_provider(provider)


def shutdown_tracing() -> None:
    """Flush spans still queued (a drained gateway's last requests)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def _installed() -> bool:
    return hasattr(trace.get_tracer_provider(), "add_span_processor")


@contextmanager
def request_span(method: str, path: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """The server span of one HTTP request, continuing the caller's trace if it sent one."""
    parent = propagate.extract(headers)
    with tracer.start_as_current_span(
        f"{method} {path}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        yield span


def record_stage(name: str, ms: float) -> None:
    """A span for a stage measured elsewhere (e.g. inside the embedding micro-batcher)."""
    end = time.time_ns()
    span = tracer.start_span(name, start_time=end - int(ms * 1_000_000))
    span.end(end_time=end)
