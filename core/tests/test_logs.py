"""Log lines carry the bound order fields; request ids are accepted only when sane."""

import io
import json
import logging
import logging.config

import pytest

from core.logs import log_context, logging_config, request_id_accept


def capture(log_format):
    stream = io.StringIO()
    config = logging_config(log_format=log_format, level="INFO")
    handler = logging.StreamHandler(stream)
    formatter_config = dict(config["formatters"][log_format])
    factory = formatter_config.pop("()")
    handler.setFormatter(factory(**formatter_config))
    from core.logs import ContextFilter

    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.logs.{log_format}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger, stream


def test_json_lines_carry_the_bound_fields_and_nothing_once_unbound():
    logger, stream = capture("json")
    with log_context(request_id="r-1", order_id="o-1"), log_context(task="t", step="charge"):
        logger.info("charged %s", "60.00")
    logger.info("outside")

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "charged 60.00" and inside["level"] == "INFO"
    assert {k: inside[k] for k in ("request_id", "order_id", "task", "step")} == {
        "request_id": "r-1",
        "order_id": "o-1",
        "task": "t",
        "step": "charge",
    }
    assert inside["time"].endswith("+00:00")
    assert "order_id" not in outside


def test_console_lines_are_readable_with_the_fields_appended():
    logger, stream = capture("console")
    with log_context(order_id="o-2", step="stock"):
        logger.info("reserved")
    assert stream.getvalue().rstrip().endswith("reserved [order_id=o-2 step=stock]")


@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        ("abc-123_X.y:z", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("tab\there", False),
        ("ünicode", False),
        ("", False),
        (None, False),
    ],
)
def test_request_ids_from_outside_are_kept_only_when_sane(candidate, kept):
    accepted = request_id_accept(candidate)
    if kept:
        assert accepted == candidate
    else:
        assert accepted != candidate and len(accepted) == 32
