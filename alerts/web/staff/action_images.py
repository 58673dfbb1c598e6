"""Staff pages for an action's share image: upload one (with its alt text), see it, remove it."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from ... import actions as catalog
from ... import i18n
from ...actions import images
from ...extensions import db
from ...models import Action
from ..security import allows_large_upload
from .common import record
from .forms import ActionImageForm


def _page(action: Action, form: ActionImageForm, status: int = 200):
    row = images.stored_ref(action.id)
    org = current_app.config["ORG_NAME"]
    cards = []  # the default card of each language's title: shown while nothing is uploaded
    for code in i18n.languages():
        if code != i18n.default_language() and not catalog.has_version(action, code):
            continue
        title = catalog.text_of(action, code).title
        cards.append((code, title, images.card_digest(action.slug, title, org)))
    return render_template("staff/action_image.html", action=action, form=form, image=row, cards=cards,
                           names=i18n.STAFF_NAMES, ext=images.EXTENSIONS,
                           max_mb=images.MAX_BYTES // 1048576), status


@allows_large_upload  # a photo is larger than MAX_CONTENT_LENGTH; images.MAX_BYTES is its own limit
def action_image(action_id: int):
    action = db.get_or_404(Action, action_id)
    form = ActionImageForm()
    if request.method == "GET":
        return _page(action, form)
    if not form.validate_on_submit():
        return _page(action, form, 400)
    data = images.read_upload(form.file.data.stream)
    try:
        row = images.upload(action, data, form.alt.data)
    except images.ImageError as exc:
        db.session.rollback()
        problem = getattr(form, exc.field)
        problem.errors = [*problem.errors, f"{exc} The image was not changed."]
        return _page(action, form, 400)
    db.session.flush()
    record("action.image_upload", f"action {action.id}", slug=action.slug, digest=row.digest,
           content_type=row.content_type, bytes=len(row.data))
    db.session.commit()
    flash(f"The share image of “{action.title}” is saved.", "success")
    return redirect(url_for("staff.action_image", action_id=action.id), code=303)


def action_image_remove(action_id: int):
    action = db.get_or_404(Action, action_id)
    if images.remove(action):
        record("action.image_remove", f"action {action.id}", slug=action.slug)
        db.session.commit()
        flash(f"The share image of “{action.title}” is removed: links show its default card.", "success")
    else:
        flash("There was no image to remove.", "info")
    return redirect(url_for("staff.action_image", action_id=action.id), code=303)

