"""Email rendering is a pure function of template and context: snapshot and structure tests."""

from __future__ import annotations

import email
import email.policy
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.mail.mime import build_message
from alerts.mail.rendering import compile_email, inline_css
from tests.budgets import examples

SNAPSHOTS = Path(__file__).parent / "snapshots"
ORG = {"org_name": "Kids Org", "org_postal_address": "1 Test St, NY", "base_url": "https://x.org"}


def snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"


@pytest.fixture
def env(app):
    """The app's templates, rendered in the app (whose language they are written in)."""
    with app.app_context():
        yield app.jinja_env


def test_confirm_email_text_snapshot(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    out = compiled.personalize(confirm_url="https://x.org/confirm/T0K3N", email="a@b.org")
    assert out.subject == "Confirm your subscription to Kids Org action alerts"
    snapshot("confirm.txt", out.text)


def test_confirm_email_html_is_inlined_and_slots_are_escaped(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    out = compiled.personalize(confirm_url="https://x.org/c?a=1&b=<2>", email="a@b.org")
    assert 'href="https://x.org/c?a=1&amp;b=&lt;2&gt;"' in out.html
    assert "<2>" not in out.html
    assert 'class="button"' in out.html and 'style="' in out.html
    assert "XSLOTX" not in out.html + out.text + out.subject
    assert "https://x.org/c?a=1&b=<2>" in out.text  # the text part is not HTML-escaped
    assert "1 Test St, NY" in out.html and "1 Test St, NY" in out.text


def test_compiling_once_gives_the_same_output_as_rendering_each_time(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    for addr in ("one@x.org", "two@x.org"):
        direct = compile_email(env, "confirm", (), confirm_url="https://u/1", email=addr, **ORG)
        assert compiled.personalize(confirm_url="https://u/1", email=addr).html == (
            direct.personalize().html
        )


def test_inline_css_moves_rules_into_style_attributes():
    html = inline_css("<html><head><style>p{color:red}</style></head><body><p>x</p></body></html>")
    assert '<p style="color:red">x</p>' in html


def test_built_message_parses_as_multipart_alternative_with_crlf():
    data = build_message(
        from_header='"Kids Org" <alerts@x.org>',
        to="a@b.org",
        subject="Ünïcode subject — with a dash",
        text="Hello\nA long line " + "word " * 40 + "\nend",
        html="<p>Hello ✓</p>",
        message_id="<1@x.org>",
        extra_headers=[("List-Id", "Kids <alerts.x.org>")],
    )
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF everywhere, no bare LF
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == "Ünïcode subject — with a dash"
    assert msg["List-Id"] == "Kids <alerts.x.org>"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.startswith("Hello\nA long line word") and plain.endswith("\nend")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello ✓</p>"


def test_header_injection_in_message_values_is_refused():
    with pytest.raises(ValueError):
        build_message(
            from_header="a@x.org", to="a@b.org\r\nBcc: x@y.org", subject="s", text="t", html="h",
            message_id="<1@x>",
        )


QP_VALUES = [
    "https://alerts.example.org/unsubscribe/" + "T0K3N-" * 40,  # longer than a line
    "ünïcödé@exämple.org",
    "",
    "a=b&c=<d> \"quoted\" 'single'",
    " leading and trailing spaces ",
    ".starts-with-a-dot",
]


@pytest.mark.parametrize("value", QP_VALUES)
@pytest.mark.parametrize("literal", ["", "x" * 75, "x" * 76, "y" * 74 + "=", "line one\nline two ",
                                     "é" * 40, "ends with =\n"])
def test_quoted_printable_once_per_template_decodes_to_the_same_text(literal, value):
    """Literals encoded once, values per recipient: the same decoded body, no line over 76."""
    import quopri

    from alerts.mail.rendering import Part

    for html in (False, True):
        part = Part((literal, literal[::-1], literal), ("a", "b"), html)
        values = {"a": value, "b": value[::-1]}
        encoded = part.fill_qp(values)
        expected = part.fill(values).replace("\r\n", "\n").encode()
        assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")) == expected
        assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
        assert b"\n" not in encoded.replace(b"\r\n", b"")
        assert_dkim_canonical(encoded)


def assert_dkim_canonical(encoded: bytes) -> None:
    """dkimpy's relaxed canonicalisation leaves our quoted-printable as it is, mid-body."""
    from dkim.canonicalization import Relaxed

    body = b"before\r\n" + encoded + b"\r\nafter\r\n"
    assert Relaxed.canonicalize_body(body) == body


@given(st.text(alphabet=st.sampled_from(" \t\n\r\x01\x02ab=.é"), max_size=300))
@settings(max_examples=examples(2000), deadline=None)
def test_quoted_printable_is_dkim_canonical_and_decodes_to_the_text(text):
    """Blanks in runs, tabs and blanks at line ends are escaped: the signer need not rewrite the body."""
    import quopri

    from alerts.mail.mime import _qp

    encoded = _qp(text)
    assert_dkim_canonical(encoded)
    expected = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")) == expected
    assert max(len(line) for line in encoded.split(b"\r\n")) <= 76


def test_alert_message_bodies_match_the_preview(app, ctx):
    """A blast's message (bodies encoded once per alert) reads exactly as the preview shows."""
    from alerts.blasts import content
    from alerts.extensions import db
    from alerts.models import Alert
    from tests.helpers import make_alert

    alert = db.session.get(Alert, make_alert("Encoded once: ünïcödé and = signs"))
    factory = content.MessageFactory.for_alert(alert)
    data = factory.build(7, 3, "reader@example.org")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    fields = factory.fields(7, 3, "reader@example.org")
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    unsubscribe = fields["extra_headers"][0][1].split(">")[0].lstrip("<")
    rendered = content.compiled_alert(alert).personalize(
        unsubscribe_url=unsubscribe, email="reader@example.org",
        **factory.action_urls(7, 3))
    assert html.replace("\r\n", "\n") == rendered.html.replace("\r\n", "\n")
    assert text.replace("\r\n", "\n") == rendered.text.replace("\r\n", "\n")
    for body in (fields["html_qp"], fields["text_qp"]):
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
    # No line starts with a dot (the <style> block's classes keep a space): SMTP copies the
    # whole message to double such dots, for every recipient.
    assert b"\n." not in data and ".button" in html


def _qp_piece_the_long_way(text: str) -> bytes:
    """qp_piece without its fast path for printable values (binascii for everything)."""
    from alerts.mail.mime import _qp

    encoded = _qp(text)
    start = encoded.rfind(b"\r\n") + 2 if b"\r\n" in encoded else 0
    if len(encoded) - start <= 75:
        return encoded
    cut = start + 72
    while b"=" in encoded[cut - 2:cut]:
        cut -= 1
    return encoded[:cut] + b"=\r\n" + encoded[cut:]


def _assert_quoted_printable_of(value: str) -> None:
    import quopri

    from alerts.mail.mime import qp_piece

    encoded = qp_piece(value)
    expected = value.replace("\r\n", "\n").replace("\r", "\n").encode()  # line ends, normalised
    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")) == expected
    lines = encoded.split(b"\r\n")
    assert max(len(line) for line in lines) <= 76 and len(lines[-1]) <= 75  # room for a soft break
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    assert_dkim_canonical(encoded)
    if len(_qp_piece_the_long_way(value)) <= 75:
        assert encoded == _qp_piece_the_long_way(value)  # one line: binascii's very bytes


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F) | st.sampled_from(".= é"),
               max_size=300))
