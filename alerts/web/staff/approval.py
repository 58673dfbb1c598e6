"""Staff pages for two-person approval: ask for it, and look at an alert before approving it."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from ... import audit, queueing, tasknames
from ...blasts import approval, content, personal
from ...extensions import db
from ...models import AbTest, Alert, AlertState
from ...words import plural
from .common import current_staff, staff_actor
from .compose import counted
from .forms import ApproveForm, SendTestForm


def alert_approve(alert_id: int):
    """The approver's page: the preview, the audience in words and its count, the sender and
    the schedule, a test to themselves; the POST approves what was shown, nothing newer."""
    item = db.get_or_404(Alert, alert_id)
    me = current_staff()
    form = ApproveForm()
    audience = counted(item) if item.state == AlertState.DRAFT else {"size": None}
    refusal = approval.approver_refusal(item, me, me.email)
    error, code = None, 200
    if form.is_submitted():
        if refusal:
            error, code = refusal, 403
        elif not form.validate():
            error, code = " ".join(e for errs in form.errors.values() for e in errs), 400
        else:
            try:
                parts = approval.approve(item.id, me.email, form.digest.data, audience["size"])
            except approval.ApprovalError as exc:
                db.session.rollback()
                error, code = str(exc), 409
            else:
                audit.record(staff_actor(), approval.APPROVE, approval.target(item.id),
                             digest=item.approved_digest, recipients=audience["size"], parts=parts)
                db.session.commit()
                flash(f"Approved. Anyone with send permission can now send it to "
                      f"{plural(audience['size'] or 0, 'subscriber')}; a change to it voids this "
                      "approval.", "success")
                return redirect(url_for("staff.alert", alert_id=item.id, _anchor="approval"), code=303)
    return render_template(
        "staff/approve.html", alert=item, audience=audience, refusal=refusal, error=error,
        standing=approval.standing(item, audience["size"]) if item.state == AlertState.DRAFT else None,
        form=ApproveForm(formdata=None, data={"digest": approval.digest(item)}),
        test_form=SendTestForm(data={"to": me.email}), included=content.rendered_actions(item),
        greets=bool(personal.tokens_in(item.subject, item.preheader, intro=item.intro_md)),
        ab=db.session.get(AbTest, item.id),
    ), code


def alert_approval_request(alert_id: int):
    """Email every other staff member who may approve, with a link to the approve page."""
    item = db.get_or_404(Alert, alert_id)
    back = redirect(url_for("staff.alert", alert_id=item.id, _anchor="approval"), code=303)
    if item.state != AlertState.DRAFT:
        flash(f"This alert is {item.state}; only a draft can be approved.", "error")
        return back
    me = current_staff()
    asked = approval.senders_to_ask(me.email)
    if not asked:
        flash("Nobody to ask: no other staff member has send permission. An admin can give "
              "someone the sender role on the staff page.", "error")
        return back
    for to in asked:
        queueing.after_commit(tasknames.SEND_APPROVAL_REQUEST, item.id, to, me.email)
    audit.record(staff_actor(), approval.REQUEST, approval.target(item.id), asked=asked)
    db.session.commit()
    flash(f"Approval asked of {', '.join(asked)} by email.", "success")
    return back
