"""Sending one batch: claim its rows, build and send each message once, hand outcomes to the recorder.

The loop holds no SQL: the rows, their claim and their outcomes are its store's (`store`).
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
import smtplib
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app

from .. import suppressions, tasknames
from ..extensions import db
from ..mail import pacing, smtp
from ..mail.pacer import Pacer, choose
from ..mail.signed_ids import ReturnPaths, envelope_sender
from ..models import Alert, DeliveryStatus, SubscriberStatus
from ..subscribers import emails
from ..subscribers.subscriptions import InvalidEmail, normalize_email
from .content import MessageFactory
from .recorder import BatchResult
from .state import BlastError
from .store import BatchStore, Messages, Outcomes, SqlBatchStore

log = logging.getLogger(__name__)


def send_batch(alert_id: int, first: int, last: int, store: BatchStore | None = None) -> BatchResult:
    """Claim the queued rows in [first, last], send each one once, record every outcome.

    Engine internal: through its store (`SqlBatchStore` unless told), it commits its claim,
    and its recorder commits outcomes as they come.
    """
    cfg = current_app.config
    batches: BatchStore = SqlBatchStore() if store is None else store
    if not batches.sending(alert_id):
        return BatchResult(stopped="not-sending")
    claim = batches.claim(alert_id, first, last)
    if claim is None:
        batches.finish_if_done(alert_id)
        return BatchResult()
    batch = batches.load(alert_id, first, last, claim)

    recorder = batches.outcomes(alert_id, claim, first, last)
    with recorder:
        todo = []
        for row in batch.rows:
            if row.email is None or row.status != SubscriberStatus.CONFIRMED:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "not subscribed")
            elif row.email in batch.suppressed:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "suppressed")
            else:
                todo.append(row)
        unsent = _send_rows(recorder, batch.messages, todo, cfg)
        recorder.flush()  # the state as of now decides between requeue and skip
        recorder.release([r.id for r in unsent], recorder.result.stopped or "requeued")
    result = recorder.result
    result.stopped = result.stopped or recorder.stop_reason
    if result.stopped == "lost-claim":
        log.error("alert %s: claim %s was taken over; batch stopped", alert_id, claim,
                  extra={"alert_id": alert_id, "claim": claim})
    batches.finish_if_done(alert_id)
    return result


def _send_rows(recorder: Outcomes, factory: Messages, todo: list, cfg: Mapping[str, Any]) -> list:
    """Send over paced connections to the relays; returns the rows still unsent (they go back).

    A relay that does not answer or drops the connection is marked down and the rest of
    the batch goes to another relay; a throttle answer slows that relay down and puts the
    row at the back of the batch, spending none of its attempts. Rows for a destination
    domain with limits (SMTP_DOMAIN_LIMITS) go over connections of their own, each holding
    one of that domain's slots and taking its tokens too.
    """
    if not todo:
        return []
    try:
        relays = smtp.parse_relays(cfg["SMTP_URL"])
        domain_limits = pacing.parse_domain_limits(cfg.get("SMTP_DOMAIN_LIMITS") or "")
    except smtp.MailConfigError as exc:
        recorder.result.stopped = "smtp-config"
        log.error("alert %s: %s", recorder.alert_id, exc, extra={"alert_id": recorder.alert_id})
        return list(todo)
    pace = pacing.for_url(cfg.get("REDIS_URL"))
    groups: dict[str | None, list] = collections.defaultdict(list)
    for row in todo:
        domain = row.email.rpartition("@")[2].lower()
        groups[domain if domain in domain_limits else None].append(row)
    unsent: list = []
    for domain, rows in sorted(groups.items(), key=lambda g: g[0] is not None):
        run = _Run(recorder, factory, collections.deque(rows), cfg)
        if recorder.stop_reason is None and recorder.result.stopped is None:
            if domain is None:
                _through_relays(run, relays, pace, cfg)
            else:
                dom = Pacer(pace, f"domain:{domain}", domain_limits[domain])
                if dom.take_slot(cfg["SMTP_SLOT_WAIT_SECONDS"], stop=run.stopping):
                    try:
                        _through_relays(run, relays, pace, cfg, dom)
                    finally:
                        dom.flush()
                        dom.release_slot()
                else:
                    recorder.result.stopped = "domain-busy"
        unsent.extend(run.pending)
    return unsent


def _through_relays(run: _Run, relays: list, pace: pacing.Pacing | None, cfg: Mapping[str, Any],
                    domain: Pacer | None = None) -> None:
    """One connection after another until the run's rows are sent or the batch must stop."""
    recorder = run.recorder
    tried_down: set[str] = set()
    refused_in_a_row = 0
    while run.pending and recorder.stop_reason is None:
        down = run.safe(lambda: pace.down([r.name for r in relays]), {}) if pace else {}
        relay = choose(relays, down, tried_down)
        if relay is None:
            recorder.result.stopped = "smtp-unavailable"
            if pace:
                recorder.result.retry_after = run.safe(
                    lambda: pace.back_in([r.name for r in relays]), None)
            log.warning("alert %s: no relay answers (%s)", recorder.alert_id,
                        "; ".join(f"{k}: {v}" for k, v in down.items()) or "all failed",
                        extra={"alert_id": recorder.alert_id})
            break
        limits = pacing.Limits(relay.max_rate or cfg["SMTP_MAX_RATE"],
                               relay.max_connections or cfg["SMTP_MAX_CONNECTIONS"])
        pacer = Pacer(pace, relay.name, limits)
        if not pacer.take_slot(cfg["SMTP_SLOT_WAIT_SECONDS"], stop=run.stopping):
            recorder.result.stopped = recorder.result.stopped or "relay-busy"
            break
        try:
            outcome = run.over_one_connection(relay, pacer, domain)
        finally:
            pacer.flush()
            pacer.release_slot()
        if outcome == "down":
            tried_down.add(relay.name)
            if pace:
                run.safe(lambda r=relay: pace.mark_down(r.name, run.last_error,
                                                        answered=run.answered), 0)
        elif outcome == "again" and not run.progressed:
            refused_in_a_row += 1
            if refused_in_a_row >= 20:
                recorder.result.stopped = "relay-busy"
                break
        if run.progressed:
            refused_in_a_row = 0
            run.progressed = False