@settings(max_examples=examples(3000), deadline=None)
def test_quoted_printable_fast_path_against_binascii(value):
    """Slot values (links, tokens) skip binascii when they need no escape but "="."""
    _assert_quoted_printable_of(value)


@given(st.text(alphabet=st.sampled_from("abcXYZ019-_/:?&%.=~"), max_size=400))
@settings(max_examples=examples(2000), deadline=None)
def test_quoted_printable_fast_path_for_links(value):
    _assert_quoted_printable_of(value)


@pytest.mark.parametrize("value", [".", "..", ".a", "a.", "=", "a=b", "x" * 75, "x" * 74 + "=",
                                   "x" * 73 + "=", "x" * 76, "=" * 60, "x" * 300,
                                   "https://alerts.example.org/r/AbC-_9/3?r=xyz"])
def test_quoted_printable_fast_path_edges(value):
    _assert_quoted_printable_of(value)


def test_blast_unsubscribe_tokens_are_the_serializers_own(app, ctx, monkeypatch):
    """The blast's quick signer makes exactly the token the unsubscribe page verifies, old keys too."""
    import secrets

    from alerts.subscribers.tokens import UnsubscribeTokens, read_unsubscribe_token, unsubscribe_serializer

    for keys in (["new-signing-key"], ["new-signing-key", "old-key-still-verifying"]):
        monkeypatch.setitem(app.config, "SECRET_KEYS", keys)
        fast, reference = UnsubscribeTokens(), unsubscribe_serializer()
        for _ in range(200):
            key = secrets.token_hex(16)
            token = fast.dumps(key)
            assert token == reference.dumps(key)
            assert read_unsubscribe_token(token) == key
        assert fast.dumps("not-a-token-key") == reference.dumps("not-a-token-key")


@given(st.binary(max_size=200), st.binary(max_size=300), st.sampled_from(["sha256", "sha1"]))
def test_keyed_tags_are_hmacs(key, msg, digest):
    """The blast's HMAC with its pads hashed once is RFC 2104's, long keys (hashed first) too."""
    import hmac

    from alerts.mail.signed_ids import Keyed

    assert Keyed(key, digest).digest(msg) == hmac.digest(key, msg, digest)


