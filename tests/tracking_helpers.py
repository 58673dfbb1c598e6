"""Shared steps for click-tracking tests: a blast through a real SMTP server, its links, clicks."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Delivery
from alerts.tracking import drain, recording
from tests.helpers import add_confirmed, blasts, make_alert

BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
# Two actions of the seed: an alert with two tracked buttons.
TWO = ["detention-is-no-place-for-a-child", "sign-the-healthy-kids-healthy-minds-pledge"]
TRACKED = re.compile(r"https://alerts\.example\.org/r/[A-Za-z0-9_-]+/\d+(?:\?\S*)?")


def reset(app) -> None:
    """No clicks left in Redis from another test, no cached links of a reused alert id."""
    r = recording.client()
    base = recording.queue_key()
    keys = [base, f"{base}:pending", f"{base}:lock"] + [k.decode() for k in r.keys(f"{base}:*")]
    r.delete(*keys)
    app.extensions.pop("alerts.alert_links", None)


def send_blast(n: int = 3, slugs: list[str] | None = None, prefix: str = "reader") -> int:
    """An alert sent to `n` confirmed subscribers through the real SMTP sink (no worker needed)."""
    if n:
        add_confirmed(n, prefix)
    alert_id = make_alert(slugs=slugs)
    blasts.start_blast(alert_id)
    first, last = db.session.execute(
        sa.select(sa.func.min(Delivery.id), sa.func.max(Delivery.id)).where(Delivery.alert_id == alert_id)
    ).one()
    blasts.send_batch(alert_id, first, last)
    db.session.commit()
    return alert_id


def links_by_recipient(smtp) -> dict[str, list[str]]:
    """Each recipient's tracked links, from the text part, in the order of the message."""
    out = {}
    for received in smtp.handler.messages:
        text = received.message.get_body(("plain",)).get_content()
        out[received.rcpt_tos[0]] = TRACKED.findall(text)
    return out


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def click(client, url: str, *, method: str = "GET", agent: str = BROWSER_UA, headers=None):
    return client.open(path(url), method=method, headers={"User-Agent": agent, **(headers or {})})


def record_all():
    """What the beat task does, without the hold-back: everything queued is recorded now."""
    result = drain.drain(now=time.time() + 3600, hold=0)
    db.session.rollback()
    return result


def queued() -> int:
    return recording.client().llen(recording.queue_key())
