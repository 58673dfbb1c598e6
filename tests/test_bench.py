"""The benchmark scripts keep working: each runs with a tiny N and writes complete, consistent JSON.

No timing is asserted here: the figures belong to the benchmarks (see bench/), not to the tests.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean():
    """The benchmarks run in subprocesses with databases of their own: nothing to clean here."""
    yield


def run_bench(script: str, tmp_path: Path, *args: str, timeout: float = 240) -> tuple[dict, str]:
    out = tmp_path / f"{Path(script).stem}.json"
    # The benchmarks wipe the database they are given: never hand them the suite's.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{Path(script).stem}", *args, "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text()), proc.stdout


def test_blast_bench_delivers_every_message(tmp_path):
    n = 200
    r, table = run_bench(
        "blast.py", tmp_path, "--subscribers", str(n), "--reference", "40", "--ceiling-seconds", "0.5",
        "--sink", "python", "--workers", "1", "--concurrency", "2",
    )
    b = r["blast"]
    assert r["complete"] is True
    assert r["subscribers"] == n
    assert b["expected"] == b["messages"] == b["sent"] == n
    assert b["failed"] == 0 and b["alert_state"] == "sent"
    assert b["wall_seconds"] > 0 and b["messages_per_second"] > 0
    assert r["sink"]["count"] >= n + r["reference"]["messages"] + r["sink"]["ceiling"]["messages"]
    assert r["sink"]["name"].startswith("bench/smtpsink.py")
    assert r["sink"]["ceiling"]["messages"] > 0 and r["sink"]["ceiling"]["per_second"] > 0
    assert r["reference"]["messages"] == 40 and r["reference"]["per_second"] > 0
    assert r["ratio_to_reference"] and r["ratio_to_reference"] > 0
    assert r["dkim"] == {"algorithm": "rsa-sha256", "key_bits": 2048, "sample_verified": True}
    workers = r["worker_processes"]
    assert {w["role"] for w in workers} == {"main", "pool child"}
    assert len([w for w in workers if w["role"] == "pool child"]) == 2
    assert all(w["peak_rss_mb"] > 0 for w in workers)
    assert r["peak_worker_rss_mb"] == max(w["peak_rss_mb"] for w in workers)
    assert set(r["targets"]) == {"rate_met", "ratio_met", "rss_met", "cpu_ratio_met"}
    # The per-message CPU floor: one RSA-2048 signature through OpenSSL, measured in the same run.
    floor = r["rsa_floor"]
    assert "RSA-2048" in floor["what"]
    for when in ("before_blast", "during_blast", "after_blast"):
        assert floor[when]["samples"] > 0 and floor[when]["cpu_ms_median"] > 0
    assert floor["cpu_ms"] > 0
    assert b["worker_cpu_seconds"] > 0 and b["worker_cpu_ms_per_message"] > 0
    # the verdict is against the floor measured throughout the blast, under its load
    assert r["worker_cpu_ratio_to_rsa_floor"] == pytest.approx(
        b["worker_cpu_ms_per_message"] / floor["during_blast"]["cpu_ms_median"], rel=0.01)
    assert r["targets"]["cpu_ratio_met"] == (r["worker_cpu_ratio_to_rsa_floor"] <= 1.5)
    assert r["worker_cpu_ratio_to_rsa_floor_before_after"] == pytest.approx(
        b["worker_cpu_ms_per_message"] / floor["cpu_ms"], rel=0.01)
    for words in ("subscribers", "wall seconds", "messages per second", "peak RSS", "sink ceiling",
                  "naive reference", "blast / naive", "RSA floor during the blast",
                  "RSA floor before and after", "worker CPU per message", "worker CPU / RSA floor"):
        assert words in table


def test_signup_bench_loses_nothing(tmp_path):
    n, warm = 300, 20
    r, table = run_bench(
        "signup.py", tmp_path, "--signups", str(n), "--warmup", str(warm), "--clients", "8",
        "--gunicorn-workers", "2",
    )
    c = r["check"]
    assert r["statuses"] == {"303": n} and r["errors"] == 0  # redirected to the answer page
    assert c["accepted"] == c["signup_rows"] == n + warm  # each recorded, decided by its task
    assert c["queue_length"] == c["queued_confirmations"] == n + warm  # ids on the light queue
    assert 1 <= c["drainer_wakes"] <= 4  # woken once per process (the flag: SET NX), not per signup
    assert c["lost"] == c["missing_rows"] == c["not_queued"] == c["duplicate_confirmations"] == 0
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["requests_per_second"] > 0
    assert "SUBSCRIBE_RATE_LIMIT" in r["rate_limit"] and "SUBSCRIBE_RATE_LIMIT" in table
    # The floor: a bare Flask app under the same gunicorn settings, driven by the same client.
    f = r["floor"]
    assert f["server"] == r["server"] == "gunicorn -w 2 -k sync --threads 1"
    assert f["requests"] == n and f["statuses"] == {"200": n} and f["errors"] == 0 and f["accepted"] == n
    assert f["requests_per_second"] > 0
    assert 0 < f["latency_ms"]["p50"] <= f["latency_ms"]["p99"]
    ratio = r["ratio_to_floor"]
    assert ratio["throughput_ratio"] == pytest.approx(r["requests_per_second"] / f["requests_per_second"],
                                                      rel=0.01)
    assert ratio["p99_ratio"] == pytest.approx(lat["p99"] / f["latency_ms"]["p99"], rel=0.01)
    assert ratio["goal"] == {"throughput_ratio_at_least": 0.5, "p99_ratio_at_most": 3.0, "lost": 0}
    assert r["server_cpu_ms_per_signup"] > 0 and f["server_cpu_ms_per_request"] > 0
    assert ratio["server_cpu_ratio"] == pytest.approx(
        r["server_cpu_ms_per_signup"] / f["server_cpu_ms_per_request"], rel=0.02)
    assert ratio["nothing_lost"] is True
    assert ratio["met"] == (ratio["throughput_met"] and ratio["p99_met"])
    for words in ("signups per second", "latency p99", "queued signups", "lost",
                  "floor requests per second", "floor latency p50 / p99", "ratio throughput",
                  "ratio p99", "goal", "server CPU per signup", "ratio server CPU"):
        assert words in table


def test_sign_bench_loses_nothing(tmp_path):
    n, warm, existing = 300, 20, 500
    r, table = run_bench(
        "sign.py", tmp_path, "--signatures", str(n), "--warmup", str(warm), "--clients", "8",
        "--gunicorn-workers", "2", "--existing", str(existing),
    )
    c = r["check"]
    assert r["statuses"] == {"303": n} and r["errors"] == 0
    assert c["accepted"] == c["rows"] == n + warm
    assert c["action_count"] == c["expected_count"] == existing + n + warm
    assert c["lost"] == c["missing_rows"] == c["doubled"] == c["uncounted"] == c["misattributed"] == 0
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert "SIGN_RATE_LIMIT" in r["rate_limit"] and "SIGN_ADDRESS_RATE_LIMIT" in table
    f = r["floor"]
    assert f["server"] == r["server"] == "gunicorn -w 2 -k sync --threads 1"
    assert f["requests"] == n and f["statuses"] == {"200": n} and f["errors"] == 0
    assert "/sign" in f["what"]  # the floor gets the same path and the same form fields
    ratio = r["ratio_to_floor"]
    assert ratio["throughput_ratio"] == pytest.approx(r["requests_per_second"] / f["requests_per_second"],
                                                      rel=0.01)
    assert ratio["p99_ratio"] == pytest.approx(lat["p99"] / f["latency_ms"]["p99"], rel=0.01)
    assert ratio["server_cpu_ratio"] == pytest.approx(
        r["server_cpu_ms_per_signature"] / f["server_cpu_ms_per_request"], rel=0.02)
    assert ratio["nothing_lost"] is True
    for words in ("signatures per second", "latency p99", "action's count", "lost",
                  "floor requests per second", "ratio throughput", "ratio p99", "goal", "ratio server CPU"):
        assert words in table


def test_floor_runs_on_its_own(tmp_path):
    for kind, status in (("post", "200"), ("redirect", "302")):
        r, table = run_bench("floor.py", tmp_path, "--requests", "100", "--warmup", "10", "--clients", "4",
                             "--gunicorn-workers", "2", "--kind", kind)
        assert r["kind"] == kind and r["statuses"] == {status: 100} and r["errors"] == 0
        assert r["requests_per_second"] > 0 and r["latency_ms"]["p99"] > 0
        assert "requests per second" in table


def test_blast_bench_relay_cap_mode(tmp_path):
    """A throttling relay: every message once, none failed, no attempt spent on throttling."""
    r, table = run_bench("blast.py", tmp_path, "--relay-cap", "40", "--subscribers", "80")
    assert r["complete"] and r["unique"] == r["delivered"] == 80 and r["failed"] == 0
    assert r["attempts_spent"] == 0
    assert r["peak_connections"] <= 2
    assert "first to last message" in table and "x (goal <= 1.5x)" in table


def test_staff_pages_bench_runs(tmp_path):
    r, table = run_bench("staff_pages.py", tmp_path, "--subscribers", "2000", "--rounds", "2")
    assert set(r["pages"]) == {"dashboard", "subscriber list", "alert page (draft)",
                               "  dashboard's charts (fetched after the page)",
                               "  draft's recipient count (fetched after the page)"}
    assert [name for name, p in r["pages"].items() if p["after_the_page"]] == [
        "  dashboard's charts (fetched after the page)", "  draft's recipient count (fetched after the page)"]
    assert all(p["median_ms"] > 0 and p["ratio_to_floor"] > 0 for p in r["pages"].values())
    assert "floor: a bare Flask page" in table


def test_api_bench_walks_every_row_and_times_each_page(tmp_path):
    r, table = run_bench("api.py", tmp_path, "--subscribers", "600", "--rounds", "2")
    assert r["complete"] and r["walk_rows"] == 600
    assert set(r["pages"]) >= {"first page", "deep page (cursor 90% down)", "filtered: status=unsubscribed"}
    assert all(p["median_ms"] > 0 and p["ratio_to_floor"] > 0 for p in r["pages"].values())
    assert "the floor" in table


def test_blast_profile_runs(tmp_path):
    r, table = run_bench("profile_blast.py", tmp_path, "--subscribers", "300", "--steps", "50",
                         "--sink", "python")
    assert r["send_batch"]["sent"] == 300
    assert set(r["steps_ms_per_message"]) >= {
        "personalize (token, unsubscribe URL, slot fill)", "MIME build (mail.mime.message_parts)",
        "DKIM sign (mail.dkim, RSA-2048 via OpenSSL)", "SMTP send, one kept pipelined connection (wall)",
    }
    assert all(v > 0 for v in r["steps_ms_per_message"].values())
    assert r["top_functions"]
    assert "milliseconds per message" in table


@pytest.fixture
def sink():
    from bench.lib.sinks import Sink

    s = Sink("python")
    yield s
    s.stop()


def test_python_sink_counts_what_it_accepts(sink):
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as conn:
        conn.sendmail("a@example.org", ["b@example.org"], b"Subject: one\r\n\r\n.leading dot\r\n..\r\n")
        conn.sendmail("a@example.org", ["b@example.org"], b"")  # an empty message
        conn.sendmail("a@example.org", ["b@example.org"], b"Subject: big\r\n\r\n" + b"x" * 200_000 + b"\r\n")
    # A terminator split across writes, and a pipelined envelope.
    with socket.create_connection((sink.host, sink.port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"220")
        raw.sendall(b"EHLO t\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        replies = [f.readline() for _ in range(6 + 1 + 1 + 1)]
        assert replies[-1].startswith(b"354")
        raw.sendall(b"Subject: split\r\n\r\nbody\r")
        raw.sendall(b"\n.")
        raw.sendall(b"\r\n")
        assert f.readline().startswith(b"250")
        raw.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    # BDAT (RFC 3030), pipelined: a message in two chunks whose bytes arrive in pieces (one
    # holding a CRLF.CRLF that is data, not an end), then "BDAT 0 LAST" after a chunk.
    with socket.create_connection((sink.host, sink.port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"220")
        raw.sendall(b"EHLO t\r\n")
        ehlo = [f.readline() for _ in range(6)]
        assert b"250-CHUNKING\r\n" in ehlo
        raw.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 14\r\nSubject:")
        raw.sendall(b" x\r\n\r\nBDAT 9 LAST\r\n.\r\n")
        raw.sendall(b"body\r\n")
        raw.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.org>\r\nBDAT 4\r\nab\r\nBDAT 0 LAST\r\n"
                    b"QUIT\r\n")
        replies = [f.readline() for _ in range(9)]
        assert [r[:3] for r in replies] == [b"250"] * 8 + [b"221"]
        assert b"queued" in replies[3] and b"queued" in replies[7]
    assert sink.wait_for(6, timeout=10) == 6


def test_cli_startup_bench_runs(tmp_path):
    """bench.cli_startup, one run of each command: every row has its figures and ratio."""
    env_redis = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not env_redis:
        pytest.skip("needs a Redis URL for the commands it starts")
    figures, stdout = run_bench("cli_startup.py", tmp_path, "--runs", "1", "--redis-url", env_redis)
    commands = [row["command"] for row in figures["rows"]]
    assert commands[0].startswith("floor") and "alerts alert status 1" in commands
    assert all(row["ratio_to_floor"] > 0 and row["median_wall_s"] > 0 for row in figures["rows"])
    assert "x floor" in stdout


def test_redirect_bench_loses_nothing(tmp_path):
    n = 200
    r, table = run_bench("redirect.py", tmp_path, "--clicks", str(n), "--warmup", "20", "--clients", "4",
                         "--gunicorn-workers", "2")
    assert r["clicks"] == n and r["errors"] == 0 and r["wrong_targets"] == []
    assert r["statuses"] == {"302": n}
    assert r["requests_per_second"] > 0 and r["latency_ms"]["p99"] > 0
    c = r["recording"]
    assert c["answered"] == c["queued_in_redis"] == n + 20
    assert c["rows"] == c["queued_with_target_checks"] and c["rows_by_people"] == n + 20
    assert c["lost"] == 0 and c["left_in_redis"] == 0
    f = r["floor"]
    assert f["kind"] == "redirect" and f["errors"] == 0 and f["statuses"] == {"302": n}
    ratio = r["ratio_to_floor"]
    assert ratio["throughput_ratio"] == pytest.approx(r["requests_per_second"] / f["requests_per_second"],
                                                      rel=0.01)
    for label in ("redirects per second", "latency p99", "floor requests per second", "ratio throughput",
                  "recording rate", "lost"):
        assert label in table


def test_smtp_costs_bench_counts_every_message_by_each_protocol(tmp_path):
    """bench.smtp_costs: the app's pipelined DATA and BDAT with 1, 4, 16 in flight, every
    message counted by the sink (a BDAT reply other than 250 stops the bench)."""
    r, table = run_bench("smtp_costs.py", tmp_path, "--messages", "300")
    assert [row["protocol"].split(",")[0] for row in r["rows"]] == ["DATA", "BDAT", "BDAT", "BDAT"]
    assert all(row["counted"] == 300 and row["client_cpu_us"] > 0 and row["x_rsa"] > 0 for row in r["rows"])
    assert r["rsa_floor"]["cpu_ms_median"] > 0 and "x RSA" in table


def test_message_floor_bench_sends_every_message_and_prices_it_against_rsa(tmp_path):
    """bench.message_floor: the least-Python loop's messages all reach the sink, its ratio
    is to an RSA floor of the same run, and the parts are each timed."""
    r, table = run_bench("message_floor.py", tmp_path, "--messages", "200")
    assert r["counted"] == 220 and r["message_bytes"] > 14_000
    assert r["rsa_floor_ms"] > 0 and r["loop_ms"] > r["rsa_floor_ms"] * 0.9
    assert all(v > 0 for v in r["parts_us"].values()) and "x the RSA floor" in table


def test_a_second_bench_on_the_same_database_is_refused_at_once(tmp_path):
    """Two benches on one database drop the tables under each other's workers (the first then
    waits for its sink forever): the second stops before it touches anything, naming why.
    On the suite's database: an advisory lock on PostgreSQL, a file lock on SQLite."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'bench.db'}"
    from bench.lib import BenchError
    from bench.lib.database import claim_database

    first = claim_database(url)
    with pytest.raises(BenchError, match="another bench is using"):
        claim_database(url)
    first.close()  # the first bench ends: the database is free again
    claim_database(url).close()


