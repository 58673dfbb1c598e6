"""The blast engine: fixed recipients, one delivery row each, atomic batch claims, exactly-once sends.

Life of a blast:
1. `start_blast` fixes the recipients (confirmed, not suppressed, at that moment) by writing
   one `queued` row per (alert, subscriber); the unique key makes a second start harmless.
2. `dispatch` cuts the queued rows into id ranges and queues one batch task per range.
3. `send_batch` claims its range's queued rows in one UPDATE (a row is claimed by exactly one
   worker, whatever the database), renders and sends them over one SMTP connection and
   records outcomes every few messages; transient failures go back to `queued`.
4. `sweep` (Celery beat) returns rows whose worker died to `queued` and re-dispatches
   blasts that stopped moving (a lost task, a restarted Redis).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app

from . import mailer
from .dkim_signing import signer_for
from .extensions import db
from .messages import build_message, domain_of, format_from, new_message_id
from .models import (
    Action,
    Alert,
    AlertState,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    email_hash,
    utcnow,
)
from .rendering import CompiledEmail, compile_email, markdown_html
from .tokens import unsubscribe_serializer
from .transactional import external_url, org_context
from .verp import return_path

log = logging.getLogger(__name__)

ALERT_SLOTS = ("unsubscribe_url", "email")


class BlastError(Exception):
    """A request the alert's state does not allow; the message says why."""


# -- what an alert says -----------------------------------------------------------------


def rendered_actions(alert: Alert) -> list[Action]:
    """The alert's chosen actions that are still open when the message is rendered."""
    return [a for a in alert.actions if a.is_open]


def action_link(action: Action) -> str:
    return action.url or external_url("public.action", slug=action.slug)


def alert_context(alert: Alert) -> dict:
    actions = [
        {
            "title": a.title,
            "summary": a.summary,
            "call_to_action": a.call_to_action,
            "link": action_link(a),
        }
        for a in rendered_actions(alert)
    ]
    return {
        **org_context(),
        "subject": alert.subject,
        "preheader": alert.preheader or "",
        "intro_html": markdown_html(alert.intro_md),
        "intro_text": (alert.intro_md or "").strip(),
        "actions": actions,
    }


def compiled_alert(alert: Alert) -> CompiledEmail:
    """Compiled once per process for each (alert, set of open actions): premailer runs once."""
    cache: dict = current_app.extensions.setdefault("alerts.compiled_alerts", {})
    key = (alert.id, alert.subject, alert.preheader, alert.intro_md,
           tuple((a.id, a.updated_at) for a in rendered_actions(alert)))
    if key not in cache:
        if len(cache) > 32:
            cache.clear()
        cache[key] = compile_email(current_app.jinja_env, "alert", ALERT_SLOTS, **alert_context(alert))
    return cache[key]


def list_id() -> str:
    cfg = current_app.config
    if cfg.get("LIST_ID"):
        return cfg["LIST_ID"]
    name = " ".join(f"{cfg['ORG_NAME']} action alerts".replace('"', "").split())
    return f'"{name}" <alerts.{domain_of(cfg["MAIL_FROM"])}>'


def unsubscribe_mailto() -> str:
    cfg = current_app.config
    return cfg.get("UNSUBSCRIBE_MAILTO") or f"unsubscribe@{domain_of(cfg['MAIL_FROM'])}"


