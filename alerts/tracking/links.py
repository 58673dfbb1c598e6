"""An alert's links, frozen when its blast starts; each recipient's tracked URLs; where /r/ leads.

`/r/<token>/<index>` leads only to link `index` of the alert named by the (signed) token,
as it was when the blast started. The per-recipient part of a link (its query string, e.g.
the signed reference signing reads) travels on the /r/ URL and is passed through as it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..mail.context import external_url
from ..mail.signed_ids import ClickTokens
from ..models import AlertLink

PERSON, AGGREGATE, OFF = "person", "aggregate", "off"
MODES = (PERSON, AGGREGATE, OFF)


def mode() -> str:
    return current_app.config["TRACK_CLICKS"]


def opens_tracked() -> bool:
    """The open pixel is opt-in (TRACK_OPENS=on) and never on when tracking is off."""
    return current_app.config["TRACK_OPENS"] == "on" and mode() != OFF


def freeze(alert_id: int, links: list[tuple[int | None, str]]) -> None:
    """Record the alert's links (action id, URL) in order, once. The caller commits."""
    if db.session.scalar(sa.select(sa.func.count()).where(AlertLink.alert_id == alert_id)):
        return
    db.session.add_all(
        AlertLink(alert_id=alert_id, link_index=i, action_id=action_id, url=url)
        for i, (action_id, url) in enumerate(links)
    )


def frozen(alert_id: int) -> list[AlertLink]:
    return list(db.session.scalars(
        sa.select(AlertLink).where(AlertLink.alert_id == alert_id).order_by(AlertLink.link_index)
    ))


def _carry(frozen_url: str, url: str) -> str | None:
    """The query string `url` adds to `frozen_url` (\"\" if none); None if it is another link."""
    if url == frozen_url:
        return ""
    rest = url[len(frozen_url):]
    if url.startswith(frozen_url) and rest[:1] in ("?", "&") and "#" not in rest:
        return rest[1:]
    return None


@dataclass
class LinkWrapper:
    """Per blast: turns each recipient's action URLs into /r/ URLs with one HMAC per message."""

    base: str  # https://…/r/
    tokens: ClickTokens
    slots: dict[str, tuple[int, str]]  # slot -> (link index, frozen URL)

    @classmethod
    def for_alert(cls, alert_id: int, slot_actions: dict[str, int],
                  slot_urls: dict[str, str] | None = None) -> LinkWrapper | None:
        """None when links go out plain: TRACK_CLICKS=off, or a blast with no frozen links.

        `slot_actions` names the action behind each action slot; `slot_urls` the URL of each
        other link (the intro's)."""
        if mode() == OFF:
            return None
        links = frozen(alert_id)
        by_action = {link.action_id: link for link in links if link.action_id is not None}
        by_url = {link.url: link for link in links if link.action_id is None}
        slots = {slot: (by_action[a].link_index, by_action[a].url)
                 for slot, a in slot_actions.items() if a in by_action}
        slots.update({slot: (by_url[u].link_index, u)
                      for slot, u in (slot_urls or {}).items() if u in by_url})
        if not slots:
            return None
        base = external_url("redirects.follow", token="T", index=0).rsplit("/", 2)[0] + "/"
        return cls(base=base, tokens=ClickTokens.for_alert(alert_id), slots=slots)

    def wrap(self, urls: dict[str, str], delivery_id: int | None) -> dict[str, str]:
        if delivery_id is None:  # a staff test send: nothing to count
            return urls
        token = self.tokens(delivery_id)
        out = dict(urls)
        for slot, url in urls.items():
            known = self.slots.get(slot)
            if known is None:
                continue
            query = _carry(known[1], url)
            if query is None:
                continue  # not the link that was frozen: sent as it is rather than broken
            out[slot] = self.url(token, known[0], query)
        return out

    def index_of(self, slot: str, url: str) -> int | None:
        """The link index `slot` is tracked under while it leads to `url`; None when `url` is
        not the link frozen for it (it is then sent as it is, as `wrap` does)."""
        known = self.slots.get(slot)
        return known[0] if known is not None and known[1] == url else None

    def url(self, token: str, index: int, query: str = "") -> str:
        """A recipient's /r/ URL for one link; `query` is the per-recipient part passed on."""
        return f"{self.base}{token}/{index}" + (f"?{query}" if query else "")


@dataclass
class OpenPixel:
    """Per blast: each recipient's pixel URL, from the same token as their links."""

    base: str  # https://…/o/
    tokens: ClickTokens

    @classmethod
    def for_alert(cls, alert_id: int) -> OpenPixel | None:
        if not opens_tracked():
            return None
        base = external_url("redirects.open_pixel", token="T").rsplit("/", 1)[0] + "/"
        return cls(base=base, tokens=ClickTokens.for_alert(alert_id))

    def __call__(self, delivery_id: int | None) -> str:
        """A test send's pixel is served but counts nothing."""
        return f"{self.base}{self.tokens(delivery_id) if delivery_id is not None else 'test'}.gif"


class _LinkCache:
    """Frozen links never change, so each process keeps the alerts it has seen (LRU)."""

    def __init__(self, size: int = 512):
        self.size, self.lock = size, threading.Lock()
        self.items: OrderedDict[int, tuple[str, ...]] = OrderedDict()

    def get(self, alert_id: int) -> tuple[str, ...]:
        with self.lock:
            urls = self.items.get(alert_id)
            if urls is not None:
                self.items.move_to_end(alert_id)
                return urls
        urls = tuple(link.url for link in frozen(alert_id))
        db.session.rollback()  # the redirect holds no transaction open
        if urls:
            with self.lock:
                self.items[alert_id] = urls
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return urls


def _cache() -> _LinkCache:
    return current_app.extensions.setdefault("alerts.alert_links", _LinkCache())


def destination(alert_id: int, index: int, query: str) -> str | None:
    """Where link `index` of the alert leads, with the click's query string carried over."""
    urls = _cache().get(alert_id)
    if not 0 <= index < len(urls):
        return None
    url = urls[index]
    if query:
        url += ("&" if "?" in url else "?") + query
    return url
