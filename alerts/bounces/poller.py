"""The mailbox poller: for operators whose bounces land in an IMAP mailbox.

It touches only the messages it processed. Each pass:
1. lists the mailbox's undeleted messages by UID and reads their headers with
   BODY.PEEK (which sets no flag, \\Seen included);
2. reads in full, again with PEEK, only those that look machine-made (a null return path,
   a MAILER-DAEMON or postmaster sender, multipart/report, X-Failed-Recipients,
   Auto-Submitted);
3. hands each to `processing.process`; a report about one of ours (a signed VERP address
   or Message-ID of ours: never a bare address, which anyone can forge) or a message to a
   signed List-Unsubscribe address is committed, then moved by UID
   to the processed folder (UID MOVE, or UID COPY + \\Deleted + UID EXPUNGE of that UID
   alone where the server has UIDPLUS), or, with no folder, flagged \\Seen \\Deleted and
   expunged by UID.
Personal mail, and bounces of mail that is not ours, stay where they are, unread and
unflagged. A report seen again (the move failed after the commit) is recognised by its
Message-ID and only moved, so a pass run twice never counts a bounce twice.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import unquote, urlsplit

from ..extensions import db
from .mime import HEADER_POLICY
from .parsing import looks_automatic
from .processing import process, unsubscribe_key

log = logging.getLogger(__name__)

SCHEMES = {"imap": 143, "imap+starttls": 143, "imaps": 993}
HEADER_BATCH = 200
_UID_RE = re.compile(rb"\bUID (\d+)")
_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|returned mail|returned to sender|delivery status notification|"
    r"delivery (has )?failed|failure notice|mail delivery failed|delayed mail|abuse report|"
    r"complaint|non-?delivery",
    re.IGNORECASE,
)


class PollerConfigError(ValueError):
    pass


@dataclass
class MailboxConfig:
    host: str
    port: int
    user: str
    password: str
    mailbox: str = "INBOX"
    security: str = "ssl"  # ssl | starttls | plain

    @classmethod
    def from_url(cls, url: str) -> MailboxConfig:
        """imaps://user:pass@host[:993]/INBOX, imap+starttls://…, imap://… (plain text)."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise PollerConfigError(
                f"BOUNCE_IMAP_URL scheme must be one of {', '.join(SCHEMES)}; got {parts.scheme!r}"
            )
        if not parts.hostname or parts.username is None or parts.password is None:
            raise PollerConfigError("BOUNCE_IMAP_URL needs a user, a password and a host")
        security = {"imaps": "ssl", "imap+starttls": "starttls", "imap": "plain"}[parts.scheme]
        try:
            port = parts.port or SCHEMES[parts.scheme]
        except ValueError as exc:  # not a number, or over 65535
            raise PollerConfigError(f"BOUNCE_IMAP_URL: the port is not 1 to 65535 ({exc})") from exc
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password),
            mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
            security=security,
        )


@dataclass
class PollResult:
    examined: int = 0  # messages whose headers were read
    reports: int = 0  # of ours, applied now
    duplicates: int = 0  # of ours, applied before (only moved this time)
    left: int = 0  # read in full but not ours, or not a report: left untouched
    failed: int = 0  # could not be applied: left for the next pass
    events: list[str] = field(default_factory=list)


def quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(cfg: MailboxConfig, timeout: float = 30) -> imaplib.IMAP4:
    if cfg.security == "ssl":
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            cfg.host, cfg.port, ssl_context=ssl.create_default_context(), timeout=timeout
        )
    else:
        conn = imaplib.IMAP4(cfg.host, cfg.port, timeout=timeout)
        if cfg.security == "starttls":
            conn.starttls(ssl_context=ssl.create_default_context())
    conn.login(cfg.user, cfg.password)
    return conn


def _capabilities(conn: imaplib.IMAP4) -> set[str]:
    """After login: servers announce MOVE and UIDPLUS only to an authenticated client."""
    typ, data = conn.capability()
    if typ != "OK" or not data or not data[0]:
        return set(conn.capabilities)
    return {c.upper() for c in data[0].decode().split()}


def _check(typ: str, data: list[Any], what: str) -> None:
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise imaplib.IMAP4.error(f"{what} failed: {detail}")


