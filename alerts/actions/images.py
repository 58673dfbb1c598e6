"""An action's share image: a staff upload made safe and sized, or a card the app draws.

Social networks show a link's `og:image` at 1.91:1, so every image is stored at exactly
1200x630. An upload is read with care: at most MAX_BYTES, a header naming at most MAX_PIXELS
(a small file may declare a huge image: a decompression bomb), JPEG, PNG, WebP or GIF (the first
frame) only, verified, turned upright by its EXIF orientation, re-encoded without its metadata
(a phone photo's location stays with the phone). An action without one gets a card drawn on
demand: its title on a colour the slug picks, the organisation's name below; kept in memory.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..extensions import db
from ..models import Action, ActionImage, utcnow

WIDTH, HEIGHT = 1200, 630
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 8000x5000: more than any camera's photo, far below what a bomb declares
ALT_MAX = 300
FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}
JPEG_QUALITY = 85
PNG_KEPT_BELOW = 1024 * 1024  # a PNG or GIF upload stays PNG (sharp text, flat colour) up to this
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
# Background and text colours, each pair above 7:1 contrast; the slug picks one.
PALETTE: tuple[tuple[str, str], ...] = (
    ("#1d3557", "#ffffff"),  # navy
    ("#0f4c5c", "#ffffff"),  # deep teal
    ("#3d348b", "#ffffff"),  # indigo
    ("#6d2e5b", "#ffffff"),  # plum
    ("#2d5a3d", "#ffffff"),  # forest
    ("#8a3516", "#ffffff"),  # rust
    ("#22223b", "#f2e9e4"),  # ink on cream
)
CARD_VERSION = "1"  # part of a card's digest: a change to how cards are drawn changes their URLs
PADDING = 80
TITLE_SIZES = (76, 70, 64, 58, 52, 46, 40)
ORG_SIZE = 34


class ImageError(ValueError):
    """An upload that cannot be used; the message names the problem, `field` the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Picture:
    """An image ready to serve: its bytes, type and the digest its URL carries."""

    data: bytes
    content_type: str
    digest: str

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.content_type]


def _picture(data: bytes, content_type: str) -> Picture:
    return Picture(data, content_type, hashlib.sha256(data).hexdigest())


def clean_alt(alt: str | None) -> str:
    """The alt text, trimmed; required, at most ALT_MAX characters."""
    text = " ".join((alt or "").split())
    if not text:
        raise ImageError("alt", "Describe the image for people who cannot see it (alt text is required).")
    if len(text) > ALT_MAX:
        raise ImageError("alt", f"The alt text is {len(text)} characters; keep it to {ALT_MAX}.")
    return text


def _open(data: bytes) -> Image.Image:
    """The upload's first frame, loaded, after every check that can be made before decoding."""
    if not data:
        raise ImageError("file", "The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError("file", f"The file is {len(data) / 1048576:.1f} MB; the limit is "
                                 f"{MAX_BYTES // 1048576} MB.")
    with warnings.catch_warnings():
        # Pillow warns (then refuses at twice its limit) about a bomb: here a warning refuses too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                kind = probe.format or ""
                if kind not in FORMATS:
                    raise ImageError("file", f"A {kind or 'file of this'} kind is not accepted: "
                                             "upload a JPEG, PNG, WebP or GIF.")
                if probe.width * probe.height > MAX_PIXELS:
                    raise ImageError("file", f"The image declares {probe.width}x{probe.height} pixels, "
                                             f"more than the {MAX_PIXELS // 1_000_000} million accepted.")
                if probe.width < 1 or probe.height < 1:
                    raise ImageError("file", "The image has no pixels.")
                probe.verify()  # the file's structure and checksums, without decoding it all
            image = Image.open(io.BytesIO(data))
            image.seek(0)  # an animated GIF or WebP: its first frame
            image.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError("file", "This file is not an image: upload a JPEG, PNG, WebP or GIF.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("file", "The image declares far too many pixels (a decompression bomb?): "
                                     f"at most {MAX_PIXELS // 1_000_000} million are accepted.") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError("file", f"The image is damaged or cut short ({exc}).") from None
    return image


def _rgb(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation), in RGB; transparency lies on white."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "#ffffff")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _encode(image: Image.Image, *, as_png: bool) -> Picture:
    if as_png:
        out = io.BytesIO()
        image.save(out, "PNG", optimize=True)
        if out.tell() <= PNG_KEPT_BELOW:
            return _picture(out.getvalue(), "image/png")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return _picture(out.getvalue(), "image/jpeg")