def test_audience_bench_counts_what_the_blast_inserts(tmp_path):
    """bench.audience, small: every audience's count equals the rows its blast writes (it stops
    otherwise), each beside the plain count of confirmed subscribers."""
    r, table = run_bench("audience.py", tmp_path, "--subscribers", "400", "--repeat", "1")
    assert r["subscribers"] == 400 and r["floor_ms"] > 0
    assert len(r["audiences"]) == 7 and all(a["count_x_floor"] > 0 for a in r["audiences"].values())
    assert r["audiences"]["everyone, acted too (base rules only)"]["size"] == 400
    assert "x floor" in table


def test_journey_bench_hands_every_person_one_step(tmp_path):
    """bench.journey, small: every due person gets one delivery row (it stops otherwise), with
    the rate beside the blast's own insert of the same rows."""
    r, table = run_bench("journey.py", tmp_path, "--people", "1500", "--batch", "500")
    assert r["people"] == 1500 and r["passes"] == 4 and r["people_per_s"] > 0 and r["floor_s"] > 0
    assert "keep" in table and "x the floor" in table


def test_embed_pow_bench_solves_in_the_browser_and_prices_it(tmp_path):
    """bench.embed_pow, two small challenges: the browser's answers verify (the bench checks
    each), and every figure and ratio is there."""
    if not os.access("/usr/bin/chromium", os.X_OK):
        pytest.skip("needs Debian's Chromium")
    r, table = run_bench("embed_pow.py", tmp_path, "--challenges", "2", "--max-number", "2000")
    assert r["challenges"] == 2 and r["browser_ms_median"] > 0 and r["python_ms_median"] >= 0
    assert r["server_post_us"] > 0 and r["server_post_to_hmac_ratio"] > 0
    assert "browser / floor" in table


def test_webhook_emit_bench_writes_one_row_and_one_task_per_signature(tmp_path):
    """bench.webhook_emit, small: every signature with the endpoint has its outbox row and its
    queued delivery task, beside the floor of signing with no endpoint."""
    r, table = run_bench("webhook_emit.py", tmp_path, "--signatures", "20", "--rounds", "2")
    assert r["outbox_rows"] == r["expected_rows"] == r["tasks_queued"] == 40  # two rounds of 20
    assert [c["ratio_to_floor"] for c in r["cases"]][0] == 1.0
    assert "x the floor" in table
