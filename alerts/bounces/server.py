"""The bounce receiver: an SMTP server for BOUNCE_DOMAIN that reads every report it is sent.

The domain's MX points here (directly, or through a relay that forwards the domain). It
accepts mail only for addresses at BOUNCE_DOMAIN (anything else is refused at RCPT with
550, so it is never an open relay), caps the message size (552 above it: aiosmtpd drops
what it read once past the limit and reads the rest without keeping it) and the reports
received at once (BOUNCE_MAX_SESSIONS; the next DATA is answered 452, try again later), and
answers 250 only once the report has been applied and committed; if the database is away it
answers 451 and the sending server tries again later.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask

from ..extensions import db
from ..mail.smtp import free_port
from .processing import Outcome, process

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20


class BounceHandler:
    def __init__(self, app: Flask, domain: str, workers: int = 4, max_sessions: int = 8):
        self.app = app
        self.domain = domain.strip().lower().rstrip(".")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bounce")
        self.max_sessions = max_sessions
        self.receiving = 0  # DATA under way (every session runs on the server's one event loop)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        if domain != self.domain:
            return "550 5.1.1 Not a bounce address here; this server accepts no other mail"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(
                self.executor, self.process, bytes(envelope.original_content or b""),
                list(envelope.rcpt_tos), envelope.mail_from,
            )
        except Exception:
            log.exception("a report could not be recorded; the sender is told to retry")
            return "451 4.3.0 The report could not be recorded; please try again later"
        if not outcome.is_report:
            log.info("message to %s from <%s> is not a bounce or complaint; dropped",
                     ", ".join(envelope.rcpt_tos), envelope.mail_from)
        return "250 2.0.0 Report received"

    def process(self, raw: bytes, rcpt_tos: list[str], mail_from: str | None) -> Outcome:
        with self.app.app_context():
            outcome = process(raw, source="smtp", envelope_rcpts=rcpt_tos,
                              envelope_sender=mail_from)
            db.session.commit()  # the 250 goes out only after this
            return outcome


class _BounceSMTP(SMTP):
    """aiosmtpd's session, taking a message's data only while fewer than the handler's
    max_sessions are being received: a message's lines are held until its end."""

    async def smtp_DATA(self, arg: str) -> None:
        handler: BounceHandler = self.event_handler
        if handler.receiving >= handler.max_sessions:
            log.warning("%s reports arriving at once; a sender is told to try again later",
                        handler.receiving)
            await self.push("452 4.3.1 Too many reports arriving at once; try again later")
            return
        handler.receiving += 1
        try:
            await super().smtp_DATA(arg)
        finally:
            handler.receiving -= 1


class _BounceController(Controller):
    def factory(self) -> SMTP:
        return _BounceSMTP(self.handler, **self.SMTP_kwargs)


class BounceServer:
    """`alerts bounces serve`, and the tests' receiver: start(), then stop()."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, *,
                 domain: str | None = None, max_bytes: int | None = None,
                 max_sessions: int | None = None):
        with app.app_context():
            domain = domain or app.config.get("BOUNCE_DOMAIN")
            max_bytes = max_bytes or app.config["BOUNCE_MAX_MESSAGE_BYTES"]
            max_sessions = max_sessions or app.config["BOUNCE_MAX_SESSIONS"]
        if not domain:
            raise ValueError("BOUNCE_DOMAIN is not set: the receiver would not know its addresses")
        self.domain = domain
        self.max_bytes = max_bytes
        self.max_sessions = max_sessions
        self.handler = BounceHandler(app, domain, max_sessions=max_sessions)
        self.controller = _BounceController(
            self.handler,
            hostname=host,
            port=port or free_port(host),
            decode_data=False,
            data_size_limit=max_bytes,
            server_hostname=domain,
            ident="Action Alerts bounce receiver",
        )

    def start(self) -> BounceServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.handler.executor.shutdown(wait=True)

    @property
    def host(self) -> str:
        return self.controller.hostname

    @property
    def port(self) -> int:
        return self.controller.port