@dataclass
class MessageFactory:
    """Everything per-blast computed once; `build` is the per-recipient path."""

    alert_id: int  # an id, not the ORM object: no lazy load may open a transaction mid-batch
    compiled: CompiledEmail
    from_header: str
    domain: str
    list_id: str
    mailto: str
    unsubscribe_base: str
    serializer: object
    signer: object
    id_key: bytes = field(repr=False)

    @classmethod
    def for_alert(cls, alert: Alert) -> MessageFactory:
        cfg = current_app.config
        base = external_url("public.unsubscribe", token="T").rsplit("/", 1)[0] + "/"
        return cls(
            alert_id=alert.id,
            compiled=compiled_alert(alert),
            from_header=format_from(cfg["MAIL_FROM"]),
            domain=domain_of(cfg["MAIL_FROM"]),
            list_id=list_id(),
            mailto=unsubscribe_mailto(),
            unsubscribe_base=base,
            serializer=unsubscribe_serializer(),
            signer=signer_for(current_app),
            id_key=cfg["SECRET_KEYS"][0].encode(),
        )

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery: a resend after a crash carries the same Message-ID."""
        tag = hmac.new(self.id_key, f"{delivery_id}".encode(), hashlib.sha256).hexdigest()[:12]
        return f"<alert{self.alert_id}.d{delivery_id}.{tag}@{self.domain}>"

    def build(self, delivery_id: int | None, subscriber_id: int | None, email: str,
              subject_prefix: str = "") -> bytes:
        """One recipient's signed message; no delivery or subscriber means a staff test send."""
        token = "test-send" if subscriber_id is None else self.serializer.dumps(subscriber_id)
        unsubscribe_url = self.unsubscribe_base + token
        out = self.compiled.personalize(unsubscribe_url=unsubscribe_url, email=email)
        data = build_message(
            from_header=self.from_header,
            to=email,
            subject=subject_prefix + out.subject,
            text=out.text,
            html=out.html,
            message_id=(
                self.message_id(delivery_id) if delivery_id is not None else new_message_id(self.domain)
            ),
            extra_headers=[
                ("List-Unsubscribe",
                 f"<{unsubscribe_url}>, <mailto:{self.mailto}?subject=unsubscribe-{token}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("List-Id", self.list_id),
                ("Feedback-ID", f"alert{self.alert_id}:alerts:{self.domain}"),
            ],
        )
        return self.signer.sign(data) if self.signer else data


# -- starting, pausing, resuming, cancelling -----------------------------------------


def _locked_alert(alert_id: int) -> Alert:
    alert = db.session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    return alert


def _recipients(query: sa.Select) -> sa.Select:
    """Who a blast goes to: confirmed and not suppressed, at the moment it starts."""
    return query.where(Subscriber.status == SubscriberStatus.CONFIRMED).where(
        ~sa.exists().where(Suppression.email == Subscriber.email)
    )


def recipient_count() -> int:
    """How many a blast started now would go to (the staff confirmation page shows it)."""
    return db.session.scalar(_recipients(sa.select(sa.func.count()).select_from(Subscriber)))


def start_blast(alert_id: int) -> int:
    """Fix the recipients and mark the alert sending; the caller enqueues `dispatch` after."""
    alert = _locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a draft can be sent")
    recipients = _recipients(
        sa.select(
            sa.literal(alert_id), Subscriber.id, sa.literal(str(DeliveryStatus.QUEUED)), sa.literal(0)
        )
    ).order_by(Subscriber.id)
    db.session.execute(
        sa.insert(Delivery).from_select(["alert_id", "subscriber_id", "status", "attempts"], recipients)
    )
    alert.state = AlertState.SENDING
    alert.started_at = utcnow()
    db.session.commit()
    return counts(alert_id)["total"]


def _move(alert_id: int, allowed: tuple[str, ...], to: str, verb: str) -> Alert:
    alert = _locked_alert(alert_id)
    if alert.state not in allowed:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a {' or '.join(allowed)} alert "
                         f"can be {verb}")
    alert.state = to
    return alert


def pause(alert_id: int) -> None:
    _move(alert_id, (AlertState.SENDING,), AlertState.PAUSED, "paused")
    db.session.commit()


def resume(alert_id: int) -> None:
    """The caller enqueues `dispatch` after this commits."""
    _move(alert_id, (AlertState.PAUSED,), AlertState.SENDING, "resumed")
    db.session.commit()


