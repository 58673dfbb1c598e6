"""SMTP delivery to whatever relay SMTP_URL names; errors are sorted into retry or give up."""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

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


@dataclass(frozen=True)
class Relay:
    """One relay named in SMTP_URL, with its share of the traffic and its own limits."""

    url: str  # without the query string: what `connect` takes
    name: str  # host:port, and the user when there is one (never the password)
    weight: float = 1.0
    priority: int = 0  # lower first: a relay of a higher number is used only when all lower are down
    max_rate: float | None = None  # messages per second across all workers; None: SMTP_MAX_RATE
    max_connections: int | None = None  # None: SMTP_MAX_CONNECTIONS

    @property
    def key(self) -> str:
        """Where this relay's pace and health live in Redis (no secret in it)."""
        return self.name


_Number = TypeVar("_Number", int, float)


def _number(query: dict[str, list[str]], name: str, kind: type[_Number], url: str) -> _Number | None:
    if name not in query:
        return None
    raw = query[name][-1]
    try:
        value = kind(raw)
    except ValueError as exc:
        raise MailConfigError(f"SMTP_URL: {name}={raw!r} is not a number in {url!r}") from exc
    if value <= 0 if name != "priority" else value < 0:
        raise MailConfigError(f"SMTP_URL: {name} must be more than 0 in {url!r}")
    return value


def parse_relays(value: str) -> list[Relay]:
    """SMTP_URL, comma-separated; a URL may end in ?weight=&priority=&max_rate=&max_connections=."""
    relays = []
    for raw in (part.strip() for part in value.split(",")):
        if not raw:
            continue
        url, _, query_text = raw.partition("?")
        query = parse_qs(query_text, keep_blank_values=True)
        unknown = set(query) - {"weight", "priority", "max_rate", "max_connections"}
        if unknown:
            raise MailConfigError(f"SMTP_URL: unknown option {sorted(unknown)[0]!r} in {raw!r}")
        cfg = parse_smtp_url(url)
        name = f"{cfg['host']}:{cfg['port']}"
        if cfg["username"]:
            name = f"{cfg['username']}@{name}"
        relays.append(Relay(
            url=url, name=name,
            weight=_number(query, "weight", float, raw) or 1.0,
            priority=_number(query, "priority", int, raw) or 0,
            max_rate=_number(query, "max_rate", float, raw),
            max_connections=_number(query, "max_connections", int, raw),
        ))
    if not relays:
        raise MailConfigError("SMTP_URL names no relay")
    if len({r.name for r in relays}) != len(relays):
        raise MailConfigError("SMTP_URL names the same relay twice")
    return relays


