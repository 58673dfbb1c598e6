"""A/B subject tests: a random sample per variant, the winner by clicks or signatures, the rest after.

Every recipient has one delivery row from the start (the rows stay the source of truth):
the sample's rows carry their variant and are queued; the rest are `held` with no variant.
When the wait is over, `decide_due` (run by beat) picks the winner and moves the held rows
to `queued` with the winner's variant in one UPDATE, so nobody can get two variants. A
variant whose unsubscribes plus complaints pass `breaker_pct` of its sent messages is out;
when every variant is out the test stops and the held rows are skipped.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import asdict, dataclass
from datetime import timedelta

import sqlalchemy as sa

from .. import queueing, tasknames
from ..extensions import db
from ..models import (
    AbTest,
    Alert,
    AlertState,
    BounceEvent,
    BounceKind,
    Click,
    ConsentRecord,
    Delivery,
    DeliveryStatus,
    Signature,
    utcnow,
)
from . import personal

LETTERS = "ABCDEFGHIJ"
MAX_WAIT_MINUTES = 7 * 24 * 60


class AbTestError(ValueError):
    """What stops an A/B test being set; `field` names the form field at fault, where one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def letter(variant: int) -> str:
    return LETTERS[variant]


def configure(alert: Alert, *, subjects: list[str], from_names: list[str] | None = None,
              sample_pct: int | None, wait_minutes: int | None, metric: str = "clicks",
              breaker_pct: float = 1.0, seed: int | None = None) -> AbTest:
    """Attach (or replace) the draft's A/B test; variant A is the alert's own subject."""
    if alert.state != AlertState.DRAFT:
        raise AbTestError(f"alert {alert.id} is {alert.state}; only a draft can get an A/B test")
    subjects = [" ".join((s or "").split()) for s in subjects]
    if len(subjects) < 2 or any(not s for s in subjects):
        raise AbTestError("an A/B test needs two or more subjects (--subject-b)")
    if len(set(subjects)) < len(subjects):
        raise AbTestError("the A/B subjects must differ")
    if len(subjects) > len(LETTERS):
        raise AbTestError(f"at most {len(LETTERS)} variants")
    if any(len(s) > 200 for s in subjects):
        raise AbTestError("an A/B subject is longer than 200 characters")
    known = personal.known_keys()
    for i, subject in enumerate(subjects[1:], start=1):
        problem = personal.unknown(subject, known)
        if problem:
            raise AbTestError(f"subject {LETTERS[i]}: {problem}", field="subject_b" if i == 1 else None)
    names = [" ".join((n or "").split()) or None for n in (from_names or [])]
    if len(names) > len(subjects):
        raise AbTestError(f"{len(names)} From names for {len(subjects)} subjects")
    limit = 100 // (len(subjects) + 1)  # something must be left for the winner
    if sample_pct is None or not 1 <= sample_pct <= limit:
        raise AbTestError(f"the A/B sample (--ab-sample) must be 1 to {limit} percent per variant "
                          f"with {len(subjects)} variants")
    if wait_minutes is None or not 1 <= wait_minutes <= MAX_WAIT_MINUTES:
        raise AbTestError(f"the A/B wait (--ab-wait) must be 1 to {MAX_WAIT_MINUTES} minutes")
    if metric not in ("clicks", "signatures"):
        raise AbTestError("the A/B winner is picked by clicks or signatures")
    if not 0 < breaker_pct <= 100:
        raise AbTestError("the circuit breaker must be above 0 and at most 100 percent")
    test = db.session.get(AbTest, alert.id) or AbTest(alert_id=alert.id)
    test.variants = [{"subject": s, "from_name": names[i] if i < len(names) else None}
                     for i, s in enumerate(subjects)]
    test.sample_pct, test.wait_minutes, test.metric = sample_pct, wait_minutes, metric
    test.breaker_pct, test.seed, test.state = breaker_pct, seed, "draft"
    alert.subject = subjects[0]
    db.session.add(test)
    db.session.flush()
    return test


def remove(alert_id: int) -> None:
    db.session.execute(sa.delete(AbTest).where(AbTest.alert_id == alert_id, AbTest.state == "draft"))


def start(alert_id: int) -> AbTest | None:
    """Right after the recipients are fixed (same transaction): pick the samples, hold the rest."""
    test = db.session.get(AbTest, alert_id)
    if test is None:
        return None
    ids = list(db.session.scalars(
        sa.select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id)))
    n = len(test.variants)
    per = len(ids) * test.sample_pct // 100
    if test.seed is None:
        test.seed = secrets.randbits(31)
    sample = random.Random(test.seed).sample(ids, per * n)
    for v in range(n):
        chosen = sample[v * per:(v + 1) * per]
        for i in range(0, len(chosen), 1000):
            db.session.execute(sa.update(Delivery).where(Delivery.id.in_(chosen[i:i + 1000]))
                               .values(variant=v))
    db.session.execute(
        sa.update(Delivery).where(Delivery.alert_id == alert_id, Delivery.variant.is_(None))
        .values(status=DeliveryStatus.HELD))
    test.state = "testing"
    test.decide_at = utcnow() + timedelta(minutes=test.wait_minutes)
    return test


@dataclass
class VariantResult:
    variant: str
    subject: str
    from_name: str | None
    sample: int
    sent: int
    clickers: int
    signers: int
    unsubscribed: int
    complaints: int
    tripped: bool = False

    def rate(self, metric: str) -> float:
        count = self.clickers if metric == "clicks" else self.signers
        return count / self.sent if self.sent else 0.0


