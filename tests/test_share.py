"""Pages worth sharing: every action page's Open Graph and Twitter card tags, its image (an
upload made safe and sized, else a drawn card), the share buttons' links per network, the
staff image page, and the signatures each network brought."""

from __future__ import annotations

import io
import re
import struct
import zlib
from html.parser import HTMLParser
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image

from alerts import i18n
from alerts.actions import images, shares, text_of
from alerts.extensions import db
from alerts.models import Action, ActionImage, AuditEvent, Signature
from tests.helpers import SEED_ACTIONS, csrf_token, seed_actions

BASE = "https://alerts.example.org"
RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
PLEDGE = "sign-the-healthy-kids-healthy-minds-pledge"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
REQUIRED = ("og:type", "og:site_name", "og:title", "og:description", "og:url", "og:image",
            "og:image:width", "og:image:height", "og:image:alt", "twitter:card", "twitter:title",
            "twitter:description", "twitter:image", "twitter:image:alt")


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_actions()


class _Page(HTMLParser):
    """The page's meta tags (property or name: content) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.copy: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and (a.get("property") or a.get("name")) and "content" in a:
            self.meta.setdefault(a.get("property") or a["name"], []).append(a["content"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "button" and a.get("data-copy"):
            self.copy.append(a["data-copy"])


def parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def tags(html: str) -> dict[str, str]:
    page = parsed(html)
    assert all(len(v) == 1 for v in page.meta.values()), "a tag given twice"
    return {k: v[0] for k, v in page.meta.items()}


def get_image(client, url: str):
    assert url.startswith(BASE + "/")
    response = client.get(url.removeprefix(BASE))
    assert response.status_code == 200, url
    picture = Image.open(io.BytesIO(response.data))
    return response, picture


def slugs(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Action.slug).order_by(Action.position)))


def action_row(slug: str) -> Action:
    db.session.rollback()
    return db.session.scalar(sa.select(Action).where(Action.slug == slug))


def jpeg(size=(3000, 2000), colour="#c0392b", **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", **save)
    return out.getvalue()


def png(size=(800, 800), colour=(20, 120, 200, 255), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


BOUNDARY = "share-test-6f1c2a9e4b"


def upload(client, action_id: int, data: bytes, alt: str = "Children holding a banner", name="image.jpg"):
    """The upload form posted, its body encoded here (the test client spools a big one to a
    temp file it never closes)."""
    page = f"/staff/actions/{action_id}/image"
    out = io.BytesIO()
    for field, value in (("csrf_token", csrf_token(client, page)), ("alt", alt)):
        out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'
                  f"{value}\r\n".encode())
    out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
              "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return client.post(page, data=out.getvalue(), content_type=f"multipart/form-data; boundary={BOUNDARY}")


# -- the tags on every page ------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_seed_action_page_has_valid_share_tags_and_an_image_that_opens(app, client, seeded, lang):
    found = slugs(app)
    assert len(found) == len(SEED_ACTIONS) == 7
    image_urls = set()
    for slug in found:
        html = client.get(f"/actions/{slug}?lang={lang}").get_data(as_text=True)
        meta = tags(html)
        assert set(REQUIRED) <= set(meta), f"{slug}: missing {set(REQUIRED) - set(meta)}"
        with app.test_request_context(f"/?lang={lang}"):
            text = text_of(action_row(slug), lang)
        assert text.lang == lang  # every seed action has its Spanish version
        assert (meta["og:title"], meta["twitter:title"]) == (text.title, text.title)
        assert meta["og:description"] == meta["twitter:description"]
        assert 0 < len(meta["og:description"]) <= 200
        assert text.summary.startswith(meta["og:description"].rstrip("…"))
        assert (meta["og:type"], meta["og:site_name"], meta["twitter:card"]) == (
            "website", "Kids Rights Test Org", "summary_large_image")
        assert (meta["og:image:width"], meta["og:image:height"]) == ("1200", "630")
        # The canonical address says it was shared (and keeps a page's language other than the default).
        expected = f"{BASE}/actions/{slug}?src=share" + ("&lang=es" if lang == "es" else "")
        assert meta["og:url"] == expected
        assert meta["og:image"] == meta["twitter:image"]
        assert meta["og:image:alt"] == meta["twitter:image:alt"] == text.title
        response, picture = get_image(client, meta["og:image"])
        assert picture.size == (1200, 630) and picture.format == "PNG"
        assert response.headers["Content-Type"] == "image/png"
        assert "immutable" in response.headers["Cache-Control"]
        assert "max-age=31536000" in response.headers["Cache-Control"]
        image_urls.add(meta["og:image"])
    assert len(image_urls) == 7  # a card of each action's own


def test_the_thank_you_page_has_the_same_tags(client, seeded):
    page = tags(client.get(f"/actions/{PLEDGE}").get_data(as_text=True))
    thanks = tags(client.get(f"/actions/{PLEDGE}/thanks").get_data(as_text=True))
    assert thanks == page


def test_a_long_summary_is_trimmed_at_a_word():
    text = "word " * 100
    cut = shares.trimmed(text)
    assert len(cut) <= 200 and cut.endswith("word…")
    assert shares.trimmed("  Short\n and  sweet ") == "Short and sweet"


# -- the default card ------------------------------------------------------------------------


def test_the_card_url_changes_with_the_title_and_the_old_one_is_gone(app, client, seeded):
    meta = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))
    old = meta["og:image"]
    with app.app_context():
        action_row(RIKERS).title = "Close Rikers Island Now"
        db.session.commit()
    new = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    assert new != old
    assert client.get(old.removeprefix(BASE)).status_code == 404
    get_image(client, new)


def test_a_wrong_digest_or_extension_or_slug_is_a_404(client, seeded):
    url = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"].removeprefix(BASE)
    assert client.get(url).status_code == 200
    assert client.get(url.replace(".png", ".jpg")).status_code == 404
    assert client.get(re.sub(r"/image/[0-9a-f]{8}", "/image/00000000", url)).status_code == 404
    assert client.get(url.replace(RIKERS, PLEDGE)).status_code == 404
    assert client.get(url.replace(RIKERS, "no-such-action")).status_code == 404


def _margins_are_background(picture: Image.Image, background: str) -> bool:
    rgb = picture.convert("RGB")
    colour = Image.new("RGB", (1, 1), background).getpixel((0, 0))
    pad = images.PADDING - 8
    bands = [(0, 0, 1200, pad), (0, 0, pad, 630), (1200 - pad, 0, 1200, 630), (0, 630 - 40, 1200, 630)]
    return all({c for _, c in rgb.crop(box).getcolors(1200 * 630)} == {colour} for box in bands)


@pytest.mark.parametrize("title", [
    "Short",
    "Fight Against Discrimination, Demand More Loving Homes for Children",
    "Supercalifragilisticexpialidociousandthensomemoreletterswithoutanyspacesatall " * 3,
    " ".join(["Protect"] * 40),  # 200+ characters: shrunk, then cut with an ellipsis
])
def test_the_title_fits_the_card_wrapped_and_shrunk(title):
    picture = images.card("some-slug", title, "Kids Rights Test Org")
    image = Image.open(io.BytesIO(picture.data))
    assert image.size == (1200, 630)
    assert _margins_are_background(image, images.colours_for("some-slug")[0])
    font, lines, line_height = images._fit_title(" ".join(title.split()), 1200 - 2 * images.PADDING, 380)
    assert all(font.getlength(line) <= 1200 - 2 * images.PADDING for line in lines)


def test_long_titles_get_a_smaller_font_than_short_ones():
    width = 1200 - 2 * images.PADDING
    short, _, _ = images._fit_title("Short", width, 380)
    long_, _, _ = images._fit_title(" ".join(["Protect"] * 40), width, 380)
    assert short.size == images.TITLE_SIZES[0] and long_.size < short.size


def test_the_colour_comes_from_the_palette_by_slug():
    assert images.colours_for("a-slug") == images.colours_for("a-slug")
    seen = {images.colours_for(f"action-{n}") for n in range(50)}
    assert seen <= set(images.PALETTE) and len(seen) > 3


def test_without_the_dejavu_font_a_card_is_still_drawn(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "FONT_PATH", tmp_path / "missing.ttf")
    images._font.cache_clear()
    images._card.cache_clear()
    try:
        picture = images.card("fallback", "A title drawn in Pillow's own font", "Org")
        assert Image.open(io.BytesIO(picture.data)).size == (1200, 630)
    finally:
        images._font.cache_clear()
        images._card.cache_clear()


# -- uploads -----------------------------------------------------------------------------------


def _action_id(app, slug: str = RIKERS) -> int:
    with app.app_context():
        return action_row(slug).id


def test_an_uploaded_jpeg_is_stored_at_1200x630_and_the_page_shares_it(app, client, seeded, staff_client_as):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    before = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    response = upload(editor, action_id, jpeg())
    assert response.status_code == 303
    meta = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))
    assert meta["og:image"] != before and meta["og:image"].endswith(".jpg")
    assert meta["og:image:alt"] == meta["twitter:image:alt"] == "Children holding a banner"
    response, picture = get_image(client, meta["og:image"])
    assert picture.size == (1200, 630) and picture.format == "JPEG"
    assert response.headers["Content-Type"] == "image/jpeg"
    assert client.get(before.removeprefix(BASE)).status_code == 404  # the card's URL: not what is shared now
    with app.app_context():
        row = db.session.scalar(sa.select(ActionImage).where(ActionImage.action_id == action_id))
        import hashlib

        assert row.digest == hashlib.sha256(row.data).hexdigest() and row.digest in meta["og:image"]
        assert (row.width, row.height, row.content_type) == (1200, 630, "image/jpeg")
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "action.image_upload"))
        assert (event.actor, event.target) == ("editor@example.org", f"action {action_id}")


def test_a_new_upload_changes_the_url(app, client, seeded, staff_client_as):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    upload(editor, action_id, jpeg(colour="#c0392b"))
    first = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    upload(editor, action_id, jpeg(colour="#2980b9"))
    second = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    assert first != second
    assert client.get(first.removeprefix(BASE)).status_code == 404
    get_image(client, second)


def test_a_png_with_transparency_is_flattened_and_stays_png(app, client, seeded, staff_client_as):
    editor = staff_client_as("editor")
    assert upload(editor, _action_id(app), png(colour=(0, 0, 0, 0)), name="logo.png").status_code == 303
    meta = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))
    _, picture = get_image(client, meta["og:image"])
    assert (picture.size, picture.format, picture.mode) == ((1200, 630), "PNG", "RGB")
    assert picture.getpixel((600, 315)) == (255, 255, 255)  # the transparent part lies on white


def test_the_crop_fills_the_frame_from_the_middle_and_the_exif_orientation_is_applied():
    # Seen upright: red on the left, blue on the right, 1600x840. Stored turned a quarter
    # (840x1600), with the EXIF orientation that tells viewers to turn it back.
    upright = Image.new("RGB", (1600, 840), "#ff0000")
    upright.paste(Image.new("RGB", (800, 840), "#0000ff"), (800, 0))
    turned = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x8825] = {2: (40.0, 26.0, 0.0)}  # a GPS position: not kept
    out = io.BytesIO()
    turned.save(out, "JPEG", quality=95, exif=exif)
    picture = images.prepare(out.getvalue())
    stored = Image.open(io.BytesIO(picture.data))
    assert stored.size == (1200, 630)
    red, blue = stored.getpixel((100, 315)), stored.getpixel((1100, 315))
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60
    assert not stored.getexif()  # no metadata leaves with the image


def test_the_first_frame_of_an_animated_gif_and_a_webp_are_accepted():
    frames = [Image.new("P", (600, 400), n) for n in (1, 2, 3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(images.prepare(out.getvalue()).data)).size == (1200, 630)
    out = io.BytesIO()
    Image.new("RGB", (1300, 700), "#336699").save(out, "WEBP")
    picture = images.prepare(out.getvalue())
    assert picture.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(picture.data)).size == (1200, 630)


def _bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose header declares width x height pixels; its CRCs are right."""
    data = bytearray(png((8, 8), mode="RGB", colour=(0, 0, 0)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17]))
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 630)).save(out, "BMP")
    return out.getvalue()