# Messages made (not signed) together, a few rows ahead.
UNSIGNED_AHEAD = 32

# A row the relay keeps throttling goes back to the queue (no attempt spent) after this
# many tries in one batch, so the batch task ends and tries again later with backoff.
MAX_THROTTLES_PER_BATCH = 50


class _Run:
    """One batch's rows on their way through one connection after another."""

    def __init__(self, recorder: Outcomes, factory: Messages, pending: collections.deque,
                 cfg: Mapping[str, Any]) -> None:
        self.recorder = recorder
        self.factory = factory
        self.pending = pending
        self.timeout = cfg["SMTP_TIMEOUT"]
        self.return_path = ReturnPaths(cfg)
        self.max_attempts = cfg["BLAST_MAX_ATTEMPTS"]
        self.throttles: collections.Counter = collections.Counter()
        # signed messages not sent yet: the next row's, signed ahead, and throttled rows' kept
        # for their next try
        self.built: dict[int, bytes] = {}
        self.unsigned: dict[int, tuple] = {}  # messages made ahead, not signed yet
        self.last_error = ""
        self.answered = False  # the last failure was a relay's reply, not silence
        self.progressed = False  # a 250 since the loop last looked

    def stopping(self) -> bool:
        return self.recorder.stop_reason is not None

    def safe(self, fn: Callable[..., Any], default: Any) -> Any:
        try:
            return fn()
        except redis.RedisError as exc:
            log.warning("relay state unavailable (%s)", exc)
            return default

    def over_one_connection(self, relay: smtp.Relay, pacer: Pacer,
                            domain: Pacer | None = None) -> str:
        """Send until the rows run out, the relay fails ("down"), or it closes on us ("again")."""
        rec = self.recorder
        try:
            conn = smtp.connect(relay.url, self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            refusal = smtp.refusal(exc)
            self.last_error, self.answered = refusal.detail, refusal.code is not None
            if refusal.too_many_connections:  # fewer connections from now on, then try again
                pacer.too_many_connections(refusal.detail)
                log.info("relay %s refused a connection as one too many: %s", relay.name,
                         refusal.detail)
                time.sleep(0.2 + random.random() * 0.3)
                return "again"
            if refusal.throttled:  # slower from now on, as many connections as before
                pacer.push_back(refusal.detail)
                log.info("relay %s refused a connection, asking us to slow down: %s",
                         relay.name, refusal.detail)
                time.sleep(0.2 + random.random() * 0.3)
                return "again"
            # Anything else, a bare 421 included (a restart, maintenance), is an outage: the
            # relay is skipped for a while, its connection cap left as it was.
            log.warning("alert %s: relay %s unavailable (%s)", rec.alert_id, relay.name,
                        refusal.detail, extra={"alert_id": rec.alert_id, "relay": relay.name})
            return "down"
        if (paced := pacer.pacing) is not None:
            self.safe(lambda: paced.mark_up(relay.name), None)
        pipe = smtp.Pipeline(conn)
        try:
            return self._send(pipe, relay, pacer, domain)
        except (OSError, smtplib.SMTPException) as exc:
            # The connection died before this row's 250: it stays pending for the next relay.
            refusal = smtp.refusal(exc)
            self.last_error, self.answered = refusal.detail, refusal.code is not None
            log.warning("alert %s: relay %s failed mid-batch (%s); %d rows to go",
                        rec.alert_id, relay.name, self.last_error, len(self.pending),
                        extra={"alert_id": rec.alert_id, "relay": relay.name})
            return "down"
        finally:
            pipe.close()

    def _send(self, pipe: smtp.Pipeline, relay: smtp.Relay, pacer: Pacer,
              domain: Pacer | None = None) -> str:
        rec, pending = self.recorder, self.pending
        per_connection = domain.limits.per_connection if domain else None
        sent_here = 0
        ahead: tuple[int, str] | None = None  # (row id, return path) of the envelope sent ahead
        while pending and rec.stop_reason is None:
            if per_connection and sent_here >= per_connection:
                return "again"  # a fresh connection, as the domain asks
            if domain and not domain.take(stop=self.stopping):
                break
            if not pacer.take(stop=self.stopping):
                break
            pacer.refresh_slot()
            if domain:
                domain.refresh_slot()
            row = pending[0]
            data = self._message(row)
            # The next row's envelope rides with this data when it may go at once: its
            # tokens are in hand and the connection is not due to end after this message.
            sender = ahead[1] if ahead and ahead[0] == row.id else self.return_path("d", row.id)
            then = ahead = None
            if (len(pending) > 1 and pacer.has_token() and (domain is None or domain.has_token())
                    and not (per_connection and sent_here + 1 >= per_connection)):
                ahead = (pending[1].id, self.return_path("d", pending[1].id))
                then = (ahead[1], pending[1].email)
            try:
                pipe.start(sender, row.email, data, then)
                self._build_next()  # while the relay reads the data: its answer is then waiting
                pipe.finish()
            except smtplib.SMTPException as exc:
                refusal = smtp.refusal(exc)
                if refusal.throttled:
                    self._throttled(row, data, refusal, relay, pacer)
                    if refusal.connection:
                        return "again"  # 421 closed the connection: open another
                    continue
                if refusal.connection:
                    raise
                pending.popleft()
                _recipient_error(rec, row, refusal, self.max_attempts)
            else:
                pending.popleft()
                rec.sent(row.id)
                pacer.ok()
                sent_here += 1
                self.progressed = True
        return "up"

    def _message(self, row: sa.Row) -> bytes:
        """The row's signed message: signed ahead already, or made and signed now."""
        built = self.built.pop(row.id, None)
        return built if built is not None else self.factory.sign(self._parts(0))

    def _parts(self, index: int) -> tuple:
        """The unsigned message of the row at `index` in the queue; the rows after it are made
        with it, one after another, where the code and data they share stay in the processor's
        caches (bench: about a fifth of what is not the signature)."""
        row = self.pending[index]
        if row.id not in self.unsigned:
            self.unsigned[row.id] = self.factory.parts_row(row)
            for ahead in itertools.islice(self.pending, index + 1, index + UNSIGNED_AHEAD):
                if ahead.id not in self.unsigned and ahead.id not in self.built:
                    try:
                        self.unsigned[ahead.id] = self.factory.parts_row(ahead)
                    except Exception:  # noqa: BLE001 - made again in its turn, where it stops the batch
                        break
        return self.unsigned.pop(row.id)

    def _build_next(self) -> None:
        """The next row's message, signed while the relay reads this one's data. Waiting for
        the answer instead would put the process to sleep and wake it again, which costs more
        CPU than reading it. An error here is left for the row's own turn, where it stops the
        batch."""
        if len(self.pending) > 1 and self.pending[1].id not in self.built:
            try:
                self.built[self.pending[1].id] = self.factory.sign(self._parts(1))
            except Exception:  # noqa: BLE001 - raised again when the row is built to be sent
                log.debug("building delivery %s ahead failed", self.pending[1].id, exc_info=True)

    def _throttled(self, row: sa.Row, data: bytes, refusal: smtp.Refusal, relay: smtp.Relay,
                   pacer: Pacer) -> None:
        """The relay wants us slower: halve its pace, and this row waits its turn again, unspent."""
        rate = pacer.push_back(refusal.detail)
        self.pending.popleft()
        self.throttles[row.id] += 1
        rec = self.recorder
        rec.result.throttled += 1
        if self.throttles[row.id] >= MAX_THROTTLES_PER_BATCH:
            rec.mark([row.id], DeliveryStatus.QUEUED, f"throttled: {refusal.detail}")
        else:
            self.built[row.id] = data
            self.pending.append(row)
        log.info("relay %s throttled (%s); pace now %s/s", relay.name, refusal.detail,
                 f"{rate:.1f}" if rate else "unchanged",
                 extra={"alert_id": rec.alert_id, "relay": relay.name, "smtp_code": refusal.code})


def _recipient_error(rec: Outcomes, row: sa.Row, refusal: smtp.Refusal, max_attempts: int) -> None:
    """5xx is final (and, at RCPT, a hard bounce that suppresses); 4xx is tried again later."""
    detail = refusal.detail
    log.info("delivery %s refused: %s", row.id, detail,
             extra={"alert_id": rec.alert_id, "delivery_id": row.id, "smtp_code": refusal.code})
    if refusal.permanent:
        rec.mark([row.id], DeliveryStatus.FAILED, detail, attempt=True)
        if refusal.hard_bounce:
            rec.suppress(row.email, "hard-bounce", detail)
    elif row.attempts + 1 >= max_attempts:
        rec.mark([row.id], DeliveryStatus.FAILED, f"gave up after {max_attempts} tries: {detail}",
                 attempt=True)
    else:
        rec.mark([row.id], DeliveryStatus.QUEUED, detail, attempt=True)


# Written to a staff address, not to a subscriber: the unsubscribe link is a sample and no
# List-Unsubscribe header offers a one-click button that could unsubscribe no one.
# Sent from the staff page itself (the answer says whether it went); a queued one runs the same.
@emails.email("alert_test", task=tasknames.SEND_ALERT_TEST, subscriber=False, auto_submitted=False)
def send_test(alert_id: int, to: str, lang: str | None = None) -> emails.Email:
    """One copy to a staff address, through the alert's template, signer and relay, as a
    reader of `lang` gets it (else the default language)."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    try:
        # One plain address: "me@org.org, victim@x.org" would pass a suppression check on
        # the whole string while smtplib mailed the first address in it.
        to = normalize_email(to)
    except InvalidEmail as exc:
        raise BlastError(f"send a test to one email address ({exc})") from exc
    if suppressions.is_suppressed(to):
        raise BlastError(f"{to} is on the suppression list")
    factory = MessageFactory.for_alert(alert, lang)
    return emails.Email(
        to=to, compiled=factory.compiled, values=factory.test_values(), subject_prefix="[TEST] ",
        return_path=envelope_sender(current_app.config),
        headers=(("List-Id", factory.list_id),
                 ("Feedback-ID", f"alert{factory.alert_id}:alerts:{factory.domain}")),
    )
