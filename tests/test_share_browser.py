"""Sharing in a real browser: the action page's share buttons, the staff image page (the
default card, then an upload), the share figure, and a share preview card drawn from the
page's own tags as a network shows them; screenshots at 1280 and 390 px, axe-core on each."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from urllib.request import urlopen

import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Action, Signature, utcnow
from tests.helpers import create_staff, seed_actions
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations
from tests.test_share import _Page

pytestmark = pytest.mark.slow

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
STAFF, PASSWORD = "share-editor@example.org", "a long staff password"
WIDTHS = (("1280", False), ("390", True))

# How a network shows a shared link: the image above, the site, the title, the description.
PREVIEW = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Share preview</title>
<style>
 body {{ margin: 0; padding: 24px 12px; background: #f0f2f5; color: #1c1e21;
   font: 15px/1.35 system-ui, sans-serif; }}
 main {{ max-width: 500px; margin: 0 auto; }}
 .post {{ background: #fff; border-radius: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.2); overflow: hidden; }}
 .post p {{ margin: 12px 16px; }}
 a.card {{ display: block; color: inherit; text-decoration: none; border-top: 1px solid #dadde1; }}
 .card img {{ display: block; width: 100%; height: auto; aspect-ratio: 1200 / 630; object-fit: cover; }}
 .card .meta {{ background: #f0f2f5; padding: 10px 12px; }}
 .card .site {{ text-transform: uppercase; font-size: 12px; color: #555a61; }}
 .card h1 {{ font-size: 16px; margin: 3px 0; }}
 .card .desc {{ font-size: 14px; color: #555a61; margin: 0; display: -webkit-box; -webkit-line-clamp: 2;
   -webkit-box-orient: vertical; overflow: hidden; }}
</style></head><body><main><div class="post"><p>Sign this with me!</p>
<a class="card" href="{url}"><img src="{image}" alt="{alt}" width="1200" height="630">
<div class="meta"><div class="site">{site}</div><h1>{title}</h1><p class="desc">{description}</p></div></a>
</div></main></body></html>"""


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def _check(page, shots: Path, name: str, label: str, source: str) -> None:
    page.wait_for_load_state("load")
    _fits(page)
    assert axe_violations(page, source) == [], name
    page.screenshot(path=shots / f"{name}-{label}.png", full_page=True)


def _tags(url: str) -> dict[str, str]:
    with urlopen(url) as response:  # noqa: S310  (the test's own live server)
        found = _Page()
        found.feed(response.read().decode())
    return {k: v[0] for k, v in found.meta.items()}


