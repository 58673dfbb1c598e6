"""`alerts alert …`: compose, send and follow action alerts."""

from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app

from .. import audiences, audit, i18n
from ..blasts import abtest, approval, compose, control, progress, scheduling, state
from ..blasts.compose import ComposeError, save_alert
from ..blasts.state import BlastError
from ..extensions import db
from ..mail import dkim
from ..models import Alert, AlertState
from ..reports.alert_report import report as alert_report
from ..words import plural
from .common import ID, cli_actor, record
from .database import Group
from .progress import Progress


@click.group("alert", cls=Group)  # its commands run inside the app context
def alert_group() -> None:
    """Compose, send and follow action alerts."""


@alert_group.command("create")
@click.option("--subject", required=True,
              help="May greet by name: {first_name|friend} (any subscriber field, with a fallback).")
@click.option("--intro", required=True, help="The opening text, in Markdown (may greet by name too).")
@click.option("--preheader", default="", help="The preview line inboxes show.")
@click.option("--subject-es", default="", help="The Spanish version's subject (Spanish readers get it).")
@click.option("--intro-es", default="", help="The Spanish version's intro, in Markdown.")
@click.option("--preheader-es", default="", help="The Spanish version's preview line.")
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="Only those who read this language (repeatable; en includes those who never chose).")
@click.option("--action", "actions", multiple=True, help="Action slug (repeatable); default: all open.")
@click.option("--only-signers-of", multiple=True, metavar="SLUG",
              help="Only those who signed (any of) these.")
@click.option("--except-signers-of", multiple=True, metavar="SLUG", help="Leave out those who signed these.")
@click.option("--only-writers", is_flag=True, help="Only those who wrote a letter (signed any letter).")
@click.option("--only-callers", is_flag=True, help="Only those who made a call (and logged how it went).")
@click.option("--topic", "topics", multiple=True, metavar="T",
              help="Only those who chose this topic (or chose none); repeatable.")
@click.option("--joined-after", metavar="DATE", help="Joined on or after this date (YYYY-MM-DD).")
@click.option("--joined-before", metavar="DATE", help="Joined before this date.")
@click.option("--source", help="Signup source or ?source= code of a signup or signature, exactly (any case).")
@click.option("--engaged-days", type=int, metavar="N", help="Clicked or signed within N days.")
@click.option("--not-engaged", is_flag=True, help="With --engaged-days: those who did neither.")
@click.option("--include-acted", is_flag=True,
              help="Also send to those who already signed every action in the alert.")
@click.option("--audience", "saved_name", metavar="NAME", help="Start from a saved audience's rules.")
@click.option("--subject-b", "subjects_b", multiple=True, metavar="S",
              help="A/B test: another subject (repeatable for more variants).")
@click.option("--from-name", "from_names", multiple=True, metavar="NAME",
              help="A/B test: a From name per variant, in order (the first is the main subject's).")
@click.option("--ab-sample", type=int, metavar="PCT", help="A/B test: percent of the audience per variant.")
@click.option("--ab-wait", type=int, metavar="MINUTES", help="A/B test: minutes before the winner is picked.")
@click.option("--ab-metric", type=click.Choice(["clicks", "signatures"]), default="clicks",
              show_default=True, help="A/B test: what picks the winner.")
@click.option("--send-at", default=None, metavar="ISO8601",
              help="Schedule it: beat starts the blast at this time (with its offset, e.g. +01:00 or Z).")
