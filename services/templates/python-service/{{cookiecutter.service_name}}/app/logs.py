"""JSON logs on stdout, one object per line: timestamp, level, logger, message, service, and the
ids of the current trace and span (empty outside a span), so a log line leads to its trace."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FIELDS = ["levelname", "name", "message", "trace_id", "span_id"]
# uvicorn adds a copy of some messages with terminal colours; the JSON line keeps the plain one.
SKIPPED = [*RESERVED_ATTRS, "color_message"]


class TraceContext(logging.Filter):
    """Stamps each record with the current span's trace and span ids (hex, as OTLP backends show them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


def formatter(service: str) -> JsonFormatter:
    return JsonFormatter(
        FIELDS,
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": service},
        reserved_attrs=SKIPPED,
        timestamp=True,
    )


def config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for gunicorn's master and workers: everything, gunicorn's and
    uvicorn's own messages included, goes through one JSON handler on stdout. Access lines come from
    the metrics middleware (with the route and the trace id), so gunicorn's access log stays off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace": {"()": TraceContext}},
        "formatters": {"json": {"()": formatter, "service": service}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["trace"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # httpx logs every request at INFO, URL included; the access lines say enough.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