HOSTILE = {
    "not an image": (b"<?php echo 'hello'; ?>" * 100, "This file is not an image"),
    "a decompression bomb": (_bomb(), "a decompression bomb?"),
    "more pixels than accepted": (_bomb(9000, 6000), "9000x6000 pixels"),
    "too large": (b"\xff\xd8\xff\xe0" + b"\0" * (images.MAX_BYTES + 10), "the limit is 10 MB"),
    "a truncated jpeg": (jpeg((2000, 1200))[:20000], "damaged or cut short"),
    "a truncated png": (png((900, 900), mode="RGB", colour=(5, 9, 200))[:300], "damaged or cut short"),
    "another format": (_bmp(), "BMP kind is not accepted"),
    "empty": (b"", "The file is empty"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_upload_is_refused_saying_why_and_the_old_image_stays(app, client, seeded, staff_client_as,
                                                                        case):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    assert upload(editor, action_id, jpeg()).status_code == 303
    shared = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    data, why = HOSTILE[case]
    response = upload(editor, action_id, data)
    assert response.status_code == 400
    assert why in response.get_data(as_text=True)
    assert tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"] == shared
    get_image(client, shared)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ActionImage)) == 1
        uploads = sa.select(sa.func.count()).where(AuditEvent.action == "action.image_upload")
        assert db.session.scalar(uploads) == 1


