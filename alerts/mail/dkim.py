"""DKIM signing (RFC 6376, rsa-sha256 or ed25519-sha256, relaxed/relaxed) through OpenSSL.

dkimpy does RSA in pure Python (about 9 ms a signature); `cryptography` takes about
0.4 ms. The key is parsed once per process. dkimpy stays the verifier in the tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .mime import join_message

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from flask import Flask

# Headers the signature covers, when present. Both RFC 8058 headers are in it, and From
# is listed twice so that a second From cannot be added without breaking the signature.
SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "list-unsubscribe", "list-unsubscribe-post", "list-id", "reply-to", "from",
)

_WSP = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


def canon_body_relaxed(body: bytes) -> bytes:
    """RFC 6376 3.4.4, touching only what changes: most bodies have no tab or double space."""
    body = body.replace(b"\t", b" ")
    while b"  " in body:  # bytes.replace runs in C; a regex over the body costs ~0.3 ms
        body = body.replace(b"  ", b" ")
    if b" \r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


_FOLD = re.compile(rb"\r\n(?=[ \t])")
_NOT_A_NAME = re.compile(rb"[^A-Za-z0-9._-]")


def canon_header_relaxed(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2; the regexes run only on the few values that fold or hold runs of space."""
    if b"\r\n" in value:
        value = _FOLD.sub(b"", value)
    if b"\t" in value or b"  " in value:
        value = _WSP.sub(b" ", value)
    return name.strip().lower() + b":" + value.strip() + b"\r\n"


_SIGNED = tuple(name.encode() for name in SIGNED_HEADERS)
_PER_RECIPIENT = frozenset({b"to", b"message-id", b"list-unsubscribe"})


@functools.lru_cache(maxsize=64)
def _header_key(name: bytes) -> bytes:
    return name.strip().lower()


