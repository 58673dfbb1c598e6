"""Which sites may frame and post the embedded forms: BASE_URL's own origin and EMBED_ORIGINS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


def origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]` of a URL, lower-cased (None for anything that is not http(s))."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def own_origin(cfg: Mapping[str, Any]) -> str:
    return origin_of(cfg["BASE_URL"]) or cfg["BASE_URL"]


def allowed_origins(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The app's own origin first, then each EMBED_ORIGINS entry (normalised as `origin_of` does)."""
    extra = tuple(o for o in (origin_of(x) for x in cfg.get("EMBED_ORIGINS", ())) if o)
    return (own_origin(cfg), *extra)


def frame_ancestors(cfg: Mapping[str, Any]) -> str:
    """The CSP source list of who may frame an embed page: 'self' and EMBED_ORIGINS, nobody else."""
    return " ".join(("'self'", *allowed_origins(cfg)[1:]))


def posting_origin(origin_header: str | None, referer: str | None) -> str | None:
    """Where a POST came from: its Origin header, or its Referer's origin when a browser sent no Origin.

    (`Origin: null`, sent by sandboxed frames and some privacy settings, names no origin.)"""
    if origin_header and origin_header != "null":
        return origin_of(origin_header)
    return origin_of(referer)


def may_post(cfg: Mapping[str, Any], origin_header: str | None, referer: str | None) -> bool:
    """True when the POST comes from this app's pages or from a site in EMBED_ORIGINS."""
    found = posting_origin(origin_header, referer)
    return found is not None and found in allowed_origins(cfg)
