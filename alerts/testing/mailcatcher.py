"""A real SMTP server on loopback that keeps what it receives: the dev inbox and the test sink."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email
import email.parser
import email.policy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from ..mail.smtp import free_port

if TYPE_CHECKING:
    from flask import Flask
    from flask.typing import ResponseReturnValue


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @cached_property
    def subject(self) -> str:
        """Parsed once, from the headers only: the inbox lists thousands after a blast."""
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(self.data)
        return str(headers.get("subject", ""))


class InboxStore:
    """The dev inbox on disk (instance/dev-inbox/), so that it outlives a restart of `alerts dev`:
    each message as NNNNNNNN.eml, as received, beside NNNNNNNN.json (envelope and time)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def load(self) -> list[Received]:
        """What earlier runs kept, oldest first; a half-written pair (a crash mid-save) is skipped."""
        out = []
        for meta in sorted(self.folder.glob("*.json")):
            try:
                info = json.loads(meta.read_text())
                data = meta.with_suffix(".eml").read_bytes()
                out.append(Received(info["mail_from"], list(info["rcpt_tos"]), data,
                                    datetime.fromisoformat(info["at"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def save(self, number: int, item: Received) -> None:
        """The message first, its envelope last: a .json names a whole message."""
        name = self.folder / f"{number:08d}"
        name.with_suffix(".eml").write_bytes(item.data)
        name.with_suffix(".json").write_text(json.dumps(
            {"mail_from": item.mail_from, "rcpt_tos": item.rcpt_tos, "at": item.at.isoformat()}))

    def clear(self) -> None:
        for path in list(self.folder.glob("*.json")) + list(self.folder.glob("*.eml")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class CatcherHandler:
    """Stores each message; `reply` lets a test make the server answer 4xx/5xx per recipient.

    With a `store`, messages are kept on disk too and those kept earlier are loaded at start."""

    def __init__(self, store: InboxStore | None = None) -> None:
        self.store = store
        self.messages: list[Received] = store.load() if store is not None else []
        self._saved = 0  # the store's next file number
        if store is not None:
            self._saved = max((int(p.stem) for p in store.folder.glob("*.json") if p.stem.isdigit()),
                              default=-1) + 1
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        # callable() -> None | "421 ...": answered instead of the greeting (a relay in maintenance)
        self.connect_reply = None
        self.rcpt_reply = None  # callable(address) -> None | "451 ..." | "550 ..."
        self.data_reply = None  # callable(rcpt_tos) -> None | reply; may block (tests stall here)
        # Seconds each message's 250 takes, per connection (a relay's latency: unlike a
        # blocking data_reply, connections wait side by side, so more of them send faster).
        self.data_delay = 0.0
        self.open = 0  # sessions greeted and not yet closed
        self.refused_at_connect = 0

    def connected(self, conn_id: int) -> str | None:
        """A new connection: None to greet it, or the reply that refuses it."""
        reply = self.connect_reply() if self.connect_reply else None
        with self.lock:
            if reply:
                self.refused_at_connect += 1
            else:
                self.open += 1
        return reply

    def disconnected(self, conn_id: int) -> None:
        with self.lock:
            self.open -= 1
            self.arrived.notify_all()

    pipelining = True  # advertised like Postfix does, so senders exercise RFC 2920

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SMTPEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.rcpt_reply(address) if self.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SMTPEnvelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        reply = self.data_reply(list(envelope.rcpt_tos)) if self.data_reply else None
        if reply:
            return reply
        # aiosmtpd answers DATA only after MAIL FROM, and hands the content over with it
        assert envelope.mail_from is not None and envelope.original_content is not None
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        with self.arrived:
            if self.store is not None:
                self.store.save(self._saved, item)
                self._saved += 1
            self.messages.append(item)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no session is open: whatever a client sent has then been received."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.open <= 0, timeout=timeout)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            if self.store is not None:
                self.store.clear()


class RelayHandler(CatcherHandler):
    """A relay like SES or Mailgun: a fixed rate and a connection cap, with their answers.

    Messages over the rate get `throttle_reply` at RCPT (SES: "454 Throttling failure:
    Maximum sending rate exceeded"); a connection over the cap gets "421 4.7.0 Too many
    connections" instead of a greeting. It counts what it did, and how many connections were
    open at once, in all and per recipient domain (the measure of per-domain limits).
    """

    def __init__(self, rate: float | None = None, max_connections: int | None = None,
                 throttle_reply: str = "451 4.7.1 Rate limit exceeded, slow down",
                 burst: float | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.burst = burst or max(1.0, (rate or 1) / 5)
        self.max_connections = max_connections
        self.throttle_reply = throttle_reply
        self._tokens = self.burst
        self._ts = time.monotonic()
        self.open = 0
        self.peak_connections = 0
        self.throttled = 0
        self.refused_connections = 0
        self._domain_conns: dict[str, set[int]] = collections.defaultdict(set)
        self.peak_per_domain: collections.Counter = collections.Counter()
        self.per_connection: collections.Counter = collections.Counter()  # (connection, domain)
        self._connection_ids = 0

    def connected(self, conn_id: int) -> str | None:
        reply = super().connected(conn_id)
        if reply:
            return reply
        with self.lock:
            if self.max_connections is not None and self.open > self.max_connections:
                self.refused_connections += 1
                self.open -= 1
                return "421 4.7.0 Too many connections, try again later"
            self.peak_connections = max(self.peak_connections, self.open)
            return None

    def disconnected(self, conn_id: int) -> None:
        super().disconnected(conn_id)
        with self.lock:
            for conns in self._domain_conns.values():
                conns.discard(conn_id)

    def _take(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._ts) * self.rate)
        self._ts = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if not self._take():
                self.throttled += 1
                return self.throttle_reply
            domain = address.rpartition("@")[2].lower()
            conns = self._domain_conns[domain]
            conns.add(id(session))
            self.peak_per_domain[domain] = max(self.peak_per_domain[domain], len(conns))
            if not hasattr(session, "relay_connection"):
                self._connection_ids += 1
                session.relay_connection = self._connection_ids  # type: ignore[attr-defined]  # our mark
            self.per_connection[(session.relay_connection, domain)] += 1  # type: ignore[attr-defined]
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class _CatcherSMTP(SMTP):
    """aiosmtpd's server, answering the handler's refusal (a 421) instead of a greeting when
    it has one, and counting the sessions open."""

    greeted = False

    async def _handle_client(self) -> None:
        refusal = self.event_handler.connected(id(self.session))
        if refusal:
            await self.push(refusal)
            assert self.transport is not None  # a client is connected
            self.transport.close()
            return
        self.greeted = True
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        if self.greeted:
            self.event_handler.disconnected(id(self.session))
        super().connection_lost(error)


class _CatcherController(Controller):
    def factory(self) -> SMTP:
        return _CatcherSMTP(self.handler, **self.SMTP_kwargs)


class MailCatcher:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, handler: CatcherHandler | None = None):
        self.handler = handler or CatcherHandler()
        port = port or free_port(host)
        self.controller = _CatcherController(
            self.handler, hostname=host, port=port, decode_data=False, data_size_limit=10_000_000
        )

    def start(self) -> MailCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller._thread is not None:  # stopping twice is fine (tests stop relays mid-run)
            self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def url(self) -> str:
        return f"smtp://{self.controller.hostname}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)


INBOX_PAGE_SIZE = 50
BASE_TARGET = re.compile(r"(<head[^>]*>)", re.I)


def inbox_app(catcher: MailCatcher) -> Flask:
    """The dev inbox in the browser: received messages (newest first, paged, searchable), each one's parts."""
    from flask import Flask, abort, redirect, render_template_string, request

    app = Flask("mailcatcher")

    @app.get("/")
    def index() -> str:
        q = (request.args.get("q") or "").strip()
        page = max(1, request.args.get("page", 1, type=int) or 1)
        items = list(enumerate(catcher.messages))[::-1]
        total = len(items)
        if q:
            needle = q.lower()
            items = [(i, m) for i, m in items
                     if needle in m.subject.lower() or any(needle in r.lower() for r in m.rcpt_tos)]
        pages = max(1, -(-len(items) // INBOX_PAGE_SIZE))
        page = min(page, pages)
        shown = items[(page - 1) * INBOX_PAGE_SIZE: page * INBOX_PAGE_SIZE]
        store = catcher.handler.store
        return render_template_string(INBOX, items=shown, matches=len(items), total=total, q=q,
                                      page=page, pages=pages, kept=store.folder if store else None)

    @app.post("/clear")
    def clear() -> ResponseReturnValue:
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") != request.host_url.rstrip("/"):
            abort(403)  # only this page's own button empties the inbox
        catcher.handler.clear()
        return redirect("/", code=303)

    @app.get("/<int:i>")
    def show(i: int) -> str:
        msgs = catcher.messages
        if not 0 <= i < len(msgs):
            abort(404)
        msg = msgs[i].message
        html = msg.get_body(("html",))
        text = msg.get_body(("plain",))
        return render_template_string(
            MESSAGE,
            i=i,
            msg=msg,
            item=msgs[i],
            html=_links_in_new_tab(html.get_content()) if html else None,
            text=text.get_content() if text else None,
        )

    @app.get("/<int:i>/raw")
    def raw(i: int) -> ResponseReturnValue:
        msgs = catcher.messages
        if not 0 <= i < len(msgs):
            abort(404)
        return msgs[i].data, 200, {"Content-Type": "text/plain; charset=utf-8"}

    return app


def _links_in_new_tab(html: str) -> str:
    """As a mail client does: a link in the message opens a page of its own, where forms work."""
    tag = '<base target="_blank">'
    if BASE_TARGET.search(html):
        return BASE_TARGET.sub(lambda m: m.group(1) + tag, html, count=1)
    return tag + html


_STYLE = (
    "<meta name=viewport content='width=device-width, initial-scale=1'>"
    "<style>body{font-family:system-ui,sans-serif;margin:16px;color:#1c2430}"
    "table{border-collapse:collapse;width:100%}td,th{padding:6px 10px;border-bottom:1px solid #ddd;"
    "text-align:left;overflow-wrap:break-word}iframe{width:100%;height:70vh;border:1px solid #ccc}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f7f9;padding:12px}"
    ".bar{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:0 0 12px}"
    ".bar input{padding:6px 8px;font:inherit;min-width:0;flex:1 1 200px;max-width:360px}"
    ".bar button{font:inherit;padding:6px 12px}.pager{display:flex;gap:16px;margin:12px 0}"
    # On a phone each message is two lines: when and to whom, then the subject across the width.
    "@media (max-width:600px){.msgs tr:first-child{display:none}"
    ".msgs tr{display:grid;grid-template-columns:auto 1fr;column-gap:10px;padding:8px 0;"
    "border-bottom:1px solid #ddd}.msgs td{border:0;padding:2px 0}"
    ".msgs td:nth-child(-n+2){font-size:.85em;color:#555;overflow-wrap:anywhere}"
    ".msgs td:last-child{grid-column:1/-1}}</style>"
)
INBOX = (
    "<!doctype html><meta charset=utf-8><title>Dev inbox</title>" + _STYLE +
    "<h1>Dev inbox</h1>"
    "<div class=bar><form method=get role=search class=bar style='margin:0'>"
    "<label for=q>Search</label>"
    "<input type=search id=q name=q value='{{ q }}' placeholder='subject or address'>"
    "<button>Search</button>{% if q %}<a href='/'>Show all</a>{% endif %}</form>"
    "<form method=post action='/clear' style='margin:0'><button>Clear inbox</button></form></div>"
    "<p>{% if q %}{{ matches }} of {% endif %}{{ total }} message{{ '' if total == 1 else 's' }},"
    " newest first. Reload to refresh."
    " Links in a message open in a new tab.</p>"
    "{% if kept %}<p>Kept across restarts in {{ kept }} (Clear inbox empties it).</p>"
    "{% else %}<p>Not kept: restarting empties this inbox.</p>{% endif %}"
    "<table class=msgs><tr><th>Received</th><th>To</th><th>Subject</th></tr>"
    "{% for i, m in items %}<tr><td>{{ m.at.strftime('%H:%M:%S') }}</td><td>{{ m.rcpt_tos|join(', ') }}</td>"
    "<td><a href='/{{ i }}'>{{ m.subject or '(no subject)' }}</a></td></tr>{% endfor %}</table>"
    "{% if pages > 1 %}<nav class=pager aria-label=Pages>"
    "{% set also = '&q=' ~ q|urlencode if q else '' %}"
    "{% if page > 1 %}<a rel=prev href='?page={{ page - 1 }}{{ also }}'>&larr; Newer</a>{% endif %}"
    "<span>Page {{ page }} of {{ pages }}</span>"
    "{% if page < pages %}<a rel=next href='?page={{ page + 1 }}{{ also }}'>Older &rarr;</a>{% endif %}"
    "</nav>{% endif %}"
)
MESSAGE = (
    "<!doctype html><meta charset=utf-8><title>{{ msg['subject'] }}</title>" + _STYLE +
    "<p><a href='/'>&larr; Inbox</a> · <a href='/{{ i }}/raw'>raw</a></p>"
    "<h1>{{ msg['subject'] }}</h1><p>To: {{ item.rcpt_tos|join(', ') }}<br>From: {{ msg['from'] }}</p>"
    "{% if html %}<h2>HTML</h2><p>Links open in a new tab, as from a mail client.</p>"
    "<iframe title='HTML part' sandbox='allow-popups allow-popups-to-escape-sandbox'"
    " srcdoc='{{ html }}'></iframe>{% endif %}"
    "{% if text %}<h2>Text</h2><pre>{{ text|urlize(target='_blank') }}</pre>{% endif %}"
)
