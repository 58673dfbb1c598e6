"""`alerts subscribers import|export`: the command-line side of subscribers/importing and exporting."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from .. import journeys
from ..extensions import db
from ..models import Journey, SubscriberStatus
from ..subscribers import fields, importing
from ..subscribers import welcome as welcome_email
from ..subscribers.exporting import export_csv
from ..subscribers.import_columns import parse_mapping
from ..subscribers.import_report import CONSENT_MODES, DOCUMENTED, ImportFileError, write_problems
from ..words import plural
from .common import record
from .database import Group
from .progress import Progress


@click.group("subscribers", cls=Group)  # its commands run inside the app context
def subscribers_group() -> None:
    """Import subscribers from CSV, export them as CSV."""


@subscribers_group.command("import")
@click.argument("file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option(
    "--consent", type=click.Choice(CONSENT_MODES), required=True,
    help="documented: you hold proof of consent; the rows become confirmed subscribers with "
         "--source recorded as their consent. confirm-first: the rows become pending and each "
         "is sent a confirmation email.",
)
@click.option("--source", help="Where and how the consent was given, e.g. \"Paper petition, "
              "Pride march 2026\" (required with --consent documented).")
@click.option("--map", "mappings", multiple=True, metavar="FIELD=HEADER",
              help="Which column holds a field, e.g. --map \"email=E-mail Address\" (repeatable). FIELD "
                   "is email, source, first_name, last_name, postal_code, language, phone or a custom "
                   "field's key. Default: the column named like the field (email or e-mail; First Name; "
                   "ZIP or postcode; a custom field's key or label).")
@click.option("--welcome", is_flag=True,
              help="With --consent documented: send each newly confirmed subscriber the welcome "
                   "email. Without it, an import mails no one.")
@click.option("--journey", "journey_name", metavar="NAME",
              help="Put the file's confirmed subscribers in this journey (trigger: imported); "
                   "without it, an import enters no journey.")
@click.option("--dry-run", is_flag=True, help="Check every row and report what would happen; change nothing.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the rows not imported as they stand, with the reason, to this CSV file.")
@click.option("--consent-text-version", help="The version of the consent wording the people agreed to "
              "(default: CONSENT_TEXT_VERSION).")
def import_command(file: str, consent: str, source: str | None, mappings: tuple[str, ...], welcome: bool,
                   journey_name: str | None, dry_run: bool, report_path: str | None,
                   consent_text_version: str | None) -> None:
    """Import subscribers from FILE.csv, whose header row names at least the email column.

    Duplicates within the file are merged, suppressed addresses stay suppressed, confirmed
    subscribers are left as they are (gaining only fields they had none of), and no one who
    unsubscribed is resubscribed. A row with a value a field cannot keep is not imported, and
    a column no field takes is named in the summary. Nobody is
    mailed unless asked: --consent confirm-first sends confirmations, --welcome the welcome
    email. A summary goes to standard output and a progress bar to standard error.
    """
    if welcome and consent != DOCUMENTED:
        raise click.UsageError(
            "--welcome goes with --consent documented: people who confirm first are sent the "
            "welcome email when they confirm."
        )
    if welcome and not welcome_email.text().enabled:
        raise click.UsageError(
            "--welcome: the welcome email is switched off (staff pages, Welcome email); "
            "switch it on first, or import without --welcome."
        )
    if consent == DOCUMENTED and not (source or "").strip():
        raise click.UsageError(
            "--source is required with --consent documented: say where and how these people "
            "consented, e.g. --source \"Paper petition, Pride march 2026\"; it is recorded as their consent."
        )
    journey = None
    if journey_name is not None:
        journey = db.session.scalar(sa.select(Journey).where(Journey.name == journey_name.strip()))
        if journey is None:
            raise click.BadParameter(f"there is no journey named “{journey_name}” (see `alerts journey "
                                     "list`)", param_hint="--journey")
        if journey.trigger != "imported":
            raise click.BadParameter(f"journey “{journey.name}” starts on {journey.trigger}, not on an "
                                     "import (trigger: imported)", param_hint="--journey")
    try:
        mapping = parse_mapping(mappings, fields.custom())
    except ImportFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from exc
    if report_path:
        try:  # before anything is imported: a report that cannot be written stops it now
            open(report_path, "a", encoding="utf-8").close()
        except OSError as exc:
            raise click.BadParameter(f"cannot write {report_path}: {exc.strerror}",
                                     param_hint="--report") from exc
    with open(file, "rb") as binary:
        try:
            total = importing.check_file(binary)
        except ImportFileError as exc:
            raise click.BadParameter(str(exc), param_hint="FILE.csv") from exc
        with Progress(total, "Checking" if dry_run else "Importing") as progress:
            try:
                report = importing.import_file(
                    binary, consent=consent, source=source, mapping=mapping, dry_run=dry_run,
                    consent_text_version=consent_text_version, progress=progress.update,
                    welcome=welcome,
                )
            except ImportFileError as exc:
                raise click.BadParameter(str(exc), param_hint="FILE.csv") from exc
    entered = None
    if journey is not None and not report.dry_run:
        entered = journeys.enter_imported(journey, report.email_keys)
    if not report.dry_run:
        record("subscribers.import", None, file=file[-120:], consent=consent, source=source,
               rows=report.rows, created=report.created, confirmed=report.confirmed,
               queued=report.queued, welcomes=report.welcomes, rejected=report.rejected,
               filled=report.filled, columns_not_imported=len(report.unmapped))
        db.session.commit()
    for line in report.summary_lines():
        click.echo(line)
    if journey is not None and entered is not None:
        click.echo(f"{plural(entered, 'subscriber')} entered the journey “{journey.name}”.")
    if report_path:
        with open(report_path, "w", newline="", encoding="utf-8") as out:
            write_problems(report.problems, out)
        click.echo(f"{plural(len(report.problems), 'row')} listed with their reasons in {report_path}.")
    elif report.problems:
        click.echo("Use --report FILE to list those rows with their reasons.")


@subscribers_group.command("export")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]),
              help="Only subscribers with this status.")
def export_command(status: str | None) -> None:
    """Write the subscribers as CSV to standard output.

    Columns: email, status, first_name, last_name, postal_code, language, source, created_at,
    confirmed_at, unsubscribed_at, phone, then each custom field by its key.
    """
    record("subscribers.export", None, status=status or "all")
    db.session.commit()  # the export is on the record before a byte of it leaves
    out = sys.stdout
    for piece in export_csv(status):
        out.write(piece)
    out.flush()
