"""A real SMTP server on loopback that keeps what it receives: the dev inbox and the test sink."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email
import email.parser
import email.policy
import json
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from ..mail.smtp import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    peer: str | None = None  # the sending client's address (which host sent it)

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
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                        peer=peer)
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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: weakref.WeakSet[_CatcherSMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        smtp = _CatcherSMTP(self.handler, **self.SMTP_kwargs)
        self.sessions.add(smtp)
        return smtp

    def close_sessions(self, timeout: float = 5.0) -> None:
        """Drop every client's connection on the server's own loop before it stops: a
        transport the stopped loop never closed is left to the garbage collector, whose
        ResourceWarning then fails whichever test happens to be running."""
        done = threading.Event()

        def close() -> None:
            for smtp in list(self.sessions):
                if smtp.transport is not None and not smtp.transport.is_closing():
                    smtp.transport.close()
            done.set()

        self.loop.call_soon_threadsafe(close)
        done.wait(timeout)


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
            self.controller.close_sessions()
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