def connect(url: str, timeout: float = 30) -> smtplib.SMTP:
    cfg = parse_smtp_url(url.split(",")[0].partition("?")[0])
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
    throttled: bool = False  # the relay asks us to slow down: nothing wrong with the message
    # The relay says we hold too many connections to it at once: fewer from now on. Said in
    # words ("too many connections", "concurrent"); a bare 421 says nothing of the kind.
    too_many_connections: bool = False

    @property
    def relay_down(self) -> bool:
        """No answer, or the relay refuses service for a reason other than our pace."""
        return self.connection and not self.throttled and not self.permanent_sender

    @property
    def permanent(self) -> bool:
        """5xx is final for that recipient; everything else (4xx, network) may pass later."""
        return self.code is not None and 500 <= self.code < 600

    @property
    def permanent_sender(self) -> bool:
        """A 5xx to MAIL FROM: the relay refuses our sender (wrong credentials, unverified domain)."""
        return self.permanent and self.connection

    @property
    def hard_bounce(self) -> bool:
        """A 5xx at RCPT: the address does not exist or will never take mail from us."""
        return self.permanent and self.at_recipient

    @property
    def detail(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# What relays say when they want us to slow down (SES: "454 Throttling failure: Maximum
# sending rate exceeded"; Mailgun, Postmark, SendGrid: 421/451 4.7.x "rate limit", "too many
# connections", "try again later").
_THROTTLE_WORDS = re.compile(
    r"throttl|rate.?limit|sending rate|too many (connections|messages|concurrent|sessions)"
    r"|exceeded|slow down|too fast|concurrency", re.I)
# What they say when we hold too many connections at once (Postfix's anvil: "421 4.7.0 Error:
# too many connections from 192.0.2.1"; Exchange Online: "421 4.3.2 The maximum number of
# concurrent connections has exceeded a limit"; "452 4.7.0 Too many concurrent SMTP sessions").
_CONNECTION_WORDS = re.compile(
    r"too many (\w+ ){0,2}(connections|sessions)|concurrent (\w+ )?(connections|sessions)"
    r"|concurrency|connection limit|connections? (are )?limited", re.I)
_STATUS_4_7 = re.compile(r"^\s*4\.7\.\d{1,3}\b")


def is_throttle(code: int | None, text: str) -> bool:
    """A 4xx whose enhanced status is 4.7.x or whose words say rate: never the message's fault.

    A 421 alone ("421 Service not available, closing transmission channel", "421 4.3.2
    System shutting down") is not one: the relay is going away, and is treated as down."""
    if code is None or not 400 <= code < 500:
        return False
    return bool(_STATUS_4_7.match(text)) or bool(_THROTTLE_WORDS.search(text))


def is_too_many_connections(code: int | None, text: str) -> bool:
    """A 4xx that says we hold too many connections at once: the one answer that lowers the cap."""
    return code is not None and 400 <= code < 500 and bool(_CONNECTION_WORDS.search(text))


def refusal(exc: BaseException) -> Refusal:
    """Sort an smtplib or network exception into a Refusal."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        if replies:
            # The worst answer decides: one 4xx among 5xx still means "try again".
            code, raw = min(replies, key=lambda r: r[0])
            text = _text(raw)
            return Refusal(code, text, at_recipient=True, connection=code == 421,
                           throttled=is_throttle(code, text),
                           too_many_connections=is_too_many_connections(code, text))
        return Refusal(None, "no recipient accepted", at_recipient=True, connection=False)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPConnectError):
        text = _text(exc.smtp_error)
        return Refusal(exc.smtp_code, text, at_recipient=False, connection=True,
                       throttled=is_throttle(exc.smtp_code, text)
                       or (exc.smtp_code == 554 and bool(_THROTTLE_WORDS.search(text))),
                       too_many_connections=is_too_many_connections(exc.smtp_code, text))
    if isinstance(exc, smtplib.SMTPResponseException):
        # 421 closes the connection whatever command it answered.
        text = _text(exc.smtp_error)
        return Refusal(exc.smtp_code, text, at_recipient=False, connection=exc.smtp_code == 421,
                       throttled=is_throttle(exc.smtp_code, text),
                       too_many_connections=is_too_many_connections(exc.smtp_code, text))
    return Refusal(None, f"{type(exc).__name__}: {exc}", at_recipient=False, connection=True)


def is_permanent(exc: BaseException) -> bool:
    return refusal(exc).permanent


def send_one(url: str, sender: str, recipient: str, data: bytes, timeout: float = 30) -> None:
    """A single message over its own connection (confirmations, test sends).

    With several relays in SMTP_URL they are tried in order (lowest priority first) until
    one answers; a refusal of the message itself is raised at once.
    """
    relays = sorted(parse_relays(url), key=lambda r: r.priority)
    for n, relay in enumerate(relays):
        try:
            conn = connect(relay.url, timeout)
        except (OSError, smtplib.SMTPException):
            if n == len(relays) - 1:
                raise
            continue
        try:
            conn.sendmail(sender, [recipient], data)
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        return


_LINE_DOT = re.compile(rb"\n\.")


def dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line starting with "." gets another. One bytes.replace, which is what
    the regex `(?m)^\\.` does (a line starts after "\\n") at a tenth of its cost on a 15 kB alert;
    most messages have no such line, and re's search finds that in half the time replace does."""
    if data[:1] != b"." and _LINE_DOT.search(data) is None:
        return data
    stuffed = data.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed[:1] == b"." else stuffed


class Pipeline:
    """Messages back to back over one connection, one round trip each where the server offers
    PIPELINING (RFC 2920), which every relay of note does.

    A message's data goes out in one write with the next message's MAIL, RCPT and DATA (the
    RFC lets message content begin a group), and their replies come back with the data's
    250: four round trips a message with smtplib, one here. Errors are raised as smtplib's
    `sendmail` raises them, so callers sort them the same way. Without PIPELINING it is
    smtplib's `sendmail`, one message at a time.
    """

    def __init__(self, conn: smtplib.SMTP):
        conn.ehlo_or_helo_if_needed()
        if conn.file is None:
            assert conn.sock is not None  # the greeting above connected it
            conn.file = conn.sock.makefile("rb")
        self.conn = conn
        self.pipelining = bool(conn.does_esmtp and conn.has_extn("pipelining"))
        # The envelope sent ahead with the last data: its three replies are unread, and if
        # the server said 354 it now waits for this recipient's data and nobody else's.
        self.ahead: tuple[str, str] | None = None
        self.awaiting = False  # data written by `start` whose answer `finish` has not read

    def send(self, sender: str, recipient: str, data: bytes,
             then: tuple[str, str] | None = None) -> None:
        """Send one message and wait for its 250; `then`, the next message's (sender,
        recipient), goes out with its data, and the next `send` must be that message
        (anything else closes the connection)."""
        self.start(sender, recipient, data, then)
        self.finish()

    def start(self, sender: str, recipient: str, data: bytes,
              then: tuple[str, str] | None = None) -> None:
        """`send` up to the data written: the caller may work while the relay reads it, then
        calls `finish` for its answer. Refusals of the envelope are raised here."""
        conn = self.conn
        if self.awaiting:
            raise RuntimeError("the last message's answer has not been read (call finish)")
        if not self.pipelining:
            conn.sendmail(sender, [recipient], data)
            return
        if self.ahead is None:
            conn.send(_envelope(sender, recipient))
        elif self.ahead != (sender, recipient):
            # The server may be waiting for data meant for someone else: never give it any.
            self.close()
            raise smtplib.SMTPServerDisconnected("pipelined envelope was for another message")
        self.ahead = None
        mail, rcpt, begin = _reply(conn), _reply(conn), _reply(conn)
        if begin[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            conn.send(b".\r\n")  # a server that took DATA anyway gets an empty message
            _reply(conn)
        if mail[0] != 250:
            _rset_quietly(conn)
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
        if rcpt[0] not in (250, 251):
            _rset_quietly(conn)
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        if begin[0] != 354:
            _rset_quietly(conn)
            raise smtplib.SMTPDataError(*begin)
        body = dot_stuffed(data)
        out = [body, b".\r\n"] if body.endswith(b"\r\n") else [body, b"\r\n.\r\n"]
        if then is not None:
            out.append(_envelope(*then))
        conn.send(b"".join(out))
        self.ahead = then
        self.awaiting = True

    def finish(self) -> None:
        """The answer to the data `start` wrote: returns on 250, raises as `sendmail` would."""
        if not self.awaiting:
            return
        self.awaiting = False
        conn = self.conn
        code, msg = _reply(conn)
        if code != 250:
            if self.ahead is None:  # with an envelope ahead the session has moved on already
                _rset_quietly(conn)
            raise smtplib.SMTPDataError(code, msg)

    def close(self) -> None:
        """QUIT, or with data awaited for an envelope sent ahead, just hang up: the server
        drops a transaction whose data never ended, and a QUIT would be read as its data."""
        if self.ahead is not None:
            self.ahead, self.awaiting = None, False
            self.conn.close()
            return
        self.awaiting = False  # an answer not read is lost with the connection
        try:
            self.conn.quit()
        except (OSError, smtplib.SMTPException):
            self.conn.close()


_MAXLINE = 8192  # smtplib's own limit on a reply line


def _envelope(sender: str, recipient: str) -> bytes:
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()


def _reply(conn: smtplib.SMTP) -> tuple[int, bytes]:
    """One reply, as smtplib's getreply reads it, without its per-line debug bookkeeping."""
    lines = []
    assert conn.file is not None  # Pipeline made it on connecting
    while True:
        try:
            line = conn.file.readline(_MAXLINE + 1)
        except OSError as exc:
            conn.close()
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
        if not line:
            conn.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if len(line) > _MAXLINE:
            conn.close()
            raise smtplib.SMTPResponseException(500, "Line too long.")
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            break
    try:
        code = int(line[:3])
    except ValueError:
        code = -1
    return code, b"\n".join(lines)


def _rset_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def free_port(host: str = "127.0.0.1") -> int:
    """For the SMTP servers we run: aiosmtpd's Controller cannot bind port 0, so ask the OS first."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