def cancel(alert_id: int) -> None:
    """Rows not yet sent are skipped; a batch in flight stops at its next check."""
    alert = _move(alert_id, (AlertState.SENDING, AlertState.PAUSED, AlertState.DRAFT),
                  AlertState.CANCELLED, "cancelled")
    alert.finished_at = utcnow()
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, error="cancelled")
    )
    db.session.commit()


# -- dispatching ------------------------------------------------------------------------


def batch_ranges(alert_id: int, size: int) -> Iterator[tuple[int, int]]:
    """(first id, last id) of each run of `size` queued rows, streamed from the database."""
    ids = db.session.scalars(
        sa.select(Delivery.id)
        .where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
        .execution_options(yield_per=10_000)
    )
    first = last = None
    n = 0
    for delivery_id in ids:
        if first is None:
            first = delivery_id
        last = delivery_id
        n += 1
        if n == size:
            yield first, last
            first, n = None, 0
    if first is not None:
        yield first, last


def dispatch(alert_id: int, enqueue) -> int:
    """Queue one batch task per range of queued rows; returns how many were queued."""
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.state != AlertState.SENDING:
        return 0
    ranges = list(batch_ranges(alert_id, current_app.config["BLAST_BATCH_SIZE"]))
    alert.last_dispatch_at = utcnow()
    db.session.commit()
    for first, last in ranges:
        enqueue(alert_id, first, last)
    if not ranges:
        finish_if_done(alert_id)
    return len(ranges)


# -- sending a batch ----------------------------------------------------------------------


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    requeued: int = 0
    stopped: str | None = None  # why the batch stopped early, if it did

    @property
    def needs_retry(self) -> bool:
        return self.requeued > 0 and self.stopped not in ("paused", "cancelled", "lost-claim")


