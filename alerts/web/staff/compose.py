"""Staff pages for composing alerts: the list, a draft, its audience (and the live count), its A/B test."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import flash, jsonify, redirect, render_template, request, url_for
from wtforms import SelectChoice

from ... import audiences, i18n
from ...actions import ordered_actions
from ...actions.catalog import has_version
from ...blasts import abtest, compose, content, personal, progress, state
from ...blasts.compose import ComposeError, save_alert
from ...extensions import db
from ...models import AbTest, Action, Alert, AlertState, Signature, Subscriber
from ...subscribers import fields
from ...subscribers.preferences import TOPICS
from .common import PER_PAGE, current_staff, page_number, record
from .forms import AlertForm

# Rules the compose page does not show but keeps (a reminder's "those sent alert N").
KEPT_RULES = ("received_alert", "except_clickers_of")
FIELD_PREFIX = "field."  # the compose form's custom-field rules: field.<key>=<value>, repeated


def audience_fields(alert: Alert | None) -> list[tuple[fields.FieldDef, list[str]]]:
    """The custom fields an audience can pick by value, each with the values chosen now
    (what the form sent, or the draft's stored rules)."""
    if request.method == "POST":
        chosen = {f.key: request.form.getlist(FIELD_PREFIX + f.key) for f in fields.custom()}
    else:
        chosen = ((alert.audience or {}) if alert else {}).get("field_values") or {}
    return [(f, list(chosen.get(f.key, []))) for f in fields.custom()
            if f.kind in audiences.FIELD_KINDS]


def _alert_form(alert: Alert | None) -> AlertForm:
    """Open actions to choose from (plus any closed one the draft still names)."""
    chosen = {a.slug for a in alert.actions} if alert else None
    choices = []
    for action in ordered_actions():
        if action.is_open:
            choices.append(SelectChoice(action.slug, action.title))
        elif chosen and action.slug in chosen:
            choices.append(SelectChoice(action.slug, f"{action.title} (closed: will not be included)"))
    if alert is None:
        initial: dict[str, Any] = {"actions": [choice.value for choice in choices]}
    else:
        initial = {
            "subject": alert.subject,
            "preheader": alert.preheader,
            "intro_md": alert.intro_md,
            "actions": [a.slug for a in alert.actions],
        }
        es = (alert.translations or {}).get("es") or {}
        initial.update(subject_es=es.get("subject", ""), preheader_es=es.get("preheader", ""),
                       intro_md_es=es.get("intro_md", ""))
    rules = (alert.audience or {}) if alert else {}
    initial.update({
        "only_signers_of": rules.get("only_signers_of", []),
        "except_signers_of": rules.get("except_signers_of", []),
        "topics": rules.get("topics", []),
        "joined_after": rules.get("joined_after", ""),
        "joined_before": rules.get("joined_before", ""),
        "source": rules.get("source", ""),
        "engagement": ("" if not rules.get("engaged_days") else
                       "engaged" if rules.get("engaged", True) else "not-engaged"),
        "engaged_days": str(rules.get("engaged_days") or 90),
        "include_acted": rules.get("include_acted", False),
        "only_writers": rules.get("only_writers", False),
        "only_callers": rules.get("only_callers", False),
        "postal_prefixes": ", ".join(rules.get("postal_prefixes", [])),
        "has_first_name": {True: "yes", False: "no", None: ""}[rules.get("has_first_name")],
        "languages": rules.get("languages", []),
    })
    test = db.session.get(AbTest, alert.id) if alert else None
    if test is not None:
        variants = test.variants
        initial.update(subject_b=variants[1]["subject"], from_name_a=variants[0].get("from_name") or "",
                       from_name_b=variants[1].get("from_name") or "", ab_sample=str(test.sample_pct),
                       ab_wait=str(test.wait_minutes), ab_metric=test.metric)
    form = AlertForm(data=initial)
    form.actions.choices = choices
    every = [SelectChoice(a.slug, a.title) for a in ordered_actions()]
    form.only_signers_of.choices = every
    form.except_signers_of.choices = every
    form.topics.choices = [SelectChoice(slug, label) for slug, label in TOPICS]
    form.languages.choices = [SelectChoice(code, i18n.STAFF_NAMES.get(code, code))
                              for code in i18n.languages()]
    sources = db.session.scalars(sa.select(Subscriber.source).where(Subscriber.source.is_not(None))
                                 .distinct().order_by(Subscriber.source).limit(200))
    # The source codes signatures came with: someone who signed through a partner's page can
    # be chosen by that code even when they joined the list some other way.
    codes = db.session.scalars(sa.select(Signature.source_code).where(Signature.source_code.is_not(None))
                               .distinct().order_by(Signature.source_code).limit(200))
    form.source.choices = [SelectChoice("", "Any source"),
                           *(SelectChoice(x, x) for x in sorted({x for x in (*sources, *codes) if x}))]
    if rules.get("source") and rules["source"] not in [c.value for c in form.source.choices]:
        form.source.choices.append(SelectChoice(rules["source"], rules["source"]))
    form.saved_audience.choices = [SelectChoice("", "—"), *(
        SelectChoice(str(a.id), a.name, render_kw={"data-rules": json.dumps(a.rules)})
        for a in audiences.saved_audiences())]
    return form


def _rules_from(values, alert: Alert | None) -> dict:
    """The compose form's audience fields (or the live count's query) as rules."""
    engagement = values.get("engagement") or ""
    rules = {
        "only_signers_of": values.getlist("only_signers_of"),
        "except_signers_of": values.getlist("except_signers_of"),
        "topics": values.getlist("topics"),
        "joined_after": values.get("joined_after"),
        "joined_before": values.get("joined_before"),
        "source": values.get("source"),
        "engaged_days": values.get("engaged_days") if engagement else None,
        "engaged": engagement != "not-engaged",
        "include_acted": values.get("include_acted") in ("y", "on", "true", "1"),
        "only_writers": values.get("only_writers") in ("y", "on", "true", "1"),
        "only_callers": values.get("only_callers") in ("y", "on", "true", "1"),
        "postal_prefixes": values.get("postal_prefixes"),
        "has_first_name": values.get("has_first_name"),
        "languages": values.getlist("languages"),
        "field_values": {key.removeprefix(FIELD_PREFIX): values.getlist(key)
                         for key in values if key.startswith(FIELD_PREFIX)},
    }
    for key in KEPT_RULES:
        kept = (alert.audience or {}).get(key) if alert is not None else None
        if kept is not None:
            rules[key] = kept
    return rules


def _linked(slugs: list[str]) -> list[int]:
    if not slugs:
        return []
    return list(db.session.scalars(sa.select(Action.id).where(Action.slug.in_(slugs), Action.is_open)))


def _number(value: str | None, name: str) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        raise abtest.AbTestError(f"{name} must be a whole number") from None


def _save_ab(alert: Alert, form: AlertForm) -> None:
    if not (form.subject_b.data or "").strip():
        abtest.remove(alert.id)
        return
    abtest.configure(alert, subjects=[alert.subject, form.subject_b.data],
                     from_names=[form.from_name_a.data, form.from_name_b.data],
                     sample_pct=_number(form.ab_sample.data, "the A/B sample"),
                     wait_minutes=_number(form.ab_wait.data, "the A/B wait"),
                     metric=form.ab_metric.data or "clicks")


def _compose_page(alert: Alert | None):
    if alert is not None and alert.state != AlertState.DRAFT:
        flash(f"This alert is {alert.state}; only a draft can be edited.", "error")
        return redirect(url_for("staff.alert", alert_id=alert.id), code=303)
    form = _alert_form(alert)
    error = None
    if request.method == "POST" and form.validate_on_submit():
        before = dict(alert.translations or {}) if alert is not None else {}
        try:
            saved = save_alert(
                alert,
                subject=form.subject.data,
                intro_md=form.intro_md.data or "",
                preheader=form.preheader.data or "",
                action_slugs=form.actions.data,
                created_by=current_staff().email,
                audience=_rules_from(request.form, alert),
                translations={"es": {"subject": form.subject_es.data, "preheader": form.preheader_es.data,
                                     "intro_md": form.intro_md_es.data}},
            )
            _save_ab(saved, form)
            if (form.save_as.data or "").strip():
                audiences.save_audience(form.save_as.data, audiences.parse(saved.audience),
                                        current_staff().email)
        except (ComposeError, abtest.AbTestError, audiences.AudienceError) as exc:
            db.session.rollback()
            at = getattr(exc, "field", None)
            if at is not None and at in form:  # said next to the field it is about
                form[at].errors.append(str(exc))
            else:
                error = str(exc)
        else:
            db.session.flush()  # a new draft's id, for the record
            record("alert.create" if alert is None else "alert.edit", f"alert {saved.id}",
                   subject=saved.subject, actions=list(form.actions.data or []),
                   languages=[i18n.default_language(), *sorted(saved.translations or {})],
                   translated_changed=sorted(code for code in i18n.other_languages()
                                             if before.get(code) != (saved.translations or {}).get(code)),
                   audience=saved.audience, saved_audience=(form.save_as.data or "").strip() or None)
            db.session.commit()
            flash("Draft saved. Check the preview, send yourself a test, then send it.", "success")
            return redirect(url_for("staff.alert", alert_id=saved.id), code=303)
    status = 400 if request.method == "POST" else 200
    chosen = alert.actions if alert else [a for a in ordered_actions() if a.is_open]
    tagged = {t for a in chosen for t in (a.topics or [])}
    action_topics = [label for slug, label in TOPICS if slug in tagged]
    picked = [a for a in ordered_actions() if a.is_open and a.slug in (form.actions.data or [])]
    untranslated = [a.title for a in picked if a.is_open and not has_version(a, "es")]
    return render_template("staff/compose.html", form=form, alert=alert, error=error,
                           untranslated_actions=untranslated,
                           audience_fields=audience_fields(alert),
                           audience=audience_of(alert, count=False), action_topics=action_topics,
                           intro_names=compose.intro_names(form.intro_md.data, picked),
                           token_keys=personal.known_keys()), status


def audience_of(alert: Alert | None, *, count: bool = True) -> dict:
    """The size and the words for a draft's stored audience (or an error naming the bad rule).

    Without `count` the size is None: counting a million subscribers against the rules takes
    seconds, so the alert and compose pages fetch it afterwards (recipients.json, audience.json)
    and only the send confirmation, where staff decide, waits for it.
    """
    try:
        rules = audiences.parse(alert.audience if alert else None)
    except audiences.AudienceError as exc:
        return {"error": str(exc), "size": 0}
    linked = audiences.linked_action_ids(alert) if alert else _linked(
        [a.slug for a in ordered_actions() if a.is_open])
    description = audiences.describe(rules, linked)
    size = audiences.size(rules, linked) if count else None
    return {"size": size, "description": description, "rules": rules.to_json(),
            "words": audiences.sentence(size, description) if size is not None else None}


def counted(alert: Alert) -> dict:
    """A draft's audience with its size as a blast started now would have it (counted once)."""
    audience = audience_of(alert, count=False)
    if not audience.get("error"):
        size = state.recipient_count(alert)
        audience.update(size=size, words=audiences.sentence(size, audience["description"]))
    return audience


def alert_audience():
    """The live count on the compose page: the size of the audience the form describes now."""
    alert = db.session.get(Alert, request.args.get("alert_id", type=int) or 0)
    try:
        rules = audiences.parse(_rules_from(request.args, alert))
    except audiences.AudienceError as exc:
        return jsonify(error=str(exc)), 400
    linked = _linked(request.args.getlist("actions"))
    size = audiences.size(rules, linked)
    description = audiences.describe(rules, linked)
    return jsonify(size=size, rules=rules.to_json(), description=description,
                   words=audiences.sentence(size, description))


def alerts():
    page = page_number()
    query = (sa.select(Alert).where(Alert.state != AlertState.JOURNEY)  # steps are on their journey's page
             .order_by(Alert.created_at.desc(), Alert.id.desc()))
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    return render_template(
        "staff/alerts.html", pagination=pagination,
        counts=progress.counts_by_alert([a.id for a in pagination.items]),
        untranslated={a.id for a in pagination.items if "es" in content.missing_languages(a)},
    )


def alert_new():
    return _compose_page(None)


def alert_edit(alert_id: int):
    return _compose_page(db.get_or_404(Alert, alert_id))
