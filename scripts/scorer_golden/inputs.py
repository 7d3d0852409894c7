"""The fixed images and prompts the golden scores are computed on (deterministic; no model, no network).

Images cover the cases the originals treat differently: plain RGB (down- and up-sampling, odd aspect
ratios, exactly 224x224), RGBA with transparent and half-transparent parts, a palette image with a
transparent index, 8-bit grayscale, 16-bit grayscale, and a JPEG whose EXIF orientation says "rotate".
Prompts include a long one (over 77 CLIP / 35 BERT tokens) and the strings that text cleaning changes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PROMPTS = [
    "a photo of an orange cat sitting on a green lawn, highly detailed",
    ("an intricate oil painting of a quiet harbour town at sunset, fishing boats with red and white sails resting "
     "on calm golden water, seagulls circling above wooden piers, warm light on the old stone houses with blue "
     "shutters, children playing near the lighthouse, mountains fading into purple haze in the distance, "
     "dramatic clouds, volumetric lighting, ultra detailed, 8k, masterpiece, by a famous impressionist painter"),
    "Tom &amp; Jerry, a &quot;cartoon&quot; poster!",
    "\u201ccurly quotes\u201d and \u2018single\u2019 ones",
    "\ufb01ne \ufb02owers (ligatures)",
    "\uff26\uff35\uff2c\uff2c\uff0d\uff37\uff29\uff24\uff34\uff28 \uff54\uff45\uff58\uff54",
    "\u00c3\u00a9l\u00c3\u00a8ve mojibake",
    "Caf\u00e9 M\u00fcnchner Stra\u00dfe, na\u00efve \u00c9LAN; \u4e00\u53ea\u732b on a \u5c4b\u9876 "
    "\U0001f431\U0001f525 \u2122 \u00bd \u2014 "
    "tabs\tand\nnewlines   and  spaces",
]


def _gradient(w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    y = np.linspace(0.0, 1.0, h)[:, None, None]
    return (np.array(top) * (1 - y) + np.array(bottom) * y).repeat(w, 1).astype(np.uint8)


def _city(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(7)
    im = Image.fromarray(_gradient(w, h, (15, 15, 40), (60, 30, 80)))
    d = ImageDraw.Draw(im)
    for _ in range(10):
        x0, bw, bh = int(rng.integers(0, w - 40)), int(rng.integers(15, 50)), int(rng.integers(40, h - 10))
        d.rectangle((x0, h - bh, x0 + bw, h), fill=tuple(int(v) for v in rng.integers(40, 140, 3)))
        for _ in range(6):
            wx, wy = x0 + int(rng.integers(2, max(3, bw - 5))), h - int(rng.integers(4, bh))
            d.rectangle((wx, wy, wx + 3, wy + 4), fill=(255, 230, 120))
    d.ellipse((w - 70, 12, w - 30, 52), fill=(235, 235, 245))
    return im


def _rgba_cat() -> Image.Image:
    im = Image.new("RGBA", (120, 90), (90, 170, 70, 255))
    d = ImageDraw.Draw(im)
    d.ellipse((40, 30, 85, 80), fill=(200, 120, 40, 255))
    d.ellipse((48, 12, 78, 42), fill=(210, 130, 50, 255))
    d.rectangle((0, 0, 24, 24), fill=(255, 0, 0, 0))          # fully transparent, red underneath
    d.rectangle((90, 0, 119, 40), fill=(20, 40, 250, 128))     # half transparent blue
    return im


def _palette() -> Image.Image:
    rgb = Image.fromarray(_gradient(64, 48, (250, 200, 30), (30, 60, 200)))
    d = ImageDraw.Draw(rgb)
    d.ellipse((18, 10, 46, 38), fill=(240, 20, 20))
    im = rgb.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    im.info["transparency"] = 0                                 # palette index 0 is transparent
    return im


def _gray16() -> Image.Image:
    y, x = np.mgrid[0:72, 0:72]
    arr = ((np.sin(x / 7.0) * np.cos(y / 11.0) + 1.0) * 32767.0).astype(np.uint16)
    return Image.fromarray(arr)                                 # mode I;16


def _gray8() -> Image.Image:
    im = Image.fromarray(_gradient(50, 80, (20, 20, 20), (230, 230, 230))[:, :, 0])
    ImageDraw.Draw(im).ellipse((10, 25, 40, 55), fill=255)
    return im


def _exif_jpeg() -> bytes:
    im = Image.fromarray(_gradient(80, 40, (200, 40, 40), (40, 40, 200)))
    ImageDraw.Draw(im).rectangle((5, 5, 25, 15), fill=(255, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6                                            # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def _square224() -> Image.Image:
    im = Image.fromarray(_gradient(224, 224, (30, 120, 200), (240, 220, 180)))
    ImageDraw.Draw(im).polygon([(112, 30), (190, 190), (34, 190)], fill=(30, 90, 40))
    return im


def _tall() -> Image.Image:
    im = Image.fromarray(_gradient(60, 150, (250, 250, 250), (120, 60, 20)))
    ImageDraw.Draw(im).rectangle((20, 40, 40, 120), fill=(10, 10, 10))
    return im


def write_images(directory: Path) -> list[str]:
    """Write the images; returns their file names in scoring order."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "rgb_city_320x180.png": _city(320, 180),
        "rgb_tall_60x150.png": _tall(),
        "rgb_square_224.png": _square224(),
        "rgba_cat_120x90.png": _rgba_cat(),
        "palette_transparent_64x48.png": _palette(),
        "gray8_50x80.png": _gray8(),
        "gray16_72x72.png": _gray16(),
    }
    for name, im in files.items():
        im.save(directory / name, optimize=True)
    (directory / "exif_rotate90_80x40.jpg").write_bytes(_exif_jpeg())
    return sorted([*files, "exif_rotate90_80x40.jpg"])