def alert_create(subject: str, intro: str, preheader: str, actions: tuple[str, ...],
                 only_signers_of: tuple[str, ...], except_signers_of: tuple[str, ...],
                 topics: tuple[str, ...], joined_after: str | None, joined_before: str | None,
                 source: str | None, engaged_days: int | None, not_engaged: bool, include_acted: bool,
                 saved_name: str | None, subjects_b: tuple[str, ...], from_names: tuple[str, ...],
                 ab_sample: int | None, ab_wait: int | None, ab_metric: str, send_at: str | None,
                 subject_es: str = "", intro_es: str = "", preheader_es: str = "",
                 languages: tuple[str, ...] = (), only_writers: bool = False,
                 only_callers: bool = False) -> None:
    """Create a draft alert and print its id."""
    rules: dict = {}
    if saved_name:
        saved = {a.name: a for a in audiences.saved_audiences()}
        if saved_name not in saved:
            raise click.UsageError(f"no saved audience named {saved_name!r}")
        rules.update(saved[saved_name].rules)
    given = {
        "only_signers_of": list(only_signers_of), "except_signers_of": list(except_signers_of),
        "topics": list(topics), "joined_after": joined_after, "joined_before": joined_before,
        "source": source, "engaged_days": engaged_days, "languages": list(languages),
    }
    rules.update({k: v for k, v in given.items() if v})
    if not_engaged:
        if not engaged_days:
            raise click.UsageError("--not-engaged needs --engaged-days N")
        rules["engaged"] = False
    if include_acted:
        rules["include_acted"] = True
    if only_writers:
        rules["only_writers"] = True
    if only_callers:
        rules["only_callers"] = True
    try:
        when = scheduling.parse_time(send_at) if send_at else None
        spanish: dict[str, str | None] = {"subject": subject_es, "intro_md": intro_es,
                                          "preheader": preheader_es}
        alert = save_alert(None, subject=subject, intro_md=intro, preheader=preheader,
                           action_slugs=list(actions), created_by="cli", audience=rules,
                           translations={"es": spanish} if any(spanish.values()) else None)
        if subjects_b or ab_sample is not None or ab_wait is not None:
            abtest.configure(alert, subjects=[subject, *subjects_b], from_names=list(from_names),
                             sample_pct=ab_sample, wait_minutes=ab_wait, metric=ab_metric)
        if when:
            db.session.flush()
            scheduling.schedule(alert.id, when)
    except (ComposeError, abtest.AbTestError, BlastError) as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.flush()
    record("alert.create", f"alert {alert.id}", subject=alert.subject,
           scheduled_for=when.isoformat() if when else None,
           languages=[i18n.default_language(), *sorted(alert.translations or {})])
    db.session.commit()
    click.echo(alert.id)


@alert_group.command("audience")
@click.argument("alert_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
def alert_audience(alert_id: int, as_json: bool) -> None:
    """How many a blast started now would go to, and the rules that say who."""
    from ..models import Alert

    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    try:
        rules = audiences.parse(alert.audience)
    except audiences.AudienceError as exc:
        raise click.ClickException(f"alert {alert_id}'s audience: {exc}") from exc
    linked = audiences.linked_action_ids(alert)
    out = {"id": alert.id, "size": audiences.size(rules, linked), "rules": rules.to_json(),
           "description": audiences.describe(rules, linked)}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"{out['size']} people: {out['description']}")


@alert_group.command("remind")
@click.argument("alert_id", type=ID)
@click.option("--subject", help="Its own subject (default: “Reminder: ” and the alert's).")
@click.option("--minus-clickers", is_flag=True, help="Also leave out those who clicked.")
def alert_remind(alert_id: int, subject: str | None, minus_clickers: bool) -> None:
    """A new draft to the alert's recipients minus those who signed; prints its id."""
    try:
        draft = compose.reminder(alert_id, minus_clickers=minus_clickers, created_by="cli", subject=subject)
    except ComposeError as exc:
        raise click.ClickException(str(exc)) from exc
    record("alert.remind", f"alert {draft.id}", parent=alert_id, minus_clickers=minus_clickers)
    db.session.commit()
    click.echo(draft.id)