def test_ids_in_mail_already_sent_still_verify(app, ctx, monkeypatch):
    """Every per-message id a blast makes is the tag it always was (computed here the way it
    was before the pads were hashed once), so bounces, clicks, unsubscribes and action
    references from mail already out keep working, old keys included."""
    import base64
    import hmac

    from alerts.actions.references import ReferenceSigner, _derive, read_reference
    from alerts.mail import signed_ids as ids
    from alerts.subscribers.tokens import UnsubscribeTokens, unsubscribe_serializer

    monkeypatch.setitem(app.config, "SECRET_KEYS", ["current-key", "older-key"])
    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", "bounce.example.org")
    old = b"older-key"
    tag = hmac.digest(old, b"verp:d77", "sha256").hex()[:10]
    assert ids.parse_return_path(f"bounces+d77-{tag}@bounce.example.org") == ids.BounceTarget("d", 77)
    tag = hmac.digest(old, b"77", "sha256").hex()[:12]
    assert ids.parse_message_id(f"<alert5.d77.{tag}@example.org>") == (5, 77)
    key = "0f3c9a1b7e2d4c6a8b0e1f2a3b4c5d6e"
    tag = hmac.digest(old, f"unsubscribe:{key}".encode(), "sha256").hex()[:16]
    assert ids.parse_unsubscribe_address(f"unsubscribe+{key}-{tag}@bounce.example.org") == key
    raw = ids._varint(5) + ids._varint(77) + hmac.digest(old, b"click:5:77", "sha256")[:9]
    assert ids.parse_click_token(base64.urlsafe_b64encode(raw).rstrip(b"=").decode()) == (5, 77)
    ref = base64.urlsafe_b64encode(hmac.digest(_derive("older-key"), b"77", "sha256")[:12]).decode()
    assert read_reference(f"77.{ref}").delivery_id == 77
    # and what a blast makes now is what the same formulas give under the current key
    new = b"current-key"
    assert ids.ReturnPaths(app.config)("d", 77) == (
        f"bounces+d77-{hmac.digest(new, b'verp:d77', 'sha256').hex()[:10]}@bounce.example.org")
    assert ids.MessageIds.for_alert(5, "example.org")(77) == (
        f"<alert5.d77.{hmac.digest(new, b'77', 'sha256').hex()[:12]}@example.org>")
    assert ids.UnsubscribeAddresses(app.config)(key) == ids.unsubscribe_address(key) == (
        f"unsubscribe+{key}-{hmac.digest(new, f'unsubscribe:{key}'.encode(), 'sha256').hex()[:16]}"
        "@bounce.example.org")
    raw = ids._varint(5) + ids._varint(77) + hmac.digest(new, b"click:5:77", "sha256")[:9]
    assert ids.ClickTokens.for_alert(5)(77) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    ref = base64.urlsafe_b64encode(hmac.digest(_derive("current-key"), b"77", "sha256")[:12]).decode()
    assert ReferenceSigner.current()(77) == f"77.{ref}"
    assert UnsubscribeTokens().dumps(key) == unsubscribe_serializer().dumps(key)


@pytest.mark.parametrize("base", ["https://alerts.example.org", "https://example.org/alerts",
                                  "http://localhost:5000/"])
def test_external_url_is_what_url_for_builds_under_base_url(app, base, monkeypatch):
    """Links are built on a URL map bound once to BASE_URL: the same as url_for in a request there."""
    from flask import url_for

    from alerts.mail.context import external_url

    monkeypatch.setitem(app.config, "BASE_URL", base)
    cases = [("public.unsubscribe", {"token": "a.b-c_d"}), ("public.action", {"slug": "close-rikers"}),
             ("public.index", {}), ("public.action", {"slug": "kids", "r": "ref/1 2"})]
    with app.app_context():
        for endpoint, values in cases:
            with app.test_request_context(base_url=base):
                expected = url_for(endpoint, _external=True, **values)
            assert external_url(endpoint, **values) == expected
            assert expected.startswith(base.rstrip("/"))


@given(st.lists(st.text(alphabet=st.sampled_from("abXY09-_/:?&%.=~ \n\té"), max_size=120), max_size=8)
       | st.lists(st.text(alphabet=st.sampled_from("abXY09-_/:?&%.=~"), max_size=200), max_size=8))
@settings(max_examples=examples(2000), deadline=None)
def test_slot_values_encoded_together_as_each_alone(values):
    """A message's slot values go through quoted-printable in one pass when they can: the
    very bytes `qp_piece` makes of each, or None (and each is encoded alone)."""
    from alerts.mail.mime import qp_piece, qp_pieces

    together = qp_pieces(values)
    if together is not None:
        assert together == [qp_piece(v) for v in values]
    if all(v and v != "." and set(v) <= set("abXY09-_/:?&%.=~") for v in values):
        assert together is not None  # links and tokens always take the one pass


def test_worker_warm_up_compiles_the_alert_templates_and_caches_no_alert(app):
    """worker.py warms its parent before the pool forks: templates loaded, nothing cached
    that a real alert could be served from."""
    from alerts.blasts.content import warm_up

    app.jinja_env.cache.clear()
    compiled_before = dict(app.extensions.get("alerts.compiled_emails", {}))
    warm_up(app)
    loaded = {key[1] for key in app.jinja_env.cache}
    assert {"email/alert.html", "email/alert.txt", "email/_layout.html"} <= loaded
    assert app.extensions.get("alerts.compiled_emails", {}) == compiled_before
