"""The run's tracer provider: OTLP JSON lines in the run folder, optionally OTLP/HTTP too.

The provider is injected, never set globally, so tests and several runs in one
process do not fight over it. Shut it down on every way out (normal end, error,
Ctrl-C): that is what flushes the last spans.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from orchestrator import __version__
from orchestrator.tracing.otlp_json import OtlpJsonFileExporter

SERVICE_NAME = "funding-orchestrator"
TRACE_FILE = "traces.jsonl"
# A replay opens positions in bursts far faster than the default queue (2048)
# drains; a full queue drops spans silently.
QUEUE_SIZE = 1 << 16


def make_provider(
    run_id: str, mode: str, trace_file: Path, otlp_endpoint: str | None = None
) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.version": __version__,
            "fo.run.id": run_id,
            "fo.run.mode": mode,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OtlpJsonFileExporter(trace_file), max_queue_size=QUEUE_SIZE)
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=otlp_endpoint, timeout=5), max_queue_size=QUEUE_SIZE
            )
        )
    return provider
