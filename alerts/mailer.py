"""SMTP delivery to whatever relay SMTP_URL names; errors are sorted into retry or give up."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
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


def is_permanent(exc: BaseException) -> bool:
    """5xx answers are final for that recipient; everything else (4xx, network) may pass."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


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


def envelope_sender(cfg) -> str:
    from email.utils import parseaddr

    return parseaddr(cfg["MAIL_FROM"])[1]


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
