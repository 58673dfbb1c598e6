"""Where a webhook may go (SSRF rules) and the one HTTP POST to it.

A target is `https://` on a public address. The host is resolved once per send, every address
it resolves to is checked, and the connection is made to the checked address (TLS still
verifies the certificate for the host's name), so a DNS answer that changes between the check
and the connection (rebinding) cannot send the request inside the network.
WEBHOOK_ALLOW_INSECURE=1 (development and tests) also allows `http://` and any address.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import urllib3
from urllib3.exceptions import HTTPError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RESPONSE_CAP = 64 * 1024  # the most of an answer read; its first 500 characters are kept
SNIPPET = 500


class UnsafeTarget(ValueError):
    """A URL webhooks may not be sent to; the message says why, naming the URL or address."""


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (refused, timed out, TLS failed, unsafe)
    latency_ms: int
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def refusal(ip: Address) -> str | None:
    """Why an address is not public ("loopback", "private", ...), or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            why = refusal(mapped)
            return f"IPv4-mapped {why}" if why else None
    for name, flag in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if flag:
            return name
    if not ip.is_global:  # shared (100.64/10), documentation and benchmark ranges, ...
        return "not public"
    return None


def parse(url: str, *, allow_insecure: bool) -> SplitResult:
    """The URL split, or UnsafeTarget: https only (http too when insecure), a host, no credentials."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise UnsafeTarget(f"{url!r} is not a URL: {exc}") from exc
    allowed = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeTarget(f"{url!r}: webhooks go to https:// URLs only"
                           + ("" if allow_insecure else " (http:// needs WEBHOOK_ALLOW_INSECURE=1)"))
    if not parts.hostname:
        raise UnsafeTarget(f"{url!r} names no host")
    if parts.username or parts.password:
        raise UnsafeTarget(f"{url!r}: a webhook URL carries no user name or password")
    if len(url) > 2000:
        raise UnsafeTarget("the URL is longer than 2000 characters")
    return parts


def resolve(host: str, port: int, *, allow_insecure: bool) -> Address:
    """The address to connect to: every address the host resolves to must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    if not allow_insecure:
        for ip in addresses:
            why = refusal(ip)
            if why:
                raise UnsafeTarget(f"{host} resolves to {ip}, a {why} address: webhooks go to public "
                                   "addresses only (WEBHOOK_ALLOW_INSECURE=1 allows it in development)")
    return addresses[0]


def check(url: str, *, allow_insecure: bool) -> None:
    """What adding an endpoint checks (each send checks again): the URL and where it resolves."""
    parts = parse(url, allow_insecure=allow_insecure)
    resolve(parts.hostname or "", parts.port or _default_port(parts), allow_insecure=allow_insecure)


def _default_port(parts: SplitResult) -> int:
    return 443 if parts.scheme == "https" else 80


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         allow_insecure: bool) -> Answer:
    """POST once: no redirect followed, no retry, `timeout` for the whole try, the answer capped."""
    started = time.monotonic()
    deadline = started + timeout

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        parts = parse(url, allow_insecure=allow_insecure)
        host = parts.hostname or ""
        port = parts.port or _default_port(parts)
        ip = resolve(host, port, allow_insecure=allow_insecure)
    except UnsafeTarget as exc:
        return Answer(None, elapsed(), error=str(exc))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc_host = f"[{host}]" if ":" in host else host
    headers = {**headers, "Host": netloc_host if parts.port is None else f"{netloc_host}:{port}"}
    remaining = max(deadline - time.monotonic(), 0.01)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(str(ip), port, server_hostname=host, assert_hostname=host,
                                           cert_reqs="CERT_REQUIRED", maxsize=1, retries=False)
    else:
        pool = urllib3.HTTPConnectionPool(str(ip), port, maxsize=1, retries=False)
    try:
        response = pool.urlopen("POST", path, body=body, headers=headers, redirect=False, retries=False,
                                timeout=urllib3.Timeout(connect=remaining, read=remaining),
                                preload_content=False, assert_same_host=False)
        try:
            chunks: list[bytes] = []
            read = 0
            while read < RESPONSE_CAP:
                if time.monotonic() > deadline:
                    return Answer(None, elapsed(), error=f"no complete answer within {timeout:g} s")
                chunk = response.read(min(8192, RESPONSE_CAP - read), decode_content=False)
                if not chunk:
                    break
                chunks.append(chunk)
                read += len(chunk)
            if time.monotonic() > deadline:
                return Answer(None, elapsed(), error=f"no complete answer within {timeout:g} s")
            text = b"".join(chunks).decode("utf-8", "replace")[:SNIPPET]
            return Answer(response.status, elapsed(), text)
        finally:
            response.release_conn()
            response.close()
    except (HTTPError, OSError) as exc:
        if isinstance(exc, urllib3.exceptions.TimeoutError) or time.monotonic() >= deadline:
            return Answer(None, elapsed(), error=f"no answer within {timeout:g} s")
        return Answer(None, elapsed(), error=_reason(exc))
    finally:
        pool.close()


def _reason(exc: BaseException) -> str:
    """An exception as one short line (urllib3 wraps the cause: name the innermost)."""
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = str(inner) or type(inner).__name__
    return text.splitlines()[0][:300]
