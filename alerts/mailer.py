"""SMTP delivery to whatever relay SMTP_URL names; errors are sorted into retry or give up."""

from __future__ import annotations

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
