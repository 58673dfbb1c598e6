"""The token bucket's Redis round trips: few for a relay with no rate, a chunk at a time for a paced one."""

from __future__ import annotations

import smtplib

import pytest

from alerts.mail import pacer as pacer_mod
from alerts.mail import pacing, smtp

RELAY = "pacing-test.example:25"


def _counted(pace: pacing.Pacing) -> list[int]:
    """Record how many tokens each call to Redis asked for."""
    asked: list[int] = []
    acquire = pace.acquire

    def counting(name, n, ok, max_rate):
        asked.append(n)
        return acquire(name, n, ok, max_rate)

    pace.acquire = counting
    return asked


def test_an_unpaced_relay_is_asked_for_more_tokens_each_time_until_it_pushes_back(app):
    pace = pacing.for_url(app.config["REDIS_URL"])
    asked = _counted(pace)
    pacer = pacer_mod.Pacer(pace, RELAY, pacing.Limits())
    for _ in range(3000):
        assert pacer.take()
    # 20, 40, 80, 160, then 320 at a time: 13 round trips, not 150
    assert asked[:5] == [20, 40, 80, 160, 320]
    assert max(asked) == pacer_mod.UNPACED_CHUNK
    assert len(asked) == 13

    # The relay pushes back: it is paced now, and asked a chunk at a time again.
    pacer.push_back("454 Throttling failure: Maximum sending rate exceeded")
    asked.clear()
    other = pacer_mod.Pacer(pace, RELAY, pacing.Limits())
    for _ in range(3):
        other.take(stop=lambda: True)
    assert pacer.chunk == pacer_mod.CHUNK
    assert asked and set(asked) == {pacer_mod.CHUNK}
    assert other.chunk == pacer_mod.CHUNK


def test_a_paced_relay_is_asked_a_chunk_at_a_time(app):
    pace = pacing.for_url(app.config["REDIS_URL"])
    asked = _counted(pace)
    pacer = pacer_mod.Pacer(pace, RELAY, pacing.Limits(max_rate=100_000))
    for _ in range(500):
        assert pacer.take()
    assert set(asked) == {pacer_mod.CHUNK}
    assert len(asked) >= 500 // pacer_mod.CHUNK


# -- what a relay's refusal means ---------------------------------------------------------

CONNECTION_LIMITS = [
    "421 4.7.0 Too many concurrent SMTP connections",
    "421 4.7.0 mx.example.org Error: too many connections from 192.0.2.7",
    "421 Too many connections from your IP",
    "421 4.3.2 The maximum number of concurrent connections has exceeded a limit",
    "452 4.7.0 Too many SMTP sessions for this host",
    "421 4.7.0 Too many connections, try again later",
]
OUTAGES = [
    "421 Service not available, closing transmission channel",
    "421 4.3.2 System shutting down",
    "421 4.3.0 Temporary system problem, try again later",
    "421 mx.example.org closing connection",
]


def _split(reply: str) -> tuple[int, bytes]:
    code, _, text = reply.partition(" ")
    return int(code), text.encode()


@pytest.mark.parametrize("reply", CONNECTION_LIMITS)
def test_a_refusal_that_says_too_many_connections_lowers_the_cap(reply):
    at_greeting = smtp.refusal(smtplib.SMTPConnectError(*_split(reply)))
    assert at_greeting.too_many_connections and at_greeting.throttled
    assert not at_greeting.relay_down
    at_mail = smtp.refusal(smtplib.SMTPSenderRefused(*_split(reply), "bounce@example.org"))
    assert at_mail.too_many_connections


@pytest.mark.parametrize("reply", OUTAGES)
def test_a_bare_421_is_an_outage_not_a_connection_limit(reply):
    for exc in (smtplib.SMTPConnectError(*_split(reply)),
                smtplib.SMTPRecipientsRefused({"a@example.org": _split(reply)}),
                smtplib.SMTPDataError(*_split(reply))):
        refusal = smtp.refusal(exc)
        assert not refusal.too_many_connections and not refusal.throttled, exc
        assert refusal.connection and refusal.relay_down and not refusal.permanent


@pytest.mark.parametrize("reply", ["451 4.7.1 Rate limit exceeded, slow down",
                                   "454 Throttling failure: Maximum sending rate exceeded",
                                   "421 4.7.0 Try again later, closing connection"])
def test_a_rate_refusal_slows_down_without_lowering_the_cap(reply):
    refusal = smtp.refusal(smtplib.SMTPConnectError(*_split(reply)))
    assert refusal.throttled and not refusal.too_many_connections


def test_a_relay_that_answers_is_skipped_for_seconds_one_that_is_silent_for_longer(app):
    pace = pacing.for_url(app.config["REDIS_URL"])
    answered = [pace.mark_down(RELAY, "421 System shutting down", answered=True)
                for _ in range(8)]
    silent = [pace.mark_down(RELAY + "0", "Connection refused") for _ in range(8)]
    assert answered == [1, 2, 4, 5, 5, 5, 5, 5]
    assert silent == [1, 2, 4, 8, 16, 30, 30, 30]


def test_back_in_says_when_the_first_skipped_relay_may_be_tried(app):
    pace = pacing.for_url(app.config["REDIS_URL"])
    assert pace.back_in([RELAY, RELAY + "0"]) is None
    pace.mark_down(RELAY, "421 System shutting down", answered=True)  # 1 s
    for _ in range(3):
        pace.mark_down(RELAY + "0", "Connection refused")  # 4 s
    assert 0.5 < pace.back_in([RELAY, RELAY + "0"]) <= 1.0
    assert 3.5 < pace.back_in([RELAY + "0"]) <= 4.0