def test_alt_text_is_required_and_at_most_300_characters(app, seeded, staff_client_as):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    for alt, why in (("", "Describe the image"), ("x" * 301, "300")):
        response = upload(editor, action_id, jpeg(), alt=alt)
        assert response.status_code == 400 and why in response.get_data(as_text=True)
    with pytest.raises(images.ImageError, match="300"):
        images.clean_alt("y" * 301)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ActionImage)) == 0


def test_a_body_above_the_staff_upload_limit_is_a_413_and_changes_nothing(app, seeded, staff_client_as,
                                                                          monkeypatch):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    monkeypatch.setitem(app.config, "STAFF_UPLOAD_MAX_BYTES", 256 * 1024)
    response = upload(editor, action_id, b"\xff\xd8" + b"\0" * (512 * 1024))
    assert response.status_code == 413
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ActionImage)) == 0


def test_the_staff_page_previews_the_card_then_the_upload_and_removes_it(app, client, seeded,
                                                                         staff_client_as):
    editor = staff_client_as("editor")
    action_id = _action_id(app)
    signatures_page = editor.get(f"/staff/actions/{action_id}/signatures").get_data(as_text=True)
    assert f'href="/staff/actions/{action_id}/image"' in signatures_page
    page = editor.get(f"/staff/actions/{action_id}/image").get_data(as_text=True)
    card = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"].removeprefix(BASE)
    assert "The default card" in page and f'src="{card}"' in page
    upload(editor, action_id, jpeg())
    page = editor.get(f"/staff/actions/{action_id}/image").get_data(as_text=True)
    shared = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"].removeprefix(BASE)
    assert "The uploaded image" in page and f'src="{shared}"' in page
    assert 'alt="Children holding a banner"' in page
    page = f"/staff/actions/{action_id}/image"
    response = editor.post(f"{page}/remove", data={"csrf_token": csrf_token(editor, page)})
    assert response.status_code == 303
    shown = tags(client.get(f"/actions/{RIKERS}").get_data(as_text=True))["og:image"]
    assert shown.removeprefix(BASE) == card
    assert client.get(shared).status_code == 404
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEvent.action)
                                          .where(AuditEvent.action.like("action.image%"))
                                          .order_by(AuditEvent.id)))
        assert actions == ["action.image_upload", "action.image_remove"]


