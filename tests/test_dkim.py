"""Our OpenSSL-backed DKIM signer agrees with dkimpy, the reference verifier."""

from __future__ import annotations

import dkim
import pytest
from dkim.canonicalization import Relaxed

from alerts.mail.dkim import DkimSigner, canon_body_relaxed, generate_rsa_key


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"plain line\r\n",
        b"tabs\there \t and  double   spaces \r\nnext\t\r\n\r\n\r\n",
        b"  leading\r\n\t\ttabs\r\n trailing   \r\n",
        b"no final newline",
    ],
)
def test_relaxed_body_canonicalization_matches_dkimpy(body):
    assert canon_body_relaxed(body) == Relaxed.canonicalize_body(body)


@pytest.fixture(scope="module")
def key():
    return generate_rsa_key(2048)


def _message() -> bytes:
    return (
        b"From: \"Kids Org\" <alerts@example.org>\r\nTo: a@b.org\r\n"
        b"Subject: Folded\r\n  subject\twith  tabs\r\nDate: Tue, 24 Nov 2026 22:00:00 +0000\r\n"
        b"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"
        b"List-Unsubscribe: <https://x.org/u/T>, <mailto:u@x.org?subject=unsubscribe-T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello  there\t!\r\n\r\n"
    )


def dnsfunc_for(record: str):
    return lambda name, timeout=5: record.encode()


def test_signature_verifies_and_covers_both_unsubscribe_headers(key):
    pem, record = key
    signed = DkimSigner("example.org", "s1", pem).sign(_message())
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(record))
    header = signed.split(b"\r\n", 1)[0]
    assert b"list-unsubscribe:list-unsubscribe-post" in header
    tampered = [
        signed.replace(b"Hello", b"Hallo"),
        signed.replace(b"https://x.org/u/T", b"https://evil.example/u/T"),
        signed.replace(b"List-Unsubscribe=One-Click\r\n", b"List-Unsubscribe=Nope\r\n"),
        signed.replace(b"To: a@b.org\r\n", b"To: a@b.org\r\nFrom: evil@x.org\r\n"),
    ]
    for bad in tampered:
        assert bad != signed
        assert not dkim.verify(bad, dnsfunc=dnsfunc_for(record))


def test_ed25519_signature_verifies():
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    signed = DkimSigner("example.org", "s1", pem).sign(_message())
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(record))


def test_a_canonical_body_is_signed_as_if_canonicalised(key):
    """The blast's shortcut (its bodies are canonical as built) signs exactly what the long way signs."""
    pem, record = key
    signer = DkimSigner("example.org", "s1", pem)
    message = _message().replace(b"Hello  there\t!\r\n\r\n", b"Hello there =20!\r\n")
    fast = signer.sign(message, canonical_body=True)
    assert dkim.verify(fast, dnsfunc=dnsfunc_for(record))
    assert _tag(fast, b"bh") == _tag(signer.sign(message), b"bh")
    # A body that is not canonical after all is canonicalised anyway where that is cheap to see.
    for body_end in (b"\r\n\r\n", b""):
        odd = _message().replace(b"Hello  there\t!\r\n\r\n", b"Hello there\r\n" + body_end)
        assert dkim.verify(signer.sign(odd, canonical_body=True), dnsfunc=dnsfunc_for(record))


def _tag(signed: bytes, name: bytes) -> bytes:
    header = signed.split(b"\r\nFrom:", 1)[0].replace(b"\r\n", b"")
    return next(t.strip()[len(name) + 1:] for t in header.split(b";") if t.strip().startswith(name + b"="))


def test_a_message_in_parts_is_signed_as_the_joined_message_is(key, monkeypatch):
    """`sign_parts` (a blast's headers and body, never joined and parsed back) gives the same
    bytes as `sign` on the joined message: a folded header, a header twice and the oversigned
    From included, and each verifies."""
    import time

    from alerts.mail.dkim import parse_headers
    from alerts.mail.mime import join_message

    pem, record = key
    signer = DkimSigner("example.org", "s1", pem)
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.0)
    twice = _message().replace(b"MIME-Version", b"Reply-To: r@x.org\r\nReply-To: s@x.org\r\nMIME-Version")
    for message in (_message(), twice):
        head, _, body = message.partition(b"\r\n\r\n")
        parts = [(name, value.removeprefix(b" ")) for name, value in parse_headers(head)]
        assert join_message(parts, body) == message
        assert signer.sign_parts(parts, body) == signer.sign(message)
        assert dkim.verify(signer.sign_parts(parts, body), dnsfunc=dnsfunc_for(record))
    header = signer.sign(message).split(b"\r\n", 1)[0]
    assert b"h=from:to:subject:date:message-id:mime-version:content-type:list-unsubscribe:" \
           b"list-unsubscribe-post:reply-to:from;" in header


def test_a_signer_keeps_repeating_headers_canonical_forms_but_signs_each_message_own(key, monkeypatch):
    """The signer keeps the relaxed form of headers that repeat across a blast (From, Subject,
    Date...) and its tags per second: each message still signs its own values, the t= of its
    own second, and what is kept stays bounded."""
    import time

    from alerts.mail.dkim import parse_headers

    pem, record = key
    signer = DkimSigner("example.org", "s1", pem)
    clock = [1_790_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    for n in range(600):
        clock[0] += n % 2  # a new second every other message
        message = _message().replace(b"Folded\r\n  subject\twith  tabs", b"Alert  %d\t!" % n)
        message = message.replace(b"Kids Org", b"Kids Org %d" % (n % 3))
        head, _, body = message.partition(b"\r\n\r\n")
        parts = [(name, value.removeprefix(b" ")) for name, value in parse_headers(head)]
        signed = signer.sign_parts(parts, body)
        if n % 100 == 0:  # dkimpy is slow: a sample verifies, and a changed subject does not
            assert dkim.verify(signed, dnsfunc=dnsfunc_for(record))
            other = signed.replace(b"Alert  %d\t!" % n, b"Alert  %d\t!" % (n + 1))
            assert not dkim.verify(other, dnsfunc=dnsfunc_for(record))
        assert _tag(signed, b"t") == b"%d" % clock[0]
        if n % 25 == 0:  # a new signer keeps nothing: every header canonicalised afresh
            assert signed == DkimSigner("example.org", "s1", pem).sign(message)
    assert 0 < len(signer._canon) <= 256


@pytest.mark.parametrize("domain, selector", [("example .org", "s1"), ("example.org", "s1;x"), ("", "s1")])
def test_a_domain_or_selector_that_is_not_a_dns_name_is_refused(key, domain, selector):
    with pytest.raises(ValueError, match="^DKIM_(DOMAIN|SELECTOR) .* is not a DNS name"):
        DkimSigner(domain, selector, key[0])