class Recorder:
    """Commits a batch's outcomes from a thread of its own, every few milliseconds.

    The send loop only appends to lists, so database writes stay a few per second per
    batch, and an SMTP server that stalls on one message cannot hold earlier 250s
    unrecorded: the window between a server's 250 and its commit is one flush interval.
    The same flush heartbeats the claim and reads the alert's state (pause, cancel).
    """

    def __init__(self, engine: sa.Engine, alert_id: int, claim: str, interval: float,
                 first: int, last: int):
        self.engine = engine
        self.alert_id = alert_id
        self.claim = claim
        self.first, self.last = first, last
        self.interval = interval
        self.result = BatchResult()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # the thread and the final flush never overlap
        self._sent: list[int] = []
        self._marks: list[tuple[list[int], dict]] = []
        self._suppress: list[tuple[str, str, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{claim[:8]}", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.flush()

    def sent(self, delivery_id: int) -> None:
        with self._lock:
            self._sent.append(delivery_id)

    def mark(self, ids: list[int], status: str, error: str | None, *, attempt: bool = False) -> None:
        if not ids:
            return
        values: dict = {"status": status, "error": error}
        if status == DeliveryStatus.QUEUED:
            values["claim_id"] = None
        if attempt:
            values["attempts"] = Delivery.attempts + 1
        with self._lock:
            self._marks.append((list(ids), values))
        key = {DeliveryStatus.FAILED: "failed", DeliveryStatus.SKIPPED: "skipped",
               DeliveryStatus.QUEUED: "requeued"}[status]
        setattr(self.result, key, getattr(self.result, key) + len(ids))

    def suppress(self, email: str, reason: str, detail: str) -> None:
        with self._lock:
            self._suppress.append((email, reason, detail))

    def release(self, ids: list[int], why: str) -> None:
        """Unsent rows go back to the queue, or are skipped if the alert was cancelled."""
        if self.stop_reason == "cancelled":
            self.mark(ids, DeliveryStatus.SKIPPED, "cancelled")
        else:
            self.mark(ids, DeliveryStatus.QUEUED, why)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the database is away: the send loop stops at its next check
                log.exception("alert %s: recording outcomes failed", self.alert_id,
                              extra={"alert_id": self.alert_id, "claim": self.claim})
                self.stop_reason = self.stop_reason or "database-error"

    def flush(self) -> None:
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            sent, self._sent = self._sent, []
            marks, self._marks = self._marks, []
            suppress, self._suppress = self._suppress, []
        # The id range lets the database find the batch's rows by primary key.
        mine = sa.and_(Delivery.id.between(self.first, self.last), Delivery.claim_id == self.claim)
        now = utcnow()
        with self.engine.begin() as conn:
            if sent:
                res = conn.execute(
                    sa.update(Delivery)
                    .where(Delivery.id.in_(sent), mine)
                    .values(status=DeliveryStatus.SENT, sent_at=now, error=None)
                )
                if res.rowcount != len(sent):
                    self.stop_reason = "lost-claim"
            for ids, values in marks:
                conn.execute(sa.update(Delivery).where(Delivery.id.in_(ids), mine).values(**values))
            for email, reason, detail in suppress:
                _suppress_on(conn, email, reason, detail)
            conn.execute(
                sa.update(Delivery)
                .where(mine, Delivery.status == DeliveryStatus.SENDING)
                .values(claimed_at=now)
            )
            state = conn.scalar(sa.select(Alert.state).where(Alert.id == self.alert_id))
        self.result.sent += len(sent)
        if state == AlertState.CANCELLED:
            self.stop_reason = "cancelled"
        elif state != AlertState.SENDING and self.stop_reason is None:
            self.stop_reason = "paused"


def _claim(alert_id: int, first: int, last: int) -> str | None:
    claim = uuid.uuid4().hex
    res = db.session.execute(
        sa.update(Delivery)
        .where(
            Delivery.alert_id == alert_id,
            Delivery.id >= first,
            Delivery.id <= last,
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .values(status=DeliveryStatus.SENDING, claim_id=claim, claimed_at=utcnow())
    )
    db.session.commit()
    return claim if res.rowcount else None


def _alert_state(alert_id: int) -> str | None:
    return db.session.scalar(sa.select(Alert.state).where(Alert.id == alert_id))


def send_batch(alert_id: int, first: int, last: int) -> BatchResult:
    """Claim the queued rows in [first, last], send each one once, record every outcome."""
    cfg = current_app.config
    if _alert_state(alert_id) != AlertState.SENDING:
        return BatchResult(stopped="not-sending")
    claim = _claim(alert_id, first, last)
    if claim is None:
        finish_if_done(alert_id)
        return BatchResult()
    rows = db.session.execute(
        sa.select(Delivery.id, Delivery.subscriber_id, Delivery.attempts, Subscriber.email,
                  Subscriber.status)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.between(first, last), Delivery.claim_id == claim)
        .order_by(Delivery.id)
    ).all()
    alert = db.session.get(Alert, alert_id)
    factory = MessageFactory.for_alert(alert)
    suppressed = _suppressed_hashes([r.email for r in rows if r.email])
    db.session.commit()  # no transaction stays open while the batch sends

    recorder = Recorder(db.engine, alert_id, claim, cfg["BLAST_FLUSH_MS"] / 1000, first, last)
    with recorder:
        todo = []
        for row in rows:
            if row.email is None or row.status != SubscriberStatus.CONFIRMED:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "not subscribed")
            elif email_hash(row.email) in suppressed:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "suppressed")
            else:
                todo.append(row)
        done = _send_rows(recorder, factory, todo, cfg)
        recorder.flush()  # the state as of now decides between requeue and skip
        recorder.release([r.id for r in todo[done:]], recorder.result.stopped or "requeued")
    result = recorder.result
    result.stopped = result.stopped or recorder.stop_reason
    if result.stopped == "lost-claim":
        log.error("alert %s: claim %s was taken over; batch stopped", alert_id, claim,
                  extra={"alert_id": alert_id, "claim": claim})
    finish_if_done(alert_id)
    return result