def measure(test: AbTest) -> list[VariantResult]:
    """Each variant's numbers: unique clickers and signers per sent message; unsubscribes, complaints."""
    alert = db.session.get_one(Alert, test.alert_id)
    d = Delivery
    clicked = sa.exists().where(
        Click.alert_id == d.alert_id, Click.machine.is_(False),
        sa.or_(Click.delivery_id == d.id, Click.subscriber_id == d.subscriber_id))
    signed = sa.exists().where(
        sa.or_(Signature.delivery_id == d.id,
               sa.and_(Signature.alert_id == d.alert_id, Signature.subscriber_id == d.subscriber_id)))
    unsub = sa.exists().where(ConsentRecord.subscriber_id == d.subscriber_id,
                              ConsentRecord.event.like("unsubscribe%"),
                              ConsentRecord.at >= (alert.started_at or utcnow()))
    complained = sa.exists().where(BounceEvent.delivery_id == d.id,
                                   BounceEvent.kind == BounceKind.COMPLAINT)

    def count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((cond, 1), else_=0))

    rows = {r.variant: r for r in db.session.execute(
        sa.select(d.variant, sa.func.count().label("sample"),
                  count(d.status == DeliveryStatus.SENT).label("sent"),
                  count(clicked).label("clickers"), count(signed).label("signers"),
                  count(unsub).label("unsubscribed"), count(complained).label("complaints"))
        .where(d.alert_id == test.alert_id, d.variant.is_not(None), d.status != DeliveryStatus.HELD)
        .group_by(d.variant))}
    out = []
    for v, spec in enumerate(test.variants):
        r = rows.get(v)
        sent, clickers, signers, unsubscribed, complaints = (
            int(getattr(r, k) or 0) if r else 0
            for k in ("sent", "clickers", "signers", "unsubscribed", "complaints"))
        out.append(VariantResult(
            letter(v), spec["subject"], spec.get("from_name"), int(r.sample) if r else 0,
            sent, clickers, signers, unsubscribed, complaints))
    for res in out:
        bad = res.unsubscribed + res.complaints
        res.tripped = bool(res.sent) and 100 * bad / res.sent > test.breaker_pct
    return out


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _winner(results: list[VariantResult], metric: str) -> tuple[int, str]:
    """Highest rate by the chosen metric; a tie goes to the other metric, then to A."""
    other = "signatures" if metric == "clicks" else "clicks"
    live = [i for i, r in enumerate(results) if not r.tripped]
    best = max(live, key=lambda i: (results[i].rate(metric), results[i].rate(other), -i))
    w = results[best]
    noun = "clicked" if metric == "clicks" else "signed"

    def figure(r: VariantResult) -> str:
        n = r.clickers if metric == "clicks" else r.signers
        return f"{n} of {r.sent} {noun} ({_pct(n, r.sent)})"

    rivals = [r for i, r in enumerate(results) if i != best and not r.tripped]
    reason = f"Variant {w.variant} won on {metric}: {figure(w)}"
    if rivals:
        reason += " against " + ", ".join(f"{r.variant}'s {figure(r)}" for r in rivals)
        if any(r.rate(metric) == w.rate(metric) for r in rivals):
            reason += f"; tied on {metric}, so {other} decided, then the earlier variant"
    tripped = [r for r in results if r.tripped]
    if tripped:
        reason += "; " + ", ".join(f"{r.variant} was stopped by the circuit breaker" for r in tripped)
    return best, reason + "."


def decide(alert_id: int, *, force: bool = False) -> str | None:
    """Check the breaker; once the wait is over, send the rest the winner. Returns what happened."""
    test = db.session.get(AbTest, alert_id, with_for_update=True, populate_existing=True)
    if test is None or test.state != "testing":
        return None
    alert = db.session.get_one(Alert, alert_id)
    results = measure(test)
    test.results = [asdict(r) for r in results]
    if alert.state == AlertState.CANCELLED:
        test.state, test.reason = "stopped", "The alert was cancelled."
        return "stopped"
    if all(r.tripped for r in results):
        test.state = "stopped"
        test.reason = "Stopped by the circuit breaker: " + "; ".join(
            f"{r.variant} had {r.unsubscribed} unsubscribes and {r.complaints} complaints of {r.sent} "
            f"sent ({_pct(r.unsubscribed + r.complaints, r.sent)}, over {test.breaker_pct:g}%)"
            for r in results) + ". Nobody else was sent this alert."
        db.session.execute(
            sa.update(Delivery).where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.HELD)
            .values(status=DeliveryStatus.SKIPPED, error="A/B test stopped by the circuit breaker"))
        return "stopped"
    assert test.decide_at is not None  # set with the state "testing"
    if not force and utcnow() < test.decide_at:
        return None
    best, reason = _winner(results, test.metric)
    test.winner, test.reason, test.state = best, reason, "decided"
    db.session.execute(
        sa.update(Delivery).where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.HELD)
        .values(status=DeliveryStatus.QUEUED, variant=best))
    if alert.state == AlertState.SENDING:
        queueing.after_commit(tasknames.DISPATCH_BLAST, alert_id)
    return "decided"


def decide_due() -> dict[int, str]:
    """Beat's job: every test still running gets its breaker checked, and is decided when due.

    Engine internal: commits after each test, so one test's failure does not hold the others.
    """
    ids = list(db.session.scalars(sa.select(AbTest.alert_id).where(AbTest.state == "testing")))
    done = {}
    for alert_id in ids:
        outcome = decide(alert_id)
        db.session.commit()
        if outcome:
            done[alert_id] = outcome
    return done


def variant_for(alert_id: int) -> AbTest | None:
    return db.session.get(AbTest, alert_id)
