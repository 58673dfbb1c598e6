"""Staff pages for the suppression list and the bounce log.

Their routes are in the staff blueprint's table (blueprint.py), so every one of them is
behind its login gate, CSP and no-store headers.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ...bounces import processing
from ...extensions import db
from ...models import BounceEvent, BounceKind, Subscriber, Suppression, SuppressionLift, email_hash
from ...suppressions import lift
from .common import current_staff, page_number, record
from .forms import ADDRESS

PER_PAGE = 50
RECENT_LIFTS = 20


class SuppressForm(FlaskForm):
    email = StringField(
        "Address", validators=[DataRequired("Enter an address."), Length(max=254), ADDRESS],
        render_kw={"autocomplete": "off", "placeholder": "name@example.org"},
    )
    note = StringField(
        "Why",
        validators=[DataRequired("Say why; it is recorded."), Length(max=500)],
    )


class LiftForm(FlaskForm):
    reason = StringField(
        "Reason for lifting",
        validators=[DataRequired("Give a reason for lifting; it is recorded."), Length(max=500)],
    )


def _search(query: sa.Select, q: str) -> sa.Select:
    """Part of an address; a whole address also finds an erased entry, by its hash."""
    match = sa.func.lower(Suppression.email).contains(q.lower(), autoescape=True)
    if "@" in q:
        match = sa.or_(match, Suppression.email_hash == email_hash(q))
    return query.where(match)


def _list_page(form: SuppressForm, status: int = 200):
    q = " ".join(request.args.get("q", "").split())[:254]
    page = page_number()
    query = sa.select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc())
    if q:
        query = _search(query, q)
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    lifts = db.session.scalars(
        sa.select(SuppressionLift).order_by(SuppressionLift.lifted_at.desc(), SuppressionLift.id.desc())
        .limit(RECENT_LIFTS)
    ).all()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Suppression))
    return render_template(
        "staff/suppressions.html", pagination=pagination, q=q, form=form, lifts=lifts, total=total,
    ), status


def suppressions():
    return _list_page(SuppressForm())


def suppression_add():
    form = SuppressForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    address = form.email.data.strip()
    added = processing.suppress_manually(address, by=current_staff().email, note=form.note.data.strip())
    if added:
        record("suppression.add", None, email_hash=email_hash(address)[:16])
    db.session.commit()
    if added:
        flash(f"{address} is suppressed: nothing will be sent to it by any path.", "success")
    else:
        flash(f"{address} was already on the suppression list.", "info")
    return redirect(url_for("staff.suppressions"), code=303)


def suppression_lift(suppression_id: int):
    entry = db.get_or_404(Suppression, suppression_id)
    back = redirect(url_for("staff.suppressions", q=request.args.get("q") or None), code=303)
    form = LiftForm()
    if not form.validate_on_submit():
        flash("Not lifted: " + " ".join(e for errs in form.errors.values() for e in errs), "error")
        return back
    label = entry.email or "The erased address"
    reason = entry.reason
    lift(entry.id, by=current_staff().email, reason=form.reason.data)
    record("suppression.lift", f"suppression {suppression_id}", was=reason, why=form.reason.data)
    db.session.commit()
    note = (" They stay unsubscribed: a complaint also unsubscribed them, and only they can sign up "
            "again.") if reason == "complaint" else ""
    flash(f"{label} is no longer suppressed.{note}", "success")
    return back


def bounce_events():
    kind = request.args.get("kind", "")
    if kind not in {k.value for k in BounceKind}:
        kind = ""
    page = page_number()
    query = sa.select(BounceEvent).order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc())
    if kind:
        query = query.where(BounceEvent.kind == kind)
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    ids = {e.subscriber_id for e in pagination.items if e.subscriber_id is not None}
    emails = dict(
        db.session.execute(sa.select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_(ids))).all()
    ) if ids else {}
    return render_template(
        "staff/suppressions_bounces.html", pagination=pagination, kind=kind, emails=emails,
        kinds=[k.value for k in BounceKind],
        threshold=current_app.config["BOUNCE_SOFT_THRESHOLD"],
        window=current_app.config["BOUNCE_SOFT_WINDOW_DAYS"],
    )