def _fetched(data: list[Any]) -> dict[int, bytes]:
    """{uid: bytes} from an imaplib FETCH answer."""
    out = {}
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            match = _UID_RE.search(item[0])
            if match:
                out[int(match.group(1))] = item[1]
    return out


def looks_like_report(header_bytes: bytes) -> bool:
    """Worth reading in full: machine-made, or sent to a List-Unsubscribe address of ours
    (that check verifies a signature: it needs an app context)."""
    headers = BytesHeaderParser(policy=HEADER_POLICY).parsebytes(header_bytes)  # 8-bit headers as text
    if unsubscribe_key(header_bytes) is not None or looks_automatic(headers):
        return True
    ctype = (headers.get("Content-Type") or "").lower()
    return "report-type=" in ctype or bool(_SUBJECT_RE.search(headers.get("Subject") or ""))


class _Mover:
    def __init__(self, conn: imaplib.IMAP4, caps: set[str], folder: str | None):
        self.conn, self.caps, self.folder = conn, caps, folder
        self._created = False

    def _ensure_folder(self) -> None:
        if self._created or not self.folder:
            return
        typ, _ = self.conn.create(quote_mailbox(self.folder))  # NO when it exists: fine
        self._created = True
        log.debug("create %s: %s", self.folder, typ)

    def done(self, uid: int) -> None:
        """This UID, and only this UID, leaves the mailbox."""
        uid_s = str(uid)
        if self.folder:
            self._ensure_folder()
            if "MOVE" in self.caps:
                typ, data = self.conn.uid("MOVE", uid_s, quote_mailbox(self.folder))
                _check(typ, data, f"UID MOVE {uid_s}")
                return
            typ, data = self.conn.uid("COPY", uid_s, quote_mailbox(self.folder))
            _check(typ, data, f"UID COPY {uid_s}")
        typ, data = self.conn.uid("STORE", uid_s, "+FLAGS.SILENT", r"(\Seen \Deleted)")
        _check(typ, data, f"UID STORE {uid_s}")
        if "UIDPLUS" in self.caps:
            typ, data = self.conn.uid("EXPUNGE", uid_s)
            _check(typ, data, f"UID EXPUNGE {uid_s}")
        # Without UIDPLUS the message stays flagged \Deleted: a plain EXPUNGE would also
        # remove whatever else someone had flagged for deletion in this mailbox.


def poll_once(cfg: MailboxConfig, *, processed_folder: str | None = "Processed",
              timeout: float = 30) -> PollResult:
    """One pass over the mailbox; needs an app context (the database)."""
    result = PollResult()
    conn = connect(cfg, timeout)
    try:
        caps = _capabilities(conn)
        typ, data = conn.select(quote_mailbox(cfg.mailbox))
        _check(typ, data, f"SELECT {cfg.mailbox}")
        typ, data = conn.uid("SEARCH", None, "UNDELETED")  # type: ignore[arg-type]  # None: no CHARSET (imaplib skips it)
        _check(typ, data, "UID SEARCH")
        uids = [int(u) for u in (data[0] or b"").split()]
        mover = _Mover(conn, caps, processed_folder)
        for start in range(0, len(uids), HEADER_BATCH):
            batch = uids[start:start + HEADER_BATCH]
            typ, data = conn.uid("FETCH", ",".join(map(str, batch)), "(UID BODY.PEEK[HEADER])")
            _check(typ, data, "UID FETCH headers")
            headers = _fetched(data)
            result.examined += len(headers)
            for uid in batch:
                if uid in headers and looks_like_report(headers[uid]):
                    _handle(conn, mover, uid, result)
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    return result


def _handle(conn: imaplib.IMAP4, mover: _Mover, uid: int, result: PollResult) -> None:
    typ, data = conn.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
    _check(typ, data, f"UID FETCH {uid}")
    raw = _fetched(data).get(uid)
    if raw is None:  # expunged by someone else meanwhile
        return
    try:
        outcome = process(raw, source="imap", record_unmatched=False)
        db.session.commit()  # before the move: a report is moved only once it is recorded
    except Exception:
        db.session.rollback()
        log.exception("IMAP message UID %s could not be applied; left for the next pass", uid)
        result.failed += 1
        return
    if not outcome.matched:
        result.left += 1
        return
    if outcome.duplicate:
        result.duplicates += 1
    else:
        result.reports += 1
        result.events += outcome.events
    mover.done(uid)
