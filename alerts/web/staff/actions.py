"""Staff pages for the Action Center's actions: list, create, edit, open/close, reorder, signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from ... import actions as catalog
from ... import i18n
from ...actions import calls, letters, records, shares, signing
from ...actions import targets as targets_
from ...actions.targets import phone_shown
from ...extensions import db
from ...models import Action, ActionTarget
from ...subscribers import preferences
from ...words import plural
from ..security import allows_large_upload, records_on_get
from .common import PER_PAGE, record, record_export
from .forms import ActionForm, SignerImportForm

DAYS_SHOWN = 60


TARGETED = ("letter", "call")  # the kinds that have targets


def _uploaded(form: ActionForm) -> bool:
    return bool(form.targets_file.data and getattr(form.targets_file.data, "filename", ""))


def _wanted_targets(form: ActionForm) -> list[targets_.Target] | None:
    """The targets the form asks for; None for a petition or pledge (whatever targets it had
    stay, unused, so switching the kind back and forth loses nothing). A CSV upload replaces
    the typed list, and the list is written back into the textarea so a re-shown form has it."""
    kind = form.kind.data
    if kind not in TARGETED:
        return None
    if _uploaded(form):
        found = targets_.read_csv(form.targets_file.data.stream, kind)
        form.targets.data = "\n".join(targets_.line_of(t) for t in found)
    else:
        found = targets_.parse_lines(form.targets.data or "", kind)
    if not found:
        raise targets_.TargetError(f"A {kind} needs at least one target (a placeholder will do).")
    return found


def _save_action(form: ActionForm, action: Action | None) -> tuple[Action, bool] | None:
    """Apply a validated form: the action and whether its targets changed; None (with the
    problem on the form, at its field) when it cannot be saved."""
    try:
        wanted = _wanted_targets(form)
        letter = form.kind.data == "letter"
        saved = catalog.save(
            action, title=form.title.data, slug=form.slug.data, summary=form.summary.data,
            call_to_action=form.call_to_action.data, kind=form.kind.data, url=form.url.data,
            is_open=form.is_open.data, body=form.body.data, target=form.target.data,
            pledge_text=form.pledge_text.data, goal=form.goal.data,
            allow_comments=form.own_paragraph.data if letter else form.allow_comments.data,
            requires_confirmation=form.requires_confirmation.data,
            letter_subject=form.letter_subject.data, letter_text=form.letter_text.data,
            call_script=form.call_script.data,
        )
        saved.topics = preferences.clean_topics(form.topics.data)
        catalog.save_translation(saved, "es", **{f: form[f"{f}_es"].data for f in catalog.TRANSLATED_FIELDS})
        db.session.flush()  # a new action's id, for its targets
        changed = wanted is not None and targets_.set_targets(saved, wanted)
        if changed and saved.kind == "letter":  # letters held for placeholders go to the real ones
            released = letters.release_placeholders(saved.id)
            if released:
                flash(f"{plural(released, 'letter')} queued for the new targets.", "info")
        return saved, changed
    except targets_.TargetError as exc:
        where = form.targets_file if _uploaded(form) else form.targets
        message = str(exc)
        where.errors.append(message[:1].upper() + message[1:])
        return None
    except catalog.ActionError as exc:
        getattr(form, exc.field).errors.append(str(exc))
        return None


def changed_fields(form) -> list[str]:
    """The names of a form's fields whose value differs from the object it was filled from."""
    def same(a: object, b: object) -> bool:
        return a == b or (a in ("", None) and b in ("", None))  # a blank field, an empty column

    return sorted(name for name, field in form._fields.items()
                  if name not in ("csrf_token", "submit", "targets", "targets_file")
                  and not same(field.data, field.object_data))


def embed_snippet(slug: str | None) -> str:
    """The one tag a webmaster pastes: the signup form, or one action's signing form."""
    script = f"{current_app.config['BASE_URL']}/embed.js"
    what = 'data-form="signup"' if slug is None else f'data-action="{slug}"'
    return f'<script src="{script}" {what} async></script>'


def _embed_context() -> dict:
    return {"snippet": embed_snippet, "embed_origins": current_app.config["EMBED_ORIGINS"]}


def _action_page(form: ActionForm, action: Action | None):
    if request.method == "POST" and form.validate_on_submit():
        result = _save_action(form, action)
        if result is not None:
            saved, targets_changed = result
            current = targets_.targets_of(saved.id)
            about: dict[str, object] = {"kind": saved.kind}
            if saved.kind in TARGETED:
                about |= {"targets": len(current), "placeholders": sum(t.placeholder for t in current)}
            if action is None:
                record("action.create", f"action {saved.id}", slug=saved.slug, **about)
            else:
                changed = sorted([*changed_fields(form), *(["targets"] if targets_changed else [])])
                record("action.edit", f"action {saved.id}", slug=saved.slug, fields=changed,
                       languages=sorted({"es" if f.endswith("_es") else i18n.default_language()
                                         for f in changed if f != "targets"}), **about)
            db.session.commit()
            flash(f"Saved “{saved.title}”.", "success")
            return redirect(url_for("staff.actions"), code=303)
    status = 400 if request.method == "POST" else 200
    current = targets_.targets_of(action.id) if action is not None else []
    return render_template("staff/action_form.html", form=form, action=action, current_targets=current,
                           **_embed_context()), status


