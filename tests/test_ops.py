"""Operations: `alerts dkim keygen`, JSON logs, the docker compose file."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest

from alerts import logs
from alerts.cli.ops import txt_chunks
from alerts.mail.dkim import DkimSigner

ROOT = Path(__file__).resolve().parent.parent

MESSAGE = (
    b"From: Action Alerts <alerts@example.org>\r\n"
    b"To: ada@example.net\r\n"
    b"Subject: Close Rikers now\r\n"
    b"Date: Sun, 01 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <keygen-test@example.org>\r\n"
    b"List-Unsubscribe: <https://alerts.example.org/unsubscribe/abc>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Sign the petition today.\r\n"
)


def test_dkim_keygen_writes_a_private_key_and_prints_a_record_that_verifies(app, ctx, tmp_path):
    out = tmp_path / "keys" / "alerts.pem"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["dkim", "keygen", "--selector", "Alerts2026", "--domain", "Example.org.",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    text = result.stdout
    assert "name:  alerts2026._domainkey.example.org" in text
    assert f"DKIM_PRIVATE_KEY_FILE={out.resolve()}" in text
    record = re.search(r"^  value: (.+)$", text, re.M).group(1)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    # The zone-file form splits the value into strings DNS accepts (255 characters at most).
    zone = re.search(r'IN TXT \( (.+) \)$', text, re.M).group(1)
    parts = re.findall(r'"([^"]*)"', zone)
    assert "".join(parts) == record and all(len(p) <= 255 for p in parts) and len(parts) == 2

    signed = DkimSigner("example.org", "alerts2026", out.read_bytes()).sign(MESSAGE)

    def dns(name, timeout=5):
        assert name == b"alerts2026._domainkey.example.org."
        return record.encode()

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Sign the petition", b"Ignore the petition"), dnsfunc=dns)

    again = runner.invoke(args=["dkim", "keygen", "--selector", "alerts2026", "--domain", "example.org",
                                "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    forced = runner.invoke(args=["dkim", "keygen", "--selector", "alerts2026", "--domain", "example.org",
                                 "--out", str(out), "--force", "--bits", "1024"])
    assert forced.exit_code == 0, forced.output
    assert "weak" in forced.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_txt_chunks():
    assert txt_chunks("a" * 600) == ["a" * 255, "a" * 255, "a" * 90]
    assert txt_chunks("short") == ["short"]


def _json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_log_lines_carry_the_extra_fields():
    logger, stream = _json_logger("alerts.test.json")
    logger.info("batch %s done", "1-500", extra={"alert_id": 7, "delivery_id": 12, "subscriber_id": 3})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke", extra={"alert_id": 8})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    assert first["level"] == "INFO" and first["logger"] == "alerts.test.json"
    assert first["message"] == "batch 1-500 done"
    assert (first["alert_id"], first["delivery_id"], first["subscriber_id"]) == (7, 12, 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert "args" not in first and "msg" not in first and "task_id" not in first
    assert second["level"] == "ERROR" and second["alert_id"] == 8
    assert "ValueError: boom" in second["exc_info"]


def test_json_log_lines_name_the_celery_task():
    from celery._state import _task_stack

    from alerts.tasks import send_confirmation

    logger, stream = _json_logger("alerts.test.task")
    send_confirmation.push_request(id="task-123")
    _task_stack.push(send_confirmation)
    try:
        logger.info("inside a task")
    finally:
        _task_stack.pop()
        send_confirmation.pop_request()
    line = json.loads(stream.getvalue())
    assert (line["task_id"], line["task_name"]) == ("task-123", "alerts.tasks.send_confirmation")


def test_configure_logging_only_with_log_format_json():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure_logging(SimpleNamespace(config={"LOG_FORMAT": "text"}))
        assert root.handlers == before
        json_app = SimpleNamespace(config={"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"})
        logs.configure_logging(json_app)
        logs.configure_logging(json_app)  # twice (an app per test, say) adds one handler
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1 and isinstance(added[0].formatter, logs.JsonFormatter)
        assert root.level == logging.WARNING
        # Handlers Celery adds for its loggers get the formatter through its signals.
        from celery.signals import after_setup_task_logger

        task_logger = logging.getLogger("alerts.test.celery")
        task_logger.handlers = [logging.StreamHandler(io.StringIO())]
        after_setup_task_logger.send(sender=None, logger=task_logger, loglevel=logging.INFO,
                                     logfile=None, format="", colorize=False)
        assert isinstance(task_logger.handlers[0].formatter, logs.JsonFormatter)
        task_logger.handlers = []
    finally:
        root.handlers = before
        root.setLevel(level)


def compose_command() -> list[str] | None:
    """`docker compose` (v2), or the older `docker-compose`; None when neither runs."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            ok = subprocess.run([*cmd, "version"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return cmd
    return None


@pytest.mark.slow  # runs docker compose
def test_docker_compose_file_is_valid():
    cmd = compose_command()
    if cmd is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*cmd, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    services = subprocess.run([*cmd, "-f", str(ROOT / "docker-compose.yml"), "--profile", "monitoring",
                               "--profile", "staging",
                               "config", "--services"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert set(services.stdout.split()) >= {
        "web", "worker", "beat", "redis", "postgres", "bounces", "mailpit", "migrate", "flower"}


def test_gunicorn_logs_as_json_only_with_log_format_json(monkeypatch):
    import runpy

    monkeypatch.setenv("LOG_FORMAT", "text")
    assert "logconfig_dict" not in runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    monkeypatch.setenv("LOG_FORMAT", "json")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logconfig_dict"]
    assert conf["formatters"]["json"]["()"] == "alerts.logs.JsonFormatter"
    assert conf["root"]["handlers"] == []  # the app's own handler, added by create_app, is the one
    for name in ("gunicorn.error", "gunicorn.access"):
        assert conf["loggers"][name]["handlers"] == ["json"]