def _send_rows(recorder: Recorder, factory: MessageFactory, todo: list, cfg) -> int:
    """Send over one connection; returns how many rows have an outcome (the rest go back)."""
    if not todo:
        return 0
    try:
        conn = mailer.connect(cfg["SMTP_URL"], cfg["SMTP_TIMEOUT"])
    except (OSError, smtplib.SMTPException) as exc:
        recorder.result.stopped = "smtp-unavailable"
        log.warning("alert %s: SMTP unavailable (%s)", recorder.alert_id, exc,
                    extra={"alert_id": recorder.alert_id})
        return 0
    verp = bool(cfg.get("BOUNCE_DOMAIN"))
    sender = mailer.envelope_sender(cfg)
    max_attempts = cfg["BLAST_MAX_ATTEMPTS"]
    i = 0
    try:
        while i < len(todo) and recorder.stop_reason is None:
            row = todo[i]
            data = factory.build(row.id, row.subscriber_id, row.email)
            try:
                mailer.send_message(conn, return_path("d", row.id) if verp else sender, row.email, data)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                _recipient_error(recorder, row, code, text, max_attempts, hard_bounce=True)
            except smtplib.SMTPResponseException as exc:
                if isinstance(exc, smtplib.SMTPSenderRefused) or exc.smtp_code == 421:
                    raise
                _recipient_error(recorder, row, exc.smtp_code, exc.smtp_error, max_attempts,
                                 hard_bounce=False)
            else:
                recorder.sent(row.id)
            i += 1
    except (OSError, smtplib.SMTPException) as exc:
        # The connection died before this row's 250: it goes back with the rest.
        recorder.result.stopped = "smtp-disconnected"
        log.warning("alert %s: SMTP failed mid-batch (%s); %d rows requeued",
                    recorder.alert_id, exc, len(todo) - i,
                    extra={"alert_id": recorder.alert_id, "requeued": len(todo) - i})
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()
    return i


def _recipient_error(rec: Recorder, row, code: int, text, max_attempts: int, *, hard_bounce: bool):
    """5xx is final (and, at RCPT, a hard bounce that suppresses); 4xx is tried again later."""
    detail = f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    log.info("delivery %s refused: %s", row.id, detail,
             extra={"alert_id": rec.alert_id, "delivery_id": row.id, "smtp_code": code})
    if 500 <= code < 600:
        rec.mark([row.id], DeliveryStatus.FAILED, detail, attempt=True)
        if hard_bounce:
            rec.suppress(row.email, "hard-bounce", detail)
    elif row.attempts + 1 >= max_attempts:
        rec.mark([row.id], DeliveryStatus.FAILED, f"gave up after {max_attempts} tries: {detail}",
                 attempt=True)
    else:
        rec.mark([row.id], DeliveryStatus.QUEUED, detail, attempt=True)


def _suppressed_hashes(emails: list[str]) -> set[str]:
    if not emails:
        return set()
    hashes = [email_hash(e) for e in emails]
    query = sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))
    return set(db.session.scalars(query))


def _suppress_on(conn: sa.Connection, email: str, reason: str, detail: str | None) -> None:
    """Never mail this address again (idempotent; the first reason stands)."""
    key = email_hash(email)
    if conn.scalar(sa.select(Suppression.id).where(Suppression.email_hash == key)) is None:
        conn.execute(sa.insert(Suppression).values(
            email_hash=key, email=email, reason=reason, detail=detail, created_at=utcnow()
        ))


def finish_if_done(alert_id: int) -> bool:
    """Mark the alert sent once no row is queued or being sent (one conditional UPDATE)."""
    busy = sa.exists().where(
        Delivery.alert_id == alert_id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
    res = db.session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id, Alert.state == AlertState.SENDING, ~busy)
        .values(state=AlertState.SENT, finished_at=utcnow())
    )
    db.session.commit()
    return res.rowcount == 1


# -- recovering ---------------------------------------------------------------------------