def _with_placeholders() -> set[int]:
    """The actions with a placeholder target still to replace (the list flags them)."""
    return set(db.session.scalars(
        sa.select(ActionTarget.action_id).join(Action, Action.id == ActionTarget.action_id)
        .where(ActionTarget.placeholder.is_(True), Action.kind.in_(TARGETED))))


def actions():
    items = catalog.ordered_actions()
    return render_template("staff/actions.html", actions=items,
                           untranslated={a.id for a in items if "es" in catalog.missing_languages(a)},
                           counts=signing.counts_by_action(), placeholders=_with_placeholders(),
                           **_embed_context())


def action_new():
    return _action_page(ActionForm(), None)


def action_edit(action_id: int):
    action = db.get_or_404(Action, action_id)
    es = (action.translations or {}).get("es") or {}
    spanish = {f"{f}_es": es.get(f, "") for f in catalog.TRANSLATED_FIELDS}
    lines = "\n".join(targets_.line_of(t) for t in targets_.targets_of(action.id))
    return _action_page(ActionForm(obj=action, targets=lines,
                                   own_paragraph=action.allow_comments and action.kind == "letter",
                                   **spanish), action)


def action_toggle(action_id: int):
    action = db.get_or_404(Action, action_id)
    action.is_open = not action.is_open
    record("action.open" if action.is_open else "action.close", f"action {action.id}", slug=action.slug)
    db.session.commit()
    flash(f"“{action.title}” is now {'open' if action.is_open else 'closed'}.", "success")
    return redirect(url_for("staff.actions"), code=303)


def action_move(action_id: int):
    """Swap with the neighbour, then renumber, so equal or gappy positions still move."""
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400)
    if not catalog.move(action_id, direction):
        abort(404)
    record("action.move", f"action {action_id}", direction=direction)
    db.session.commit()
    return redirect(url_for("staff.actions", _anchor=f"action-{action_id}"), code=303)


def _signatures_page(action: Action, import_form: SignerImportForm, report=None, status: int = 200):
    q = " ".join(request.args.get("q", "").split())[:254]
    page = request.args.get("page", 1, type=int)
    pagination = db.paginate(records.search(action.id, q), page=page, per_page=PER_PAGE, error_out=False)
    days = records.by_day(action.id)[-DAYS_SHOWN:]
    count = signing.count(action.id)
    return render_template(
        "staff/action_signatures.html", action=action, pagination=pagination, q=q,
        days=days, day_max=max((n for _, n in days), default=0), sources=records.by_source(action.id),
        source_codes=records.by_source_code(action.id), networks=shares.by_network(action.id),
        count=count, goal=signing.goal_for(action, count), import_form=import_form, report=report,
        letter_figures=letters.figures(action.id) if action.kind == "letter" else None,
        call_figures=calls.figures(action.id) if action.kind == "call" else None, phone_shown=phone_shown,
        targets=targets_.targets_of(action.id),
    ), status


def action_signatures(action_id: int):
    return _signatures_page(db.get_or_404(Action, action_id), SignerImportForm())


@records_on_get  # the export goes on the audit trail
def action_signatures_csv(action_id: int):
    action = db.get_or_404(Action, action_id)
    name = f"signatures-{action.slug[:60]}-{datetime.now(UTC):%Y-%m-%d}.csv"
    record_export("action.signatures_export", f"action {action.id}", slug=action.slug)
    return Response(stream_with_context(records.export_csv(action.id)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@records_on_get  # the export goes on the audit trail
def action_calls_csv(action_id: int):
    """A call campaign's reports, one row per call: for following up with each office."""
    action = db.get_or_404(Action, action_id)
    name = f"calls-{action.slug[:60]}-{datetime.now(UTC):%Y-%m-%d}.csv"
    record_export("action.calls_export", f"action {action.id}", slug=action.slug)
    return Response(stream_with_context(calls.export_csv(action.id)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@allows_large_upload  # the same size limit as the subscriber import: one reader, one set of limits
def action_signatures_import(action_id: int):
    action = db.get_or_404(Action, action_id)
    form = SignerImportForm()
    if not form.validate_on_submit():
        return _signatures_page(action, form, status=400)
    try:
        report = records.import_signers(action, form.file.data.stream)
    except records.SignerFileError as exc:
        form.file.errors = [f"{exc}; nothing was imported."]
        return _signatures_page(action, form, status=400)
    record("action.signatures_import", f"action {action.id}", slug=action.slug, summary=report.summary())
    db.session.commit()
    flash(f"Imported signers into “{action.title}”: {report.summary()}.", "success")
    return _signatures_page(action, SignerImportForm(), report=report)

