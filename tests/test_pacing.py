"""The token bucket's Redis round trips: few for a relay with no rate, a chunk at a time for a paced one."""

from __future__ import annotations

from alerts.mail import pacing

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
    pacer = pacing.Pacer(pace, RELAY, pacing.Limits())
    for _ in range(3000):
        assert pacer.take()
    # 20, 40, 80, 160, then 320 at a time: 13 round trips, not 150
    assert asked[:5] == [20, 40, 80, 160, 320]
    assert max(asked) == pacing.UNPACED_CHUNK
    assert len(asked) == 13

    # The relay pushes back: it is paced now, and asked a chunk at a time again.
    pacer.push_back("454 Throttling failure: Maximum sending rate exceeded")
    asked.clear()
    other = pacing.Pacer(pace, RELAY, pacing.Limits())
    for _ in range(3):
        other.take(stop=lambda: True)
    assert pacer.chunk == pacing.CHUNK
    assert asked and set(asked) == {pacing.CHUNK}
    assert other.chunk == pacing.CHUNK


def test_a_paced_relay_is_asked_a_chunk_at_a_time(app):
    pace = pacing.for_url(app.config["REDIS_URL"])
    asked = _counted(pace)
    pacer = pacing.Pacer(pace, RELAY, pacing.Limits(max_rate=100_000))
    for _ in range(500):
        assert pacer.take()
    assert set(asked) == {pacing.CHUNK}
    assert len(asked) >= 500 // pacing.CHUNK
