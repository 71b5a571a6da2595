"""The run's tracer provider: OTLP JSON lines in the run folder, optionally OTLP/HTTP too.

The provider is injected, never set globally, so tests and several runs in one
process do not fight over it. Shut it down on every way out (normal end, error,
Ctrl-C): that is what flushes the last spans. The shutdown is bounded: the file
first (local, fast), then the OTLP/HTTP exporter within a few seconds, so an
unreachable collector never holds a run's exit hostage.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from orchestrator import __version__
from orchestrator.position.tracer import TRACER_NAME
from orchestrator.tracing import otlp_json
from orchestrator.tracing.otlp_json import OtlpJsonFileExporter

SERVICE_NAME = "funding-orchestrator"
TRACE_FILE = "traces.jsonl"
# A replay opens positions in bursts far faster than the default queue (2048)
# drains; a full queue drops spans silently.
QUEUE_SIZE = 1 << 16
# OTLP/HTTP: each export (its retries included) gives up after this, and the
# shutdown waits at most OTLP_SHUTDOWN_SECONDS for what is still queued.
OTLP_TIMEOUT_SECONDS = 2.0
OTLP_SHUTDOWN_SECONDS = 3.0
# The trace file is local: flushing it is fast unless the disk hangs.
FILE_SHUTDOWN_SECONDS = 10.0


def _start(action: Callable[[], object]) -> threading.Thread:
    """``action`` in a daemon thread: one that is abandoned does not hold the exit."""
    thread = threading.Thread(target=action, name="fo-tracing-shutdown", daemon=True)
    thread.start()
    return thread


def _within(seconds: float, action: Callable[[], object]) -> bool:
    """Run ``action`` in a daemon thread; False if it has not finished in time."""
    thread = _start(action)
    thread.join(seconds)
    return not thread.is_alive()


class _WriteErrors(logging.Handler):
    """Collects the trace file exporter's write errors (it logs them from its worker
    thread) so the run can report the file incomplete, in one line, no traceback."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.ERROR)
        self._path = str(path)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self._path not in message:
            return
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {record.exc_info[1]}"
        self.errors.append(message)


class _CollectorLog(logging.Handler):
    """The OpenTelemetry SDK's own log while a run exports over OTLP/HTTP: an
    unreachable collector makes it log every retry of every batch. The first
    record is shown (one line, on stderr), the rest only counted."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(logging.WARNING)
        self._endpoint = endpoint
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.count == 1:
            print(
                f"warning: OTLP/HTTP export to {self._endpoint}: {record.getMessage()} "
                "(further export messages are counted, not shown)",
                file=sys.stderr,
                flush=True,
            )


class RunTracing:
    """The provider of one run, with a bounded shutdown and an immediate stop."""

    def __init__(self, run_id: str, mode: str, trace_file: Path, otlp_endpoint: str | None) -> None:
        resource = Resource.create(
            {
                "service.name": SERVICE_NAME,
                "service.version": __version__,
                "fo.run.id": run_id,
                "fo.run.mode": mode,
            }
        )
        self.trace_file = trace_file
        # No atexit shutdown: ours is bounded, the SDK's would wait 30 s per processor.
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._errors = _WriteErrors(trace_file)
        self._logger = logging.getLogger(otlp_json.__name__)
        self._logger.addHandler(self._errors)
        try:
            self._file_exporter = OtlpJsonFileExporter(trace_file)
        except BaseException:
            self._logger.removeHandler(self._errors)
            raise
        self._file = BatchSpanProcessor(self._file_exporter, max_queue_size=QUEUE_SIZE)
        self.provider.add_span_processor(self._file)
        self._otlp: BatchSpanProcessor | None = None
        self._otlp_exporter: SpanExporter | None = None
        self._otel_logger = logging.getLogger("opentelemetry")
        self._collector_log: _CollectorLog | None = None
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self._collector_log = _CollectorLog(otlp_endpoint)
            self._otel_logger.addHandler(self._collector_log)
            self._otel_propagate = self._otel_logger.propagate
            self._otel_logger.propagate = False

            class _Exporter(OTLPSpanExporter):
                """Shut down once: the processor shuts it down again after us."""

                closed = False

                def shutdown(self) -> None:
                    if not self.closed:
                        self.closed = True
                        super().shutdown()  # type: ignore[no-untyped-call]

            self._otlp_exporter = _Exporter(endpoint=otlp_endpoint, timeout=OTLP_TIMEOUT_SECONDS)
            self._otlp = BatchSpanProcessor(
                self._otlp_exporter,
                max_queue_size=QUEUE_SIZE,
                export_timeout_millis=OTLP_TIMEOUT_SECONDS * 1000,
            )
            self.provider.add_span_processor(self._otlp)
        self._closed = False
        self.otlp_warning: str | None = None

    def tracer(self) -> Tracer:
        return self.provider.get_tracer(TRACER_NAME)

    def shutdown(self) -> list[str]:
        """Flush and close: the trace file first, then the OTLP/HTTP exporter, each
        within its bound. Returns why the trace file is not whole (empty when it
        is); a collector that did not get every span is in ``otlp_warning``."""
        if self._closed:
            return []
        self._closed = True
        problems = []
        if not _within(FILE_SHUTDOWN_SECONDS, self._file.shutdown):
            _within(1.0, self._file_exporter.shutdown)  # whole lines; the rest is dropped
            problems.append(f"not flushed within {FILE_SHUTDOWN_SECONDS:g} s")
        problems += self._errors.errors[:3]
        otlp, exporter = self._otlp, self._otlp_exporter
        if otlp is not None and exporter is not None:
            thread = _start(otlp.shutdown)
            thread.join(OTLP_SHUTDOWN_SECONDS)
            if thread.is_alive():
                # Still retrying an unreachable collector: shutting the exporter down
                # ends its retries, and whatever is queued fails at once.
                exporter.shutdown()
                thread.join(1.0)
                self.otlp_warning = (
                    f"the OTLP/HTTP collector did not take every span within "
                    f"{OTLP_SHUTDOWN_SECONDS:g} s; {self.trace_file.name} has them all"
                )
        self._detach_logs()
        if self._collector_log is not None and self._collector_log.count > 1:
            more = f"{self._collector_log.count - 1} more OTLP/HTTP export messages"
            self.otlp_warning = f"{self.otlp_warning}; {more}" if self.otlp_warning else more
        return problems

    def _detach_logs(self) -> None:
        self._logger.removeHandler(self._errors)
        if self._collector_log is not None:
            self._otel_logger.removeHandler(self._collector_log)
            self._otel_logger.propagate = self._otel_propagate

    def close_now(self) -> None:
        """Stop at once: close the trace file at a line boundary (a write under way
        finishes first) and drop whatever is still queued."""
        if self._closed:
            return
        self._closed = True
        _within(1.0, self._file_exporter.shutdown)
        self._detach_logs()
