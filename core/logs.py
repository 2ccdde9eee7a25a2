"""Structured logs: every line that concerns an order carries `order_id`, `task`, `step` and
`request_id`, in whichever process (API server, Celery worker) writes it.

The fields live in a context variable, bound by the request middleware
(`core.middleware.RequestContextMiddleware`), by the Celery signals below for every task,
and by the pipeline for its steps. A logging filter copies them onto each record, so plain
`logger.info(...)` calls need to know nothing about them.

`COT_LOG_FORMAT=json` writes one JSON object per line (production); `console` writes one
readable line with the fields appended (development). This module imports nothing from
Django, because gunicorn's configuration file builds its logging from it too.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from celery import Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from pythonjsonlogger.json import JsonFormatter

FIELDS = ("request_id", "order_id", "task", "step")
REQUEST_ID_HEADER = "X-Request-ID"
# Carried in the Celery message headers, so a pipeline's tasks keep the request's id.
TASK_HEADER = "cot_request_id"
REQUEST_ID_MAX_LENGTH = 64

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "cot_log_context", default=MappingProxyType({})
)


def log_context_get() -> Mapping[str, str]:
    return _context.get()


def log_context_bind(**values: Any) -> contextvars.Token:
    """Add fields to the current context; returns a token for `log_context_reset`."""
    merged = {**_context.get(), **{k: str(v) for k, v in values.items() if v not in (None, "")}}
    return _context.set(merged)


def log_context_reset(token: contextvars.Token) -> None:
    _context.reset(token)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    token = log_context_bind(**values)
    try:
        yield
    finally:
        log_context_reset(token)


def request_id_accept(candidate: str | None) -> str:
    """The client's `X-Request-ID` if it is 1-64 visible ASCII characters, else a new one:
    the id ends up in logs and in the database, so nothing else is taken from outside."""
    if (
        candidate
        and len(candidate) <= REQUEST_ID_MAX_LENGTH
        and all("!" <= char <= "~" for char in candidate)
    ):
        return candidate
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the bound fields onto every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class ConsoleFormatter(logging.Formatter):
    """One readable line, with the context fields appended: `... order_id=... step=...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None)
        )
        return f"{line} [{fields}]" if fields else line


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The `logging.dictConfig` for Django, Celery and gunicorn alike."""
    json_formatter = {
        "()": JsonFormatter,
        "fmt": "%(levelname)s %(name)s %(message)s %(process)d",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",  # ISO 8601, UTC
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"json": json_formatter, "console": {"()": ConsoleFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "console",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # gunicorn adds its own handlers unless told to propagate through ours.
            "gunicorn.error": {"handlers": [], "propagate": True},
            # The request middleware logs every request with its id; gunicorn's own
            # access line would only repeat it without.
            "gunicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            # Celery's "Task ... received" line, one per task, is written by the worker's
            # consumer thread before the task's fields are bound: it carries no order_id,
            # and it cost ~1.4 % of a worker's CPU on the thread that feeds the whole pool.
            # Each task still logs its outcome with its fields (the step's line in
            # orders.tasks, Celery's "succeeded"/"failed"/"retry" lines); Flower shows
            # receipt times when it is attached.
            "celery.worker.strategy": {"level": "WARNING"},
        },
    }


# --- Celery: every task runs with its order, its name and the request that started it -----

_order_arg_position: dict[str, int | None] = {}


def _order_id_of(task: Task, args: tuple, kwargs: dict) -> Any:
    """The task's `order_id` argument, if it has one (positional or keyword)."""
    if "order_id" in kwargs:
        return kwargs["order_id"]
    if task.name not in _order_arg_position:
        try:
            names = list(inspect.signature(task.run).parameters)
        except (TypeError, ValueError):
            names = []
        _order_arg_position[task.name] = names.index("order_id") if "order_id" in names else None
    position = _order_arg_position[task.name]
    if position is not None and position < len(args):
        return args[position]
    return None


_task_tokens: dict[str, contextvars.Token] = {}


@task_prerun.connect
def _bind_task_context(task_id: str, task: Task, args: tuple, kwargs: dict, **_: Any) -> None:
    _task_tokens[task_id] = log_context_bind(
        task=task.name,
        order_id=_order_id_of(task, args or (), kwargs or {}),
        request_id=getattr(task.request, TASK_HEADER, None),
    )


@task_postrun.connect
def _unbind_task_context(task_id: str, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            log_context_reset(token)
        except ValueError:
            # Bound in another context (a pool that runs prerun elsewhere): just clear.
            _context.set(MappingProxyType({}))


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any], **_: Any) -> None:
    request_id = _context.get().get("request_id")
    if request_id and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id