def test_a_viewer_sees_no_image_page(app, seeded, staff_client_as):
    viewer = staff_client_as("viewer")
    action_id = _action_id(app)
    assert viewer.get(f"/staff/actions/{action_id}/image").status_code == 403
    assert "Share image" not in viewer.get(f"/staff/actions/{action_id}/signatures").get_data(as_text=True)


# -- the share buttons, and what they brought --------------------------------------------------


def _share_links(html: str) -> dict[str, str]:
    """Each network's button: the page address its link carries."""
    page = parsed(html)
    found = {}
    for href in page.links:
        if href.startswith("mailto:"):
            found["email"] = unquote(parse_qs(urlsplit(href).query)["body"][0]).split()[-1]
        elif "twitter.com/intent/tweet" in href:
            found["x"] = parse_qs(urlsplit(href).query)["url"][0]
        elif "facebook.com/sharer" in href:
            found["facebook"] = parse_qs(urlsplit(href).query)["u"][0]
        elif href.startswith("https://wa.me/"):
            found["whatsapp"] = parse_qs(urlsplit(href).query)["text"][0].split()[-1]
    [found["copy"]] = page.copy
    return found


@pytest.mark.parametrize("path", ["/actions/{slug}", "/actions/{slug}/thanks"])
def test_each_share_button_names_its_network(client, seeded, path):
    html = client.get(path.format(slug=RIKERS)).get_data(as_text=True)
    links = _share_links(html)
    assert sorted(links) == sorted(shares.NETWORKS)
    for network, url in links.items():
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/actions/{RIKERS}"
        assert parse_qs(parts.query) == {"src": ["share"], "source": [f"share-{network}"]}, network
    # Named for what they do, the visible word inside the name (WCAG 2.5.3).
    assert '<span class="visually-hidden">Share on </span>X' in html
    assert '<span class="visually-hidden">Share by </span>Email' in html