def _png_upload(path: Path) -> Path:
    """A photo-like upload, wider than 1.91:1, so the crop shows."""
    image = Image.new("RGB", (2400, 1000), "#f4d35e")
    for n, colour in enumerate(("#0d3b66", "#ee964b", "#f95738")):
        image.paste(Image.new("RGB", (500, 1000), colour), (200 + n * 700, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    path.write_bytes(out.getvalue())
    return path


def test_the_action_page_shares_and_its_preview_card(app, live_server, browser, monkeypatch, shots):
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        seed_actions()
    source = _axe_source()
    base = live_server.url
    for lang in ("en", "es"):
        tags = _tags(f"{base}/actions/{RIKERS}?lang={lang}")
        assert tags["og:image"].startswith(base + "/")
        preview = PREVIEW.format(lang=lang, **{k: html.escape(v) for k, v in {
            "url": tags["og:url"], "image": tags["og:image"], "alt": tags["og:image:alt"],
            "site": tags["og:site_name"], "title": tags["og:title"],
            "description": tags["og:description"]}.items()})
        for label, phone in WIDTHS:
            page = browsers.new_page(browser, phone=phone)
            try:
                page.goto(f"{base}/actions/{RIKERS}?lang={lang}")
                box = page.locator(".share-box")
                name = "Share on X" if lang == "en" else "Compartir en X"
                x = box.get_by_role("link", name=re.compile(rf"^{name}"))
                expect(x).to_be_visible()
                assert "source%3Dshare-x" in x.get_attribute("href")
                expect(box.get_by_role("button", name="Copy link" if lang == "en" else "Copiar el enlace")) \
                    .to_be_visible()
                _check(page, shots, f"action-{lang}", label, source)
                box.scroll_into_view_if_needed()
                page.screenshot(path=shots / f"action-share-box-{lang}-{label}.png")
                page.goto(f"{base}/actions/{RIKERS}/thanks?lang={lang}")
                _check(page, shots, f"thanks-{lang}", label, source)
                page.set_content(preview)
                image = page.locator(".card img")
                expect(image).to_be_visible()
                expect(image).to_have_js_property("complete", True)
                assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [1200, 630]
                expect(page.locator(".card h1")).to_have_text(tags["og:title"])
                page.screenshot(path=shots / f"share-preview-{lang}-{label}.png", full_page=True)
            finally:
                page.context.close()


def test_the_staff_image_page_and_the_share_figure(app, live_server, browser, shots, tmp_path):
    with app.app_context():
        seed_actions()
        create_staff(STAFF, PASSWORD)
        action = db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))
        action_id = action.id
        for n, code in enumerate(["share-x"] * 3 + ["share-whatsapp"] * 2 + ["share-email", None]):
            db.session.add(Signature(action_id=action_id, email=f"friend{n}@example.org",
                                     email_key=f"friend{n}@example.org", name=f"Friend {n}", source="share",
                                     source_code=code, confirmed_at=utcnow()))
        db.session.commit()
    source = _axe_source()
    base = live_server.url
    upload = _png_upload(tmp_path / "banner.jpg")
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            staff_log_in(page, base, STAFF, PASSWORD)
            page.goto(f"{base}/staff/actions/{action_id}/signatures")
            figure = page.locator("#shares")
            expect(figure.get_by_role("heading", name="Shares that brought signatures")).to_be_visible()
            expect(figure.locator("tbody tr").first).to_contain_text("X")
            expect(figure.locator("tbody tr").first.locator("td").nth(1)).to_have_text("3")
            for box in page.locator(".sig-summary > .box").all():  # each figure's table inside its box
                assert box.evaluate("b => b.scrollWidth <= b.clientWidth"), box.inner_text()[:40]
            _check(page, shots, "staff-signatures", label, source)
            figure.scroll_into_view_if_needed()
            page.screenshot(path=shots / f"staff-share-figure-{label}.png")

            page.get_by_role("link", name="Share image").click()
            expect(page.get_by_role("heading", name="The default card")).to_be_visible()
            preview = page.locator(".share-preview img").first
            for each in page.locator(".share-preview img").all():  # (a CSP page: no wait_for_function)
                expect(each).to_have_js_property("complete", True)
            assert preview.evaluate("i => i.naturalWidth") == 1200
            _check(page, shots, "staff-image-default", label, source)

            page.get_by_label("Image", exact=True).set_input_files(str(tmp_path / "banner.jpg"))
            page.get_by_label("Alt text").fill("")
            page.get_by_role("button", name="Upload").click()
            expect(page.locator("#alt-error")).to_contain_text("Describe the image")
            _check(page, shots, "staff-image-error", label, source)

            page.get_by_label("Image", exact=True).set_input_files(str(upload))
            page.get_by_label("Alt text").fill("Three bands of colour on yellow")
            page.get_by_role("button", name="Upload").click()
            expect(page.get_by_role("heading", name="The uploaded image")).to_be_visible()
            image = page.get_by_role("img", name="Three bands of colour on yellow")
            expect(image).to_have_js_property("complete", True)
            assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [1200, 630]
            _check(page, shots, "staff-image-uploaded", label, source)

            page.get_by_role("button", name="Remove the image").click()
            expect(page.get_by_role("heading", name="The default card")).to_be_visible()
        finally:
            page.context.close()
