"""What a shared link shows and where the share buttons go: an action's Open Graph and Twitter
card tags, its image's URL, the buttons' links, and the signatures each network brought.

The page's own address (`og:url`) says it was shared (`src=share`); each button's link also
names its network (`source=share-x`), so the staff page can count which shares brought signers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app

from .. import i18n
from ..extensions import db
from ..mail.context import external_url
from ..models import Action, Signature
from . import images
from .catalog import ActionText
from .signing import SHARE

NETWORKS = ("email", "x", "facebook", "whatsapp", "copy")
NETWORK_NAMES = {"email": "Email", "x": "X", "facebook": "Facebook", "whatsapp": "WhatsApp",
                 "copy": "Copied link"}
DESCRIPTION_MAX = 200


@dataclass(frozen=True)
class ShareImage:
    """The image a share shows: its URL's parts, its type and its alt text."""

    digest: str
    ext: str
    content_type: str
    alt: str

    def url(self, slug: str) -> str:
        return external_url("public.action_image", slug=slug, digest=self.digest, ext=self.ext)


def _language_args(text: ActionText) -> dict[str, str]:
    """A page in another language than the default keeps it in the shared link."""
    return {} if text.lang == i18n.default_language() else {"lang": text.lang}


def image_for(action: Action, text: ActionText) -> ShareImage:
    """The uploaded image, else the default card of the title in this language."""
    ref = images.stored_ref(action.id)
    if ref is not None:
        return ShareImage(ref.digest, images.EXTENSIONS[ref.content_type], ref.content_type, ref.alt)
    digest = images.card_digest(action.slug, text.title, current_app.config["ORG_NAME"])
    return ShareImage(digest, "png", "image/png", text.title)


def trimmed(text: str, limit: int = DESCRIPTION_MAX) -> str:
    """`text` on one line, cut at a word before `limit` characters, with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:—-") + "…"


def page_url(action: Action, text: ActionText, network: str | None = None) -> str:
    """The action's page as shared (through `network`, when a button's link)."""
    args = {"src": "share", **_language_args(text)}
    if network is not None:
        args["source"] = f"share-{network}"
    return external_url("public.action", slug=action.slug, **args)


def meta(action: Action, text: ActionText) -> list[tuple[str, str, str]]:
    """The page's share tags: (attribute, name, content), `property` for Open Graph, `name` for
    Twitter's."""
    image = image_for(action, text)
    image_url = image.url(action.slug)
    description = trimmed(text.summary or text.body or text.title)
    site = current_app.config["ORG_NAME"]
    return [
        ("property", "og:type", "website"),
        ("property", "og:site_name", site),
        ("property", "og:title", text.title),
        ("property", "og:description", description),
        ("property", "og:url", page_url(action, text)),
        ("property", "og:locale", text.lang),
        ("property", "og:image", image_url),
        ("property", "og:image:type", image.content_type),
        ("property", "og:image:width", str(images.WIDTH)),
        ("property", "og:image:height", str(images.HEIGHT)),
        ("property", "og:image:alt", image.alt),
        ("name", "twitter:card", "summary_large_image"),
        ("name", "twitter:title", text.title),
        ("name", "twitter:description", description),
        ("name", "twitter:image", image_url),
        ("name", "twitter:image:alt", image.alt),
    ]


def links(action: Action, text: ActionText) -> dict[str, str]:
    """Where each share button goes; each shared link names its network (`source=share-<network>`)."""
    words = f"{text.call_to_action}: {text.title}"
    url = {network: page_url(action, text, network) for network in NETWORKS}
    t = quote(words, safe="")
    return {
        "url": url["copy"],
        "email": f"mailto:?subject={t}&body={quote(words + chr(10) + chr(10) + url['email'], safe='')}",
        "x": f"https://twitter.com/intent/tweet?text={t}&url={quote(url['x'], safe='')}",
        "facebook": f"https://www.facebook.com/sharer/sharer.php?u={quote(url['facebook'], safe='')}",
        "whatsapp": f"https://wa.me/?text={quote(words + ' ' + url['whatsapp'], safe='')}",
    }


@dataclass(frozen=True)
class NetworkCount:
    network: str  # email, x, … or "" (a share with no network named: a forwarded alert, a pasted link)
    name: str
    counted: int
    flagged: int


def by_network(action_id: int) -> list[NetworkCount]:
    """Signatures that came through a share, per network, most first."""
    counted = sa.func.count(Signature.confirmed_at)
    rows = db.session.execute(
        sa.select(Signature.source_code, counted, sa.func.count() - counted)
        .where(Signature.action_id == action_id, Signature.source == SHARE)
        .group_by(Signature.source_code)
    )
    totals: dict[str, list[int]] = {}
    for code, c, f in rows:
        network = (code or "").removeprefix("share-") if (code or "").startswith("share-") else ""
        network = network if network in NETWORKS else ""
        total = totals.setdefault(network, [0, 0])
        total[0] += c
        total[1] += f
    items = [NetworkCount(n, NETWORK_NAMES.get(n, "Other shares"), c, f) for n, (c, f) in totals.items()]
    return sorted(items, key=lambda item: (-item.counted, -item.flagged, item.network == "", item.name))
