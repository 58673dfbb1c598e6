"""Staff pages for results: an alert's report (figures from alerts/reports, read-only)."""

from __future__ import annotations

from flask import abort, render_template

from ...reports import alert_report


def alert_report_page(alert_id: int):
    data = alert_report.report(alert_id)
    if data is None:
        abort(404)
    return render_template("staff/alert_report.html", r=data)