def parse_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header in order; a folded line joins the value above it."""
    out: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            out.append((name, value))
    return out


@functools.lru_cache(maxsize=64)
def _selection(names: tuple[bytes, ...]) -> tuple[tuple[tuple[int, bytes, bool], ...], bytes]:
    """For one order of header names (a blast's messages all share one): which header each
    signed name signs, and the h= tag. Each listed name takes the next occurrence from the
    bottom; a name listed more often than it occurs signs the empty "null" header, which is
    what oversigning is (it is in h= and signs nothing). Each pick also says whether its
    value is one that repeats across a blast's messages (not To, Message-ID, the unsubscribe
    link), so that its canonical form is worth keeping."""
    where: dict[bytes, list[int]] = {}
    for i, name in enumerate(names):
        where.setdefault(_header_key(name), []).append(i)
    picks: list[tuple[int, bytes, bool]] = []
    signed: list[bytes] = []
    used: dict[bytes, int] = {}
    for name in _SIGNED:
        found = where.get(name)
        if not found:
            continue
        signed.append(name)
        n = used[name] = used.get(name, 0) + 1
        if n <= len(found):
            picks.append((found[-n], name, name not in _PER_RECIPIENT))
    return tuple(picks), b":".join(signed)


class DkimConfigError(ValueError):
    """A DKIM setting (domain, selector, key file) cannot be used; the message names it."""


def check_name(setting: str, value: str) -> str:
    """A DKIM domain or selector must be a DNS name: letters, digits, '.', '-' and '_'."""
    if not value or _NOT_A_NAME.search(value.encode("utf-8", "surrogateescape")):
        raise DkimConfigError(f"{setting} {value!r} is not a DNS name (letters, digits, '.', '-' "
                              "and '_' only)")
    return value


class DkimSigner:
    def __init__(self, domain: str, selector: str, private_key_pem: bytes):
        # cryptography is imported here, not at the top: every `alerts` command imports this
        # module, and only signing needs it.
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise DkimConfigError(f"DKIM_PRIVATE_KEY_FILE holds no unencrypted PEM private key ({exc})"
                                  ) from exc
        self.rsa_args = None
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = b"rsa-sha256"
            self.rsa_args = (padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            self.algorithm = b"ed25519-sha256"
        else:
            raise DkimConfigError("DKIM_PRIVATE_KEY_FILE: the key must be RSA or Ed25519")
        self.key = key
        # A DNS name also keeps the tags' relaxed form trivial.
        self.domain = check_name("DKIM_DOMAIN", domain).encode()
        self.selector = check_name("DKIM_SELECTOR", selector).encode()
        # Canonical lines of headers whose values repeat from message to message (From,
        # Subject, Date, List-Id...): a blast's messages share all but three of them.
        self._canon: dict[tuple[bytes, bytes], bytes] = {}
        self._tags_of: tuple[int, bytes, bytes] = (0, b"", b"")

    def _sign(self, data: bytes) -> bytes:
        if self.rsa_args is not None:  # the key is RSA
            return cast("rsa.RSAPrivateKey", self.key).sign(data, *self.rsa_args)
        return cast("ed25519.Ed25519PrivateKey", self.key).sign(hashlib.sha256(data).digest())

    def sign(self, message: bytes, *, canonical_body: bool = False) -> bytes:
        """The message with a DKIM-Signature header prepended.

        `canonical_body`: the caller knows the body is relaxed-canonical already (mail.mime's
        quoted-printable is), which spares two scans and copies of it per message."""
        head, sep, body = message.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("message has no header/body separator")
        return self._signed(parse_headers(head), message, body, canonical_body)

    def sign_parts(self, head: list[tuple[bytes, bytes]], body: bytes, *,
                   canonical_body: bool = False) -> bytes:
        """`sign` for a message still in parts, (name, value) headers and the body: what
        mail.mime builds, signed without joining it and parsing it back."""
        return self._signed(head, None, body, canonical_body)

    def _signed(self, head: list[tuple[bytes, bytes]], message: bytes | None, body: bytes,
                canonical_body: bool) -> bytes:
        picks, signed_names = _selection(tuple([name for name, _ in head]))
        canon = []
        known = self._canon
        for i, name, repeats in picks:
            value = head[i][1]
            if not repeats:  # To, Message-ID, the unsubscribe link: single-line, as a rule
                if b"\r\n" in value or b"\t" in value or b"  " in value:
                    canon.append(canon_header_relaxed(name, value))
                else:  # `name` is canonical already (from SIGNED_HEADERS)
                    canon += (name, b":", value.strip(), b"\r\n")
                continue
            line = known.get((name, value))
            if line is None:
                line = canon_header_relaxed(name, value)
                if len(known) >= 256:  # a new alert, a new second's Date: start afresh
                    known.clear()
                known[(name, value)] = line
            canon.append(line)
        if canonical_body and body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n"):
            canonical = body
        else:
            canonical = canon_body_relaxed(body)
        tags = self._tags(signed_names) + base64.b64encode(hashlib.sha256(canonical).digest()) + b"; b="
        # The tags hold no line break, tab or run of spaces, and start and end with no blank:
        # their relaxed form is the lower-cased name and the value as it is.
        canon.append(b"dkim-signature:" + tags)
        signature = base64.b64encode(self._sign(b"".join(canon)))
        first = b"DKIM-Signature: " + tags + signature + b"\r\n"
        if message is not None:
            return first + message
        return join_message(head, body, first)

    def _tags(self, signed_names: bytes) -> bytes:
        """The tags before bh=, the same for every message signed within one second."""
        now = int(time.time())
        if self._tags_of[:2] != (now, signed_names):
            self._tags_of = (now, signed_names, b"".join([
                b"v=1; a=", self.algorithm, b"; c=relaxed/relaxed; d=", self.domain,
                b"; s=", self.selector, b"; t=", str(now).encode(), b"; h=", signed_names, b"; bh=",
            ]))
        return self._tags_of[2]


class NoSigner:
    """DKIM not configured: messages go out as built, through the same calls."""

    def sign(self, data: bytes, *, canonical_body: bool = False) -> bytes:
        return data

    def sign_parts(self, head: list[tuple[bytes, bytes]], body: bytes, *,
                   canonical_body: bool = False) -> bytes:
        return join_message(head, body)


def signer_for(app: Flask) -> DkimSigner | NoSigner:
    """The app's signer, built once; a NoSigner when DKIM is not configured."""
    if "alerts.dkim" not in app.extensions:
        cfg = app.config
        signer: DkimSigner | NoSigner = NoSigner()
        if cfg.get("DKIM_DOMAIN") and cfg.get("DKIM_SELECTOR") and cfg.get("DKIM_PRIVATE_KEY_FILE"):
            try:
                pem = Path(cfg["DKIM_PRIVATE_KEY_FILE"]).read_bytes()
            except OSError as exc:
                raise DkimConfigError(f"DKIM_PRIVATE_KEY_FILE {cfg['DKIM_PRIVATE_KEY_FILE']} cannot be "
                                      f"read: {exc.strerror}") from exc
            signer = DkimSigner(cfg["DKIM_DOMAIN"], cfg["DKIM_SELECTOR"], pem)
        app.extensions["alerts.dkim"] = signer
    return app.extensions["alerts.dkim"]


def generate_rsa_key(bits: int = 2048) -> tuple[bytes, str]:
    """A new private key (PEM) and the DNS TXT record value that publishes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode()
