"""Staff pages for the Action Center's actions: list, create, edit, open/close, reorder."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ... import actions as catalog
from ...extensions import db
from ...models import Action
from ...subscribers import preferences
from . import bp
from .forms import ActionForm


def _save_action(form: ActionForm, action: Action | None) -> Action | None:
    """Apply a validated form; None (with the problem on the form) when it cannot be saved."""
    try:
        saved = catalog.save(
            action, title=form.title.data, slug=form.slug.data, summary=form.summary.data,
            call_to_action=form.call_to_action.data, kind=form.kind.data, url=form.url.data,
            is_open=form.is_open.data,
        )
        saved.topics = preferences.clean_topics(form.topics.data)
        return saved
    except catalog.ActionError as exc:
        getattr(form, exc.field).errors.append(str(exc))
        return None


def _action_page(form: ActionForm, action: Action | None):
    if request.method == "POST" and form.validate_on_submit():
        saved = _save_action(form, action)
        if saved is not None:
            db.session.commit()
            flash(f"Saved “{saved.title}”.", "success")
            return redirect(url_for("staff.actions"), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("staff/action_form.html", form=form, action=action), status


@bp.get("/actions")
def actions():
    return render_template("staff/actions.html", actions=catalog.ordered_actions())


@bp.route("/actions/new", methods=["GET", "POST"])
def action_new():
    return _action_page(ActionForm(), None)


@bp.route("/actions/<int:action_id>/edit", methods=["GET", "POST"])
def action_edit(action_id: int):
    action = db.get_or_404(Action, action_id)
    return _action_page(ActionForm(obj=action), action)


@bp.post("/actions/<int:action_id>/toggle")
def action_toggle(action_id: int):
    action = db.get_or_404(Action, action_id)
    action.is_open = not action.is_open
    db.session.commit()
    flash(f"“{action.title}” is now {'open' if action.is_open else 'closed'}.", "success")
    return redirect(url_for("staff.actions"), code=303)


@bp.post("/actions/<int:action_id>/move")
def action_move(action_id: int):
    """Swap with the neighbour, then renumber, so equal or gappy positions still move."""
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400)
    if not catalog.move(action_id, direction):
        abort(404)
    db.session.commit()
    return redirect(url_for("staff.actions", _anchor=f"action-{action_id}"), code=303)


