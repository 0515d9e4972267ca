"""The one redactor: errors, log records (with tracebacks) and data lose every ``${env:...}`` value."""

from __future__ import annotations

import io
import logging

from batchinfer.config import load_config_full
from batchinfer.errors import ConfigError, DeviceError, InputDataError, error_from_dict
from batchinfer.redaction import REDACTOR, RedactingFilter, Redactor
from tests.support.data import job_config


def test_scrub_redacts_message_hint_problems_and_str():
    r = Redactor()
    r.remember(["hunter2", ""])
    exc = ConfigError("bad config", problems=[("input.path", "/data/hunter2 missing")], hint="see hunter2")
    r.scrub(exc)
    assert exc.problems == [("input.path", "/data/*** missing")]
    assert "hunter2" not in exc.message and "hunter2" not in str(exc) and exc.hint == "see ***"
    assert r.data({"a": ["x hunter2"]}) == {"a": ["x ***"]}


def test_logging_filter_redacts_arguments_and_tracebacks():
    r = Redactor()
    r.remember(["hunter2"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(r))
    logger = logging.getLogger("batchinfer.test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("cannot open /data/hunter2")
        except RuntimeError:
            logger.exception("failed on %s", "/data/hunter2")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "failed on /data/***" in text and "RuntimeError: cannot open /data/***" in text


def test_config_loading_remembers_env_values_and_scrubs_its_own_errors(tmp_path):
    cfg = job_config(tmp_path / "ev", tmp_path / "m.onnx", tmp_path / "out", features=["f0"])
    cfg["runtime"]["batch_rows"] = "${env:ROWS_SECRET}"
    try:
        load_config_full(cfg, environ={"ROWS_SECRET": "s3cr3t-rows"})
    except ConfigError as exc:
        assert "s3cr3t-rows" not in str(exc) and "runtime.batch_rows" in exc.message
    else:
        raise AssertionError("expected a ConfigError")
    assert "s3cr3t-rows" in REDACTOR.secrets


def test_error_from_dict_restores_the_type_and_the_hint():
    for exc in (
        InputDataError("column 'f3' has 2 null value(s)", hint="fill them"),
        DeviceError("no GPU", hint="set runtime.device: auto"),
        ConfigError("bad hook", problems=[("model.preprocess", "returned None")]),
    ):
        back = error_from_dict(exc.to_dict())
        assert type(back) is type(exc) and back.exit_code == exc.exit_code
        assert (back.message, back.hint, str(back)) == (exc.message, exc.hint, str(exc))
        assert getattr(back, "problems", None) == getattr(exc, "problems", None)


def test_secrets_in_mapping_keys_are_redacted_too():
    r = Redactor()
    r.remember(["tok-123"])
    doc = {"input": {"rows_by_partition": {"ds=tok-123": 10}}, "partitions": ["ds=tok-123"]}
    assert "tok-123" not in str(r.data(doc))
    assert r.data(doc)["input"]["rows_by_partition"] == {"ds=***": 10}