@alert_group.command("send")
@click.argument("alert_id", type=ID)
@click.option("--wait", is_flag=True, help="Show a progress bar until the blast ends.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (scripts are never asked).")
def alert_send(alert_id: int, wait: bool, yes: bool) -> None:
    """Start the blast to every confirmed subscriber.

    On a terminal it asks first, naming the subject and the count; `--yes` skips that.
    With no terminal on standard input (a script, cron, CI) it never asks.
    """
    dkim.signer_for(current_app)  # a DKIM setting that cannot sign is refused before anything starts
    if not yes and sys.stdin.isatty():
        _confirm_send(alert_id)
    try:
        total = control.launch(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    record("alert.send", f"alert {alert_id}", recipients=total)
    db.session.commit()
    if total is None:  # a large list: counted after the commit, while the first messages go
        total = state.expected_recipients(db.session.get_one(Alert, alert_id))
        db.session.commit()
    click.echo(f"Alert {alert_id}: sending to {plural(total, 'subscriber')}.", err=True)
    if wait:
        _wait(alert_id, total)


def _confirm_send(alert_id: int) -> None:
    """Name what is about to go, and to how many, before a person starts a blast."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    if alert.state != AlertState.DRAFT:
        raise click.ClickException(f"alert {alert_id} is {alert.state}; only a draft can be sent")
    count = state.recipient_count(alert)  # its audience, as the staff page counts it
    people = f"{count:,} confirmed subscriber{'' if count == 1 else 's'}"
    if not click.confirm(f"Send alert {alert_id} \u201c{alert.subject}\u201d to {people} now?",
                         default=False, err=True):
        raise click.ClickException("not sent")


def _wait(alert_id: int, total: int) -> None:
    """Follow the blast until it is no longer sending, then say how it ended."""

    def poll() -> dict:
        db.session.rollback()  # see the workers' commits
        return progress.status(alert_id)

    status = poll()
    with Progress(total, f"Alert {alert_id}") as bar:
        while status["state"] == "sending":
            time.sleep(0.5)
            before, status = status["done"], poll()
            bar.update(status["done"] - before)
        bar.update(status["done"] - bar.done)
    click.echo(
        f"Alert {alert_id} {status['state']}: {status['sent']} sent, {status['failed']} failed, "
        f"{status['skipped']} skipped, {status['queued'] + status['sending']} not sent.",
        err=True,
    )
    if status["state"] != "sent":
        sys.exit(1)


@alert_group.command("approve")
@click.argument("alert_id", type=ID)
@click.option("--by", "by", required=True, metavar="EMAIL",
              help="The staff member who approves: holds send permission and did not draft it.")
def alert_approve(alert_id: int, by: str) -> None:
    """Record a second staff member's approval of a draft as it is now (a large blast needs one)."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    count = state.recipient_count(alert)
    parts = approval.approve(alert_id, by, approval.digest(alert), count)
    audit.record(cli_actor(), approval.APPROVE, approval.target(alert_id), by=alert.approved_by,
                 digest=alert.approved_digest, recipients=count, parts=parts)
    db.session.commit()
    click.echo(f"Alert {alert_id} approved by {alert.approved_by} for {plural(count, 'recipient')}; "
               "a change to it voids this approval.")


@alert_group.command("status")
@click.argument("alert_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
def alert_status(alert_id: int, as_json: bool) -> None:
    """Show an alert's state and delivery counts."""
    try:
        status = progress.status(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:  # the same figures as the API's status (no count: it takes seconds at a million)
        click.echo(json.dumps(status))
        return
    for label, value in _status_lines(status):
        click.echo(f"{label:>10}  {value}")
    standing = _approval(db.session.get_one(Alert, alert_id))
    if standing is not None:
        click.echo(f"{'Approval':>10}  {standing.words}")


def _approval(alert: Alert) -> approval.Standing | None:
    """A draft's approval, counted as a start now would count it (None once it is no draft)."""
    if alert.state != AlertState.DRAFT:
        return None
    try:
        count: int | None = state.recipient_count(alert)
    except audiences.AudienceError:
        count = None
    return approval.standing(alert, count)


def _status_lines(s: dict) -> list[tuple[str, str]]:
    """The status as a person reads it: words, thousands separators, nothing printed as None."""
    lines = [("State", s["state"]), ("Total", plural(s["total"], "recipient"))]
    waiting = s["queued"] + s["sending"]
    lines += [("Waiting", f"{waiting:,}"), ("Sent", f"{s['sent']:,}"), ("Failed", f"{s['failed']:,}"),
              ("Skipped", f"{s['skipped']:,}"), ("Done", f"{s['percent']:g}%")]
    if s["state"] == "sending" and s.get("stalled_since"):
        lines.append(("Rate", "none: " + s["stalled_words"]))
        lines.append(("Time left", "unknown (" + s["stalled_words"] + ")"))
    elif s["state"] == "sending":
        lines.append(("Rate", f"{s['rate_per_second']:g} messages/s"))
        left = s["seconds_left"]
        lines.append(("Time left", "unknown yet" if left is None else progress.duration_words(left)))
    if s.get("started_at"):
        lines.append(("Started", s["started_at"].replace("T", " ")[:19] + " UTC"))
    if s.get("finished_at"):
        lines.append(("Finished", s["finished_at"].replace("T", " ")[:19] + " UTC"))
    if s.get("scheduled_for"):
        lines.append(("Scheduled", s["scheduled_for"].replace("T", " ")[:19] + " UTC"))
    if s.get("pace"):
        lines.append(("Pace", s["pace"]["why"]))
        for relay in s["pace"]["relays"]:
            limit = f"{relay['rate_limit']}/s" if relay.get("rate_limit") else "no limit"
            connections = plural(relay.get("connections", 0), "connection")
            lines.append(("", f"{relay['relay']}: {relay['state']}, {limit}, {connections}"))
    return lines


@alert_group.command("schedule")
@click.argument("alert_id", type=ID)
@click.option("--at", "at", default=None, metavar="ISO8601", help="When to start the blast.")
@click.option("--cancel", is_flag=True, help="Take the alert off the schedule (it stays a draft).")
def alert_schedule(alert_id: int, at: str | None, cancel: bool) -> None:
    """Schedule a draft to be sent at a time, reschedule it, or unschedule it."""
    if bool(at) == cancel:
        raise click.UsageError("give either --at ISO8601 or --cancel")
    try:
        if cancel:
            scheduling.unschedule(alert_id)
            record("alert.unschedule", f"alert {alert_id}")
        else:
            assert at is not None  # one of the two, checked above
            when = scheduling.parse_time(at)
            scheduling.schedule(alert_id, when)
            record("alert.schedule", f"alert {alert_id}", at=when.isoformat())
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    status = progress.status(alert_id)
    if cancel:
        click.echo(f"Alert {alert_id} unscheduled; it is a draft.")
    else:
        click.echo(f"Alert {alert_id} scheduled for {status['scheduled_for']}.")


def _control(alert_id: int, operation: str) -> None:
    run, done = control.OPERATIONS[operation]
    try:
        run(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    record(f"alert.{operation}", f"alert {alert_id}")
    db.session.commit()
    click.echo(f"Alert {alert_id} {done}.")


@alert_group.command("pause")
@click.argument("alert_id", type=ID)
def alert_pause(alert_id: int) -> None:
    """Pause a blast; batches in flight stop within a few messages."""
    _control(alert_id, "pause")


@alert_group.command("resume")
@click.argument("alert_id", type=ID)
def alert_resume(alert_id: int) -> None:
    """Resume a paused blast where it stopped."""
    _control(alert_id, "resume")


@alert_group.command("cancel")
@click.argument("alert_id", type=ID)
def alert_cancel(alert_id: int) -> None:
    """Cancel a blast; whoever has not been sent to yet is skipped."""
    _control(alert_id, "cancel")


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


@alert_group.command("report")
@click.argument("alert_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
def alert_report_command(alert_id: int, as_json: bool) -> None:
    """Did the alert move people: delivery, clicks (people and machines), signatures per action."""
    data = alert_report(alert_id)
    if data is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    if as_json:
        click.echo(json.dumps(data))
        return
    clicks = data["clicks"]
    rows = [
        ("Delivered", data["delivered"]), ("Failed", data["failed"]), ("Bounced", data["bounced"]),
        ("Complaints", data["complaints"]), ("Unsubscribed", data["unsubscribed"]),
        ("People who clicked", f"{clicks['unique']} ({_percent(data['click_rate'])} of delivered)"),
        ("Clicks by people", clicks["total"]), ("Machine clicks (apart)", clicks["machine"]),
        ("Signatures", f"{data['signatures']} ({data['signatures_after_click']} after a click)"),
        ("Click-to-sign", f"{_percent(data['click_to_sign_rate'])} ({data['people_signed_after_click']} of "
                          f"{clicks['unique']} people who clicked then signed)"),
    ]
    click.echo(f"Alert {data['id']}: {data['subject']} ({data['state']})")
    for label, value in rows:
        click.echo(f"{label:>24}: {value}")
    click.echo("\nBy action: people who clicked, signatures, click-to-sign")
    for item in data["by_action"]:
        done = {"letter": f", {item['letters_sent']} letters sent",
                "call": f", {item['calls_made']} calls made"}.get(item["kind"], "")
        click.echo(f"  {item['slug']} ({item['kind']}): {item['unique_clicks']}, {item['signatures']}, "
                   f"{_percent(item['click_to_sign_rate'])}{done}")
    for key in ("first_hour", "first_day", "first_week"):
        w = data[key]
        click.echo(f"{key.replace('_', ' ').capitalize():>24}: {w['clicks']['unique']} people clicked, "
                   f"{w['signatures']} signed")


@alert_group.command("ab")
@click.argument("alert_id", type=ID)
@click.option("--json", "as_json", is_flag=True)
def alert_ab(alert_id: int, as_json: bool) -> None:
    """An A/B subject test's variants, their numbers, and why the winner won."""
    from dataclasses import asdict

    from ..models import AbTest

    test = db.session.get(AbTest, alert_id)
    if test is None:
        raise click.ClickException(f"alert {alert_id} has no A/B test")
    results = test.results if test.state != "testing" and test.results else [
        asdict(r) for r in abtest.measure(test)]
    out = {"id": alert_id, "state": test.state, "metric": test.metric, "sample_pct": test.sample_pct,
           "wait_minutes": test.wait_minutes,
           "decide_at": test.decide_at.isoformat() if test.decide_at else None,
           "winner": abtest.letter(test.winner) if test.winner is not None else None,
           "reason": test.reason, "variants": results}
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"A/B test of alert {alert_id}: {test.state}, winner by {test.metric}")
    for r in results:
        click.echo(f"  {r['variant']}: {r['subject']!r} sent {r['sent']}, clicked {r['clickers']}, "
                   f"signed {r['signers']}, unsubscribed {r['unsubscribed']}, complaints {r['complaints']}"
                   + (" (stopped)" if r["tripped"] else ""))
    if test.reason:
        click.echo(test.reason)
