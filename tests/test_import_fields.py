"""Names and fields through the CSV import, the export and a person's data download and erasure:
mapped, checked, reported, never dropped in silence and never overwriting what the person gave."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Subscriber, SubscriberFieldValue
from alerts.subscribers import fields, importing, privacy
from alerts.subscribers.exporting import export_csv
from tests.helpers import csrf_token, write_csv

SOURCE = "Paper petition, Pride march 2026"

PEOPLE = """\
Email,First Name,Last Name,ZIP,Phone 2,School district,Age,,language,phone
ana@example.org,Ana,Díaz,10001,555-0101,District 1,34,x,es,+1 212 555 0100
bo@example.org,Bo,Lee,10002-1234,,district 2,,,,
kept@example.org,Kate,Newname,,,District 2,41,,en,
bad@example.org,Bad,Row,10003,,District 9,,,,
worse@example.org,Worse,Row,,,,twelve,,,
"""


def define_fields() -> None:
    fields.define("school_district", "School district", "choice", ["District 1", "District 2"])
    fields.define("age", "Age", "number")
    fields.define("interests", "Interests", "choices", ["Housing", "Transit", "Schools"])
    db.session.commit()


def people() -> dict[str, Subscriber]:
    db.session.expire_all()
    return {s.email: s for s in db.session.scalars(sa.select(Subscriber))}


def values_of(email: str) -> dict[str, list[str]]:
    sub = people()[email]
    return fields.values_for([sub.id]).get(sub.id, {})


def exported() -> dict[str, dict[str, str]]:
    rows = list(csv.reader(io.StringIO("".join(export_csv()))))
    return {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}


def test_an_import_maps_checks_reports_and_fills_only_what_is_empty(app, ctx, tmp_path):
    define_fields()
    kept = Subscriber(email="kept@example.org", status="confirmed", first_name="Katherine",
                      postal_code="20001")
    db.session.add(kept)
    db.session.flush()
    fields.set_values(kept.id, {"school_district": ["District 1"]})
    db.session.commit()
    path = write_csv(tmp_path / "people.csv", PEOPLE)

    with open(path, "rb") as fh:
        dry = importing.import_file(fh, consent="documented", source=SOURCE, dry_run=True)
    assert list(dry.columns.items()) == [  # in the file's order
        ("email", "Email"), ("first_name", "First Name"), ("last_name", "Last Name"), ("postal_code", "ZIP"),
        ("school_district", "School district"), ("age", "Age"), ("language", "language"), ("phone", "phone")]
    assert dry.unmapped_lines() == ["column 'Phone 2' will not be imported",
                                    "column 8 (no header) will not be imported"]
    summary = "\n".join(dry.summary_lines())
    assert "column 'Phone 2' will not be imported" in summary and "'ZIP' -> postal_code" in summary
    assert "1 subscriber already on the list would gain fields" in summary
    assert dry.created == 2 and dry.reasons["invalid-field"] == 2
    assert {s.email for s in people().values()} == {"kept@example.org"}  # the dry run wrote nothing
    assert values_of("kept@example.org") == {"school_district": ["District 1"]}

    with open(path, "rb") as fh:
        real = importing.import_file(fh, consent="documented", source=SOURCE, chunk_size=2)
    assert real.unmapped_lines() == ["column 'Phone 2' was not imported",
                                     "column 8 (no header) was not imported"]
    bad = {p.email: p for p in real.problems if p.reason == "invalid-field"}
    assert bad["bad@example.org"].line == 5
    assert bad["bad@example.org"].detail == "School district is one of: District 1, District 2"
    assert bad["worse@example.org"].detail == "Age is a number, like 12 or 3.5"
    assert real.created == 2 and real.filled == 1

    subs = people()
    assert set(subs) == {"ana@example.org", "bo@example.org", "kept@example.org"}
    ana, bo, kate = subs["ana@example.org"], subs["bo@example.org"], subs["kept@example.org"]
    assert (ana.first_name, ana.last_name, ana.postal_code, ana.language, ana.phone) == (
        "Ana", "Díaz", "10001", "es", "+12125550100")
    assert (bo.first_name, bo.postal_code, bo.phone, bo.language) == ("Bo", "10002-1234", None, None)
    assert values_of("ana@example.org") == {"school_district": ["District 1"], "age": ["34"]}
    assert values_of("bo@example.org") == {"school_district": ["District 2"]}  # the field's spelling
    # What Kate gave is hers: the import only adds what she had none of.
    assert (kate.first_name, kate.last_name, kate.postal_code, kate.language) == (
        "Katherine", "Newname", "20001", "en")
    assert values_of("kept@example.org") == {"school_district": ["District 1"], "age": ["41"]}

    # The export writes every one of them, and reads back as the same cells.
    fields.set_values(bo.id, {"interests": ["Transit", "Housing"]})
    db.session.commit()
    out = exported()
    assert list(out["ana@example.org"]) == [
        "email", "status", "first_name", "last_name", "postal_code", "language", "source", "created_at",
        "confirmed_at", "unsubscribed_at", "phone", "school_district", "age", "interests"]
    row = out["ana@example.org"]
    assert (row["first_name"], row["last_name"], row["postal_code"], row["language"], row["source"]) == (
        "Ana", "Díaz", "10001", "es", SOURCE)
    assert row["phone"] == "'+12125550100"  # neutralised as a spreadsheet would run it, still the number
    assert (row["school_district"], row["age"], row["interests"]) == ("District 1", "34", "")
    assert out["bo@example.org"]["interests"] == "Housing; Transit"
    assert (out["kept@example.org"]["first_name"], out["kept@example.org"]["age"]) == ("Katherine", "41")

    # And the export imports back into an empty list as it was.
    text = "".join(export_csv())
    db.session.execute(sa.delete(SubscriberFieldValue))
    db.session.execute(sa.delete(Subscriber))
    db.session.commit()
    again = importing.import_csv(io.StringIO(text), consent="documented", source=SOURCE)
    assert {h for _, h in again.unmapped} == {"status", "created_at", "confirmed_at", "unsubscribed_at"}
    assert again.created == 3 and not again.problems
    assert people()["ana@example.org"].phone == "+12125550100"
    assert values_of("bo@example.org") == {"school_district": ["District 2"],
                                           "interests": ["Housing", "Transit"]}


def test_a_bad_built_in_value_refuses_the_row_with_the_reason(app, ctx, tmp_path):
    text = ("email,first name,postcode,language,phone\n"
            "a@example.org,Ann,10001,xx,\n"
            "b@example.org,Ben,<10001>,,\n"
            "c@example.org,Cy,,,555\n"
            "d@example.org,Di,SW1A 1AA,en,\n")
    report = importing.import_csv(io.StringIO(text), consent="documented", source=SOURCE)
    details = {p.email: p.detail for p in report.problems}
    assert details == {"a@example.org": "Language: one of en, es",
                       "b@example.org": "Postal code: letters, digits, spaces and hyphens only",
                       "c@example.org": details["c@example.org"]}
    assert details["c@example.org"].startswith("Phone is not a ")
    assert report.rejected == 3 and not report.unmapped
    assert set(people()) == {"d@example.org"} and people()["d@example.org"].postal_code == "SW1A 1AA"


def run(app, *args):
    return app.test_cli_runner().invoke(args=["subscribers", *args])


def test_cli_maps_a_custom_field_and_names_the_columns_it_leaves(app, ctx, tmp_path):
    define_fields()
    path = write_csv(tmp_path / "list.csv", "E-mail,Surname,District,Phone 2\n"
                                            "ana@example.org,Díaz,district 1,555\n")
    dry = run(app, "import", str(path), "--consent", "confirm-first", "--map", "school_district=District",
              "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Columns: 'E-mail' -> email, 'Surname' -> last_name, 'District' -> school_district." in dry.stdout
    assert "column 'Phone 2' will not be imported" in dry.stdout
    assert people() == {}
    real = run(app, "import", str(path), "--consent", "documented", "--source", SOURCE,
               "--map", "school_district=District")
    assert real.exit_code == 0, real.output
    assert "column 'Phone 2' was not imported" in real.stdout
    assert people()["ana@example.org"].last_name == "Díaz"
    assert values_of("ana@example.org") == {"school_district": ["District 1"]}
    unknown = run(app, "import", str(path), "--consent", "confirm-first", "--map", "shoe_size=District")
    assert unknown.exit_code == 2 and "unknown field 'shoe_size'" in unknown.output
    assert "school_district" in unknown.output  # the fields it could be


def test_the_data_download_has_every_field_and_erasure_leaves_none(app, ctx):
    define_fields()
    fields.define("secret_word", "Secret word", "text")
    sub = Subscriber(email="zed@example.org", status="confirmed", first_name="Zaphodina",
                     last_name="Beeblebroxa", postal_code="ZZ99 9ZZ", phone="+12125550199", language="es",
                     pending_profile={"first_name": "Zaphodinetta"})
    db.session.add(sub)
    db.session.flush()
    fields.set_values(sub.id, {"school_district": ["District 2"], "interests": ["Housing", "Schools"],
                               "secret_word": ["Quuxolotl"]})
    db.session.commit()

    data = privacy.export_subscriber_data(sub.id)
    assert data is not None
    person = data["subscriber"]
    assert (person["first_name"], person["last_name"], person["postal_code"], person["phone"],
            person["language"]) == ("Zaphodina", "Beeblebroxa", "ZZ99 9ZZ", "+12125550199", "es")
    assert person["awaiting_confirmation"] == {"first_name": "Zaphodinetta"}
    assert person["fields"] == [
        {"key": "school_district", "label": "School district", "value": "District 2"},
        {"key": "age", "label": "Age", "value": None},
        {"key": "interests", "label": "Interests", "value": "Housing; Schools"},
        {"key": "secret_word", "label": "Secret word", "value": "Quuxolotl"},
    ]

    assert privacy.erase_subscriber(sub.id, by="subscriber")
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberFieldValue)) == 0
    left = ["Zaphodina", "Beeblebroxa", "ZZ99 9ZZ", "2125550199", "Quuxolotl", "Housing", "District 2"]
    found = []
    for table in db.metadata.sorted_tables:
        if table.name == "subscriber_fields":  # the field definitions (choices) are no one's data
            continue
        for row in db.session.execute(sa.select(table)):
            text = " ".join(str(v) for v in row)
            found += [(table.name, word) for word in left if word in text]
    assert found == []


def test_staff_import_page_names_the_columns_it_leaves(app, staff_client):
    with app.app_context():
        define_fields()
    page = staff_client.get("/staff/subscribers/import").get_data(as_text=True)
    assert "school_district" in page and "first_name" in page  # the export's columns
    text = "email,First Name,Phone 2,Where\nana@example.org,Ana,555,District 2\n"
    data = {"csrf_token": csrf_token(staff_client, "/staff/subscribers/import"),
            "file": (io.BytesIO(text.encode()), "list.csv"), "consent": "documented", "source": SOURCE,
            "other_columns": "school_district=Where", "dry_run": "y"}
    dry = staff_client.post("/staff/subscribers/import", data=data, content_type="multipart/form-data")
    body = dry.get_data(as_text=True)
    assert dry.status_code == 200, body
    assert "column &#39;Phone 2&#39; will not be imported" in body
    assert "School district <code>school_district</code>" in body
    keep = body.split('name="kept" value="')[1].split('"')[0]
    real = staff_client.post("/staff/subscribers/import", data={
        "csrf_token": csrf_token(staff_client, "/staff/subscribers/import"), "kept": keep,
        "kept_filename": "list.csv", "consent": "documented", "source": SOURCE,
        "other_columns": "school_district=Where"})
    body = real.get_data(as_text=True)
    assert real.status_code == 200, body
    assert "column &#39;Phone 2&#39; was not imported" in body
    with app.app_context():
        assert people()["ana@example.org"].first_name == "Ana"
        assert values_of("ana@example.org") == {"school_district": ["District 2"]}

    bad = staff_client.post("/staff/subscribers/import", data={
        "csrf_token": csrf_token(staff_client, "/staff/subscribers/import"),
        "file": (io.BytesIO(text.encode()), "list.csv"), "consent": "documented", "source": SOURCE,
        "other_columns": "shoe_size=Where"}, content_type="multipart/form-data")
    assert bad.status_code == 400
    assert "Unknown field &#39;shoe_size&#39;" in bad.get_data(as_text=True)