def test_a_spanish_page_shares_in_spanish(client, seeded):
    html = client.get(f"/actions/{RIKERS}?lang=es").get_data(as_text=True)
    links = _share_links(html)
    assert all(parse_qs(urlsplit(url).query)["lang"] == ["es"] for url in links.values())
    assert "Compartir en </span>X" in html and "Corra la voz" in html
    mailto = next(h for h in parsed(html).links if h.startswith("mailto:"))
    assert "Firme la petición" in unquote(mailto)


def _sign(client, path: str, email: str) -> None:
    html = client.get(path).get_data(as_text=True)
    data = {**dict(HIDDEN_RE.findall(html)), "csrf_token": TOKEN_RE.search(html).group(1), "website": "",
            "name": "A Friend", "email": email}
    slug = urlsplit(path).path.split("/")[2]
    response = client.post(f"/actions/{slug}/sign", data=data, environ_base={"REMOTE_ADDR": "198.51.100.44"})
    assert response.status_code == 303


def test_a_signature_through_a_share_on_x_counts_in_the_staff_share_figure(app, client, seeded,
                                                                           staff_client_as):
    links = _share_links(client.get(f"/actions/{RIKERS}").get_data(as_text=True))
    shared_on_x = links["x"].removeprefix(BASE)
    _sign(client, shared_on_x, "friend-x@example.org")
    _sign(app.test_client(), links["whatsapp"].removeprefix(BASE), "friend-wa@example.org")
    _sign(app.test_client(), f"/actions/{RIKERS}?src=share", "friend-plain@example.org")
    _sign(app.test_client(), f"/actions/{RIKERS}?source=share-x", "not-a-share@example.org")  # no src=share
    with app.app_context():
        rows = db.session.execute(sa.select(Signature.email, Signature.source, Signature.source_code)
                                  .order_by(Signature.id)).all()
        assert [tuple(r) for r in rows] == [
            ("friend-x@example.org", "share", "share-x"),
            ("friend-wa@example.org", "share", "share-whatsapp"),
            ("friend-plain@example.org", "share", None), ("not-a-share@example.org", "direct", "share-x")]
        action_id = action_row(RIKERS).id
        figure = {(n.network, n.counted) for n in shares.by_network(action_id)}
        assert figure == {("x", 1), ("whatsapp", 1), ("", 1)}
    html = staff_client_as("viewer").get(f"/staff/actions/{action_id}/signatures").get_data(as_text=True)
    box = html.split("Shares that brought signatures")[1].split("</table>")[0]
    assert re.search(r"<td>X</td><td class=\"num\">1</td>", box)
    assert re.search(r"<td>WhatsApp</td><td class=\"num\">1</td>", box)
    assert re.search(r"<td>Other shares</td><td class=\"num\">1</td>", box)
    assert "Facebook" not in box


def test_no_share_yet_says_so(app, seeded, staff_client_as):
    viewer = staff_client_as("viewer")
    html = viewer.get(f"/staff/actions/{_action_id(app)}/signatures").get_data(as_text=True)
    assert "No signatures came through a share yet." in html


def test_the_default_card_of_each_language_is_served(app, client, seeded):
    with app.app_context():
        action = action_row(PLEDGE)
        titles = {code: text_of(action, code).title for code in i18n.languages()}
    assert titles["en"] != titles["es"]
    urls = {code: tags(client.get(f"/actions/{PLEDGE}?lang={code}").get_data(as_text=True))["og:image"]
            for code in titles}
    assert urls["en"] != urls["es"]
    for url in urls.values():
        get_image(client, url)
