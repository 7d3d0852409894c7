"""Search outputs on disk: the top-k contact sheet (one small grid image) and the JSON summary."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from ..files import write_atomic
from ..images import save_png_atomic
from .engine import Candidate, SearchResult


def contact_sheet(cands: Sequence[Candidate], path: Path | str, *, cell: int = 192, cols: int | None = None) -> Path:
    """A grid of the candidates' images (best first), each labelled with rank, id and total score."""
    cands = [c for c in cands if c.image]
    if not cands:
        raise ValueError("no candidate images to lay out")
    cols = cols or min(len(cands), 4)
    rows = math.ceil(len(cands) / cols)
    label_h = 16
    sheet = Image.new("RGB", (cols * cell, rows * (cell + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, c in enumerate(cands):
        x, y = (i % cols) * cell, (i // cols) * (cell + label_h)
        with Image.open(c.image) as im:  # type: ignore[arg-type]
            tile = im.convert("RGB")
            tile.thumbnail((cell, cell))
        sheet.paste(tile, (x + (cell - tile.width) // 2, y + (cell - tile.height) // 2))
        total = f"{c.total:+.3f}" if c.total is not None else "-"
        draw.text((x + 4, y + cell + 2), f"#{c.rank} id {c.id} {total}", fill=(230, 230, 230))
    out = Path(path)
    save_png_atomic(sheet, out, {"comfygen": {"contact_sheet": [c.id for c in cands]}})
    return out


def write_outputs(result: SearchResult, out_dir: Path | str) -> SearchResult:
    """Write ``contact_sheet.png`` (top-k) and ``summary.json`` (every candidate's seeds and scores)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    by_id = {c.id: c for c in result.candidates}
    top = [by_id[i] for i in result.top_k]
    if top:
        result.contact_sheet = str(contact_sheet(top, d / "contact_sheet.png"))
    result.summary_path = str(d / "summary.json")
    write_atomic(Path(result.summary_path), json.dumps(result.model_dump(mode="json"), indent=1).encode())
    return result