def sweep(enqueue) -> dict:
    """Return abandoned rows to the queue and re-dispatch blasts that stopped moving."""
    cfg = current_app.config
    now = utcnow()
    stuck_before = now - timedelta(seconds=cfg["BLAST_STUCK_SECONDS"])
    reset = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stuck_before)
        .values(status=DeliveryStatus.QUEUED, claim_id=None, error="returned by sweep")
    ).rowcount
    db.session.commit()
    stall_before = now - timedelta(seconds=cfg["BLAST_STALL_SECONDS"])
    redispatched = []
    for alert in db.session.scalars(sa.select(Alert).where(Alert.state == AlertState.SENDING)).all():
        if finish_if_done(alert.id):
            continue
        last_claim = db.session.scalar(
            sa.select(sa.func.max(Delivery.claimed_at)).where(Delivery.alert_id == alert.id)
        )
        recent = [t for t in (alert.last_dispatch_at, last_claim) if t is not None]
        if reset or not recent or max(recent) < stall_before:
            dispatch(alert.id, enqueue)
            redispatched.append(alert.id)
    return {"returned": reset, "redispatched": redispatched}


# -- progress ------------------------------------------------------------------------------


def counts(alert_id: int) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Delivery.status, sa.func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.status)
    ).all()
    by = {status: n for status, n in rows}
    out = {s.value: by.get(s.value, 0) for s in DeliveryStatus}
    out["total"] = sum(by.values())
    return out


def status(alert_id: int) -> dict:
    """What the CLI and the staff page show: counts, rate, time left."""
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    c = counts(alert_id)
    now = utcnow()
    window = 30
    recent = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.sent_at >= now - timedelta(seconds=window))
    )
    elapsed = ((alert.finished_at or now) - alert.started_at).total_seconds() if alert.started_at else 0
    if alert.state == AlertState.SENDING:
        # The last 30 s, or since the start when the blast is younger than that.
        rate = recent / max(1.0, min(window, elapsed))
    else:
        rate = c["sent"] / elapsed if elapsed else 0
    remaining = c["queued"] + c["sending"]
    done = c["sent"] + c["failed"] + c["skipped"]
    return {
        "id": alert.id,
        "state": alert.state,
        **c,
        "done": done,
        "percent": round(100 * done / c["total"], 1) if c["total"] else float(alert.state == "sent") * 100,
        "rate_per_second": round(rate, 1),
        "seconds_left": round(remaining / rate) if rate and remaining else None,
        "started_at": alert.started_at.isoformat() if alert.started_at else None,
        "finished_at": alert.finished_at.isoformat() if alert.finished_at else None,
    }


# -- previews and test sends -----------------------------------------------------------


def preview(alert: Alert, email: str = "subscriber@example.org"):
    """The message as a subscriber will see it (the unsubscribe link is a sample)."""
    return compiled_alert(alert).personalize(
        unsubscribe_url=external_url("public.unsubscribe", token="preview"), email=email
    )


def send_test(alert_id: int, to: str) -> None:
    """One copy to a staff address, through the same builder, signer and relay as a blast."""
    cfg = current_app.config
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    if _suppressed_hashes([to]):
        raise BlastError(f"{to} is on the suppression list")
    data = MessageFactory.for_alert(alert).build(None, None, to, subject_prefix="[TEST] ")
    mailer.send_one(cfg["SMTP_URL"], parseaddr(cfg["MAIL_FROM"])[1], to, data, cfg["SMTP_TIMEOUT"])


# -- entry points for the CLI and the staff pages ---------------------------------------


def _dispatch_later(alert_id: int) -> None:
    """Enqueue after the commit; if the broker is away, the sweep re-dispatches the blast."""
    from .tasks import dispatch_blast

    try:
        dispatch_blast.delay(alert_id)
    except Exception:
        log.exception("alert %s: could not queue the dispatch; the sweep will", alert_id,
                      extra={"alert_id": alert_id})


def launch(alert_id: int) -> int:
    total = start_blast(alert_id)
    _dispatch_later(alert_id)
    return total


def relaunch(alert_id: int) -> None:
    resume(alert_id)
    _dispatch_later(alert_id)
