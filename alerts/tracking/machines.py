"""Which clicks are machines: HEAD requests, prefetchers and link scanners, told apart from people.

Two moments decide: the request itself (`request_reason`, in the redirect) and the click's
neighbours (`bursts`, when clicks are recorded): a security scanner opens every link of a
message within a second or two, which a person reading it does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

# User agents of link scanners, unfurlers and prefetchers (matched case-insensitively).
MACHINE_AGENTS = re.compile(
    r"bot\b|crawler|spider|slurp|preview|prefetch|scanner|"
    r"barracuda|mimecast|proofpoint|safelinks|forcepoint|sophos|trendmicro|symantec|"
    r"fortiguard|cisco|ironport|zscaler|paloalto|messagelabs|"
    r"googleimageproxy|yahoomailproxy|facebookexternalhit|slack|whatsapp|telegram|discord|"
    r"skypeuripreview|microsoft office existence|ms-office|linkexpanding|"
    r"curl/|wget/|python-requests|python-urllib|go-http-client|java/|okhttp|headlesschrome",
    re.IGNORECASE,
)
# Headers browsers send on speculative loads (Chrome, Firefox, Safari) rather than a person's click.
PREFETCH_HEADERS = (("Sec-Purpose", "prefetch"), ("Purpose", "prefetch"), ("X-Purpose", "preview"),
                    ("X-Moz", "prefetch"))

HEAD, PREFETCH, AGENT, BURST, PROXY = "head", "prefetch", "agent", "burst", "proxy"
# How a person's history says why (a click stored before reasons were kept has none).
REASON_WORDS = {HEAD: "a link checker's HEAD request", PREFETCH: "a browser's prefetch",
                AGENT: "a scanner's or preview's user agent", BURST: "several links opened at once",
                PROXY: "a mail privacy proxy"}


def request_reason(method: str, headers: Mapping[str, str] | Headers) -> str:
    """Why this request is a machine's ("" when it may be a person)."""
    if method == "HEAD":
        return HEAD
    for name, marker in PREFETCH_HEADERS:
        if marker in (headers.get(name) or "").lower():
            return PREFETCH
    agent = headers.get("User-Agent") or ""
    if not agent.strip() or MACHINE_AGENTS.search(agent):
        return AGENT
    return ""


def bursts(clicks: list[tuple[float, int]], window: float) -> set[int]:
    """Positions (in `clicks`, one recipient's (time, link) pairs) that belong to a burst.

    A burst is two or more *different* links of one message opened within `window`
    seconds of each other; every click in it is a machine's.
    """
    order = sorted(range(len(clicks)), key=lambda i: clicks[i][0])
    out: set[int] = set()
    for pos, i in enumerate(order):
        t, link = clicks[i]
        for j in order[pos + 1:]:
            if clicks[j][0] - t > window:
                break
            if clicks[j][1] != link:
                out.update((i, j))
    return out


def open_reason(method: str, headers: Mapping[str, str] | Headers) -> str:
    """Why a pixel fetch is a machine's: the same as a click, plus Apple Mail Privacy
    Protection's proxy, which fetches every image of every message as plain "Mozilla/5.0"."""
    reason = request_reason(method, headers)
    if not reason and (headers.get("User-Agent") or "").strip() == "Mozilla/5.0":
        return PROXY
    return reason
