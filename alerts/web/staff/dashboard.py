"""The staff home page."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template

from ... import listcounts
from ...extensions import db
from ...models import Action, Alert, AlertState
from ...reports import alert_report, charts
from ...reports import dashboard as series
from ...webhooks import endpoints


def subscriber_counts() -> dict[str, int]:
    """Per status and "all": cached until the list next changes (a count of a million rows is slow)."""
    return listcounts.by_status()


def dashboard():
    recent = db.session.scalars(
        sa.select(Alert).where(Alert.state != AlertState.JOURNEY)  # a journey step's is on its journey
        .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(8)
    ).all()
    open_actions = db.session.scalar(
        sa.select(sa.func.count()).select_from(Action).where(Action.is_open.is_(True))
    )
    # The charts come after the page (charts.part): their 30 days of rows take longer to read
    # than the rest of the page together at a million subscribers.
    return render_template(
        "staff/dashboard.html", counts=subscriber_counts(), alerts=recent, open_actions=open_actions,
        days=series.DAYS, disabled=endpoints.disabled(),
    )


def dashboard_charts_part():
    """The dashboard's charts alone, which the dashboard fetches and puts in place."""
    return render_template("staff/_charts.html", **dashboard_charts())


def dashboard_charts_page():
    """The same charts as a page of their own, for a browser that runs no script."""
    return render_template("staff/charts.html", **dashboard_charts())


def dashboard_charts() -> dict:
    """The series for the last 30 days, drawn as SVG here; the figures also appear as text."""
    days = series.window()
    joined = series.confirmations_and_total(days)
    size = series.list_size(days, joined=joined)
    confirmed = joined[0]
    unsubscribed = series.unsubscribes(days)
    return {
        "days": series.DAYS,
        "list_size": size,
        "list_size_chart": charts.line(days, size.values, "Confirmed subscribers at the end of each day"),
        "confirmations": confirmed,
        "confirmations_chart": charts.bars(days, confirmed.values, "Confirmations per day"),
        "unsubscribes": unsubscribed,
        "unsubscribes_chart": charts.bars(days, unsubscribed.values, "Unsubscribes per day"),
        "sources": series.signups_by_source(days),
        "languages": series.readers_by_language(),
        "signature_codes": series.signatures_by_source_code(days),
        "signatures": [
            (action, s, charts.spark(days, s.values, f"Signatures per day for {action.title}"))
            for action, s in series.signatures_per_action(days)
        ],
        "funnels": alert_report.funnels(),
    }