def prepare(data: bytes) -> Picture:
    """An upload as it is stored: checked, cropped to fill 1200x630 (centred), re-encoded."""
    image = _open(data)
    kind = image.format
    try:
        fitted = ImageOps.fit(_rgb(image), (WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    finally:
        image.close()
    return _encode(fitted, as_png=kind in ("PNG", "GIF"))


def read_upload(stream: BinaryIO, limit: int = MAX_BYTES) -> bytes:
    """At most `limit` + 1 bytes of an uploaded file: enough to know it is too large."""
    return stream.read(limit + 1)


def stored(action_id: int) -> ActionImage | None:
    return db.session.scalar(sa.select(ActionImage).where(ActionImage.action_id == action_id))


@dataclass(frozen=True)
class StoredRef:
    """What a page needs of a stored image (not its bytes)."""

    digest: str
    content_type: str
    alt: str


def stored_ref(action_id: int) -> StoredRef | None:
    row = db.session.execute(
        sa.select(ActionImage.digest, ActionImage.content_type, ActionImage.alt)
        .where(ActionImage.action_id == action_id)
    ).first()
    return StoredRef(*row) if row else None


def upload(action: Action, data: bytes, alt: str | None) -> ActionImage:
    """Store (or replace) the action's image; the old one stays if anything is wrong.
    The caller commits."""
    text = clean_alt(alt)
    picture = prepare(data)
    row = stored(action.id)
    if row is None:
        row = ActionImage(action_id=action.id)
        db.session.add(row)
    row.digest, row.content_type, row.data = picture.digest, picture.content_type, picture.data
    row.width, row.height, row.alt, row.uploaded_at = WIDTH, HEIGHT, text, utcnow()
    return row


def remove(action: Action) -> bool:
    """Drop the action's image (its default card takes its place); whether there was one."""
    row = stored(action.id)
    if row is None:
        return False
    db.session.delete(row)
    return True


# -- the default card ------------------------------------------------------------------------


def colours_for(slug: str) -> tuple[str, str]:
    """The slug's colours: the same action keeps its colour, neighbours mostly differ."""
    index = int(hashlib.sha256(slug.encode()).hexdigest(), 16) % len(PALETTE)
    return PALETTE[index]


def card_digest(slug: str, title: str, org_name: str) -> str:
    """The card's URL digest: of what is drawn, so the URL changes when the title does."""
    background, ink = colours_for(slug)
    seed = "\n".join((CARD_VERSION, " ".join(title.split()), org_name, background, ink))
    return hashlib.sha256(seed.encode()).hexdigest()


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=16)
def _font(size: int) -> Font:
    if FONT_PATH.exists():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size=size)  # the image lacks fonts-dejavu-core: Pillow's own


def _break_word(word: str, font: Font, width: int) -> list[str]:
    pieces, current = [], ""
    for char in word:
        if current and font.getlength(current + char) > width:
            pieces.append(current)
            current = char
        else:
            current += char
    return pieces + [current] if current else pieces


def wrap(text: str, font: Font, width: int) -> list[str]:
    """Lines of `text` no wider than `width` in `font` (a word wider than a line is broken)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        if font.getlength(word) <= width:
            current = word
        else:
            *whole, current = _break_word(word, font, width)
            lines.extend(whole)
    if current:
        lines.append(current)
    return lines


def _fit_title(title: str, width: int, height: int) -> tuple[Font, list[str], int]:
    """The largest of TITLE_SIZES whose wrapped lines fit the box; at the smallest, the lines
    that fit, the last ending in an ellipsis."""
    for size in TITLE_SIZES:
        font = _font(size)
        line_height = round(size * 1.2)
        lines = wrap(title, font, width)
        if len(lines) * line_height <= height:
            return font, lines, line_height
    keep = max(1, height // line_height)
    if len(lines) > keep:
        lines = lines[:keep]
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1].rstrip()
        lines[-1] = last + "…"
    return font, lines, line_height


@lru_cache(maxsize=64)
def _card(slug: str, title: str, org_name: str) -> Picture:
    background, ink = colours_for(slug)
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    draw = ImageDraw.Draw(image)
    inner = WIDTH - 2 * PADDING
    org_font = _font(ORG_SIZE)
    org_top = HEIGHT - PADDING - ORG_SIZE
    rule_top = org_top - 34
    font, lines, line_height = _fit_title(" ".join(title.split()) or org_name, inner, rule_top - PADDING - 24)
    block = len(lines) * line_height
    top = PADDING + max(0, (rule_top - 24 - PADDING - block) // 2)
    for index, line in enumerate(lines):
        draw.text((PADDING, top + index * line_height), line, font=font, fill=ink)
    draw.rectangle((PADDING, rule_top, PADDING + 96, rule_top + 6), fill=ink)
    org = wrap(org_name, org_font, inner)[:1] or [""]
    draw.text((PADDING, org_top), org[0], font=org_font, fill=ink)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return Picture(out.getvalue(), "image/png", card_digest(slug, title, org_name))


def card(slug: str, title: str, org_name: str) -> Picture:
    """The default card for this title (drawn once per process, then from memory)."""
    return _card(slug, " ".join(title.split()), org_name)
