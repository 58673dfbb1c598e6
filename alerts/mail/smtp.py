"""SMTP delivery to whatever relay SMTP_URL names; errors are sorted into retry or give up."""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class MailConfigError(ValueError):
    pass


def parse_smtp_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise MailConfigError(
            f"SMTP_URL scheme must be one of {', '.join(SCHEMES)}; got {parts.scheme!r}"
        )
    if not parts.hostname:
        raise MailConfigError("SMTP_URL has no host")
    return {
        "scheme": parts.scheme,
        "host": parts.hostname,
        "port": parts.port or SCHEMES[parts.scheme],
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def connect(url: str, timeout: float = 30) -> smtplib.SMTP:
    cfg = parse_smtp_url(url)
    if cfg["scheme"] == "smtps":
        conn: smtplib.SMTP = smtplib.SMTP_SSL(
            cfg["host"], cfg["port"], timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = smtplib.SMTP(cfg["host"], cfg["port"], timeout=timeout)
        if cfg["scheme"] == "smtp+starttls":
            conn.starttls(context=ssl.create_default_context())
    conn.ehlo()  # learn the extensions (PIPELINING) before the first message
    if cfg["username"]:
        conn.login(cfg["username"], cfg["password"] or "")
    return conn


@dataclass(frozen=True)
class Refusal:
    """What an SMTP failure means for the message: the one place replies are sorted."""

    code: int | None  # None: no answer at all (connection refused, dropped, timed out)
    text: str
    at_recipient: bool  # refused at RCPT: about this address, not the message or the relay
    connection: bool  # the sender, the relay or the connection failed: nothing about this recipient

    @property
    def permanent(self) -> bool:
        """5xx is final for that recipient; everything else (4xx, network) may pass later."""
        return self.code is not None and 500 <= self.code < 600

    @property
    def hard_bounce(self) -> bool:
        """A 5xx at RCPT: the address does not exist or will never take mail from us."""
        return self.permanent and self.at_recipient

    @property
    def detail(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def refusal(exc: BaseException) -> Refusal:
    """Sort an smtplib or network exception into a Refusal."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        if replies:
            # The worst answer decides: one 4xx among 5xx still means "try again".
            code, text = min(replies, key=lambda r: r[0])
            return Refusal(code, _text(text), at_recipient=True, connection=False)
        return Refusal(None, "no recipient accepted", at_recipient=True, connection=False)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPConnectError):
        return Refusal(exc.smtp_code, _text(exc.smtp_error), at_recipient=False, connection=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        # 421 closes the connection whatever command it answered.
        return Refusal(exc.smtp_code, _text(exc.smtp_error), at_recipient=False,
                       connection=exc.smtp_code == 421)
    return Refusal(None, f"{type(exc).__name__}: {exc}", at_recipient=False, connection=True)


def is_permanent(exc: BaseException) -> bool:
    return refusal(exc).permanent


def send_one(url: str, sender: str, recipient: str, data: bytes, timeout: float = 30) -> None:
    """A single message over its own connection (confirmations, test sends)."""
    conn = connect(url, timeout)
    try:
        conn.sendmail(sender, [recipient], data)
    finally:
        try:
            conn.quit()
        except smtplib.SMTPException:
            conn.close()


_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")


def send_message(conn: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
    """One message over a kept connection, pipelined (RFC 2920) where the server offers it.

    MAIL, RCPT and DATA go out in one write and their three replies are read together:
    two round trips a message instead of four. Errors are raised as smtplib's own
    sendmail would raise them, so callers sort them the same way.
    """
    conn.ehlo_or_helo_if_needed()
    if not (conn.does_esmtp and conn.has_extn("pipelining")):
        conn.sendmail(sender, [recipient], data)
        return
    conn.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
    mail, rcpt, start = conn.getreply(), conn.getreply(), conn.getreply()
    if start[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
        conn.send(b".\r\n")  # a server that took DATA anyway gets an empty message
        conn.getreply()
    if mail[0] != 250:
        _rset_quietly(conn)
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt[0] not in (250, 251):
        _rset_quietly(conn)
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if start[0] != 354:
        _rset_quietly(conn)
        raise smtplib.SMTPDataError(*start)
    body = _PERIOD_AT_LINE_START.sub(b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    conn.send(body + b".\r\n")
    code, msg = conn.getreply()
    if code != 250:
        _rset_quietly(conn)
        raise smtplib.SMTPDataError(code, msg)


def _rset_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def free_port(host: str = "127.0.0.1") -> int:
    """For the SMTP servers we run: aiosmtpd's Controller cannot bind port 0, so ask the OS first."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
