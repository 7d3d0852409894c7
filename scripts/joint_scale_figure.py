"""Draw the joint quality scale (per-model ranking with intervals) as an SVG for the README.

Reads the ``joint_scale.json`` that ``python scripts/build_bundle.py --table --work DIR ...`` writes and
writes the figure to the path given, and prints the README's two tables (the models core ComfyUI runs, then
all of them) in Markdown:

    python scripts/joint_scale_figure.py DIR/joint_scale.json docs/joint-scale.svg
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

RUNNABLE_COLOR, EXTERNAL_COLOR = "#1f6feb", "#8b949e"


def main(argv: list[str]) -> int:
    src, out = Path(argv[0]), Path(argv[1])
    summary = json.loads(src.read_text())
    names = json.loads(argv[2]) if len(argv) > 2 else {}
    rows = summary["flows"]
    lo = min(r["quality"] - 2 * r["sd"] for r in rows)
    hi = max(r["quality"] + 2 * r["sd"] for r in rows)
    lo, hi = min(lo, -0.1), max(hi, 0.1)
    left, width, row_h, top = 330, 520, 17, 40
    height = top + row_h * len(rows) + 52

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 40}" height="{height}" '
             f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">Joint quality scale (0 = SDXL 1.0 base; '
             'bars: 95% bootstrap interval)</text>']
    tick = 0.5
    v = tick * round(lo / tick)
    while v <= hi:
        parts.append(f'<line x1="{x(v):.1f}" y1="{top - 8}" x2="{x(v):.1f}" y2="{height - 42}" stroke="#eee"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{height - 28}" text-anchor="middle" fill="#555">{v:+.1f}</text>')
        v += tick
    parts.append(f'<line x1="{x(0):.1f}" y1="{top - 8}" x2="{x(0):.1f}" y2="{height - 42}" stroke="#999"/>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        color = EXTERNAL_COLOR if r.get("external") else RUNNABLE_COLOR
        label = escape(names.get(r["flow"], r.get("name", r["flow"])))
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{label}</text>')
        a, b = x(r["quality"] - 1.96 * r["sd"]), x(r["quality"] + 1.96 * r["sd"])
        parts.append(f'<line x1="{a:.1f}" y1="{y}" x2="{b:.1f}" y2="{y}" stroke="{color}" stroke-width="3"/>')
        parts.append(f'<circle cx="{x(r["quality"]):.1f}" cy="{y}" r="3.5" fill="{color}"/>')
    parts.append(f'<text x="{left}" y="{height - 4}" fill="#555">blue: runs in ComfyUI (a rated flow); grey: '
                 'reference only (API or research model)</text>')
    parts.append("</svg>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n")
    print(f"wrote {out} ({len(rows)} models)")
    print(markdown([r for r in rows if not r.get("external")], names))
    print(markdown(rows, names))
    return 0


def markdown(rows: list[dict], names: dict[str, str]) -> str:
    from comfygen.tools.planner.sources import scale_title

    lines = ["| model | runs in ComfyUI | quality | 95% interval | rated by |", "|---|---|---|---|---|"]
    for r in rows:
        q, sd = r["quality"], r["sd"]
        by = ", ".join(sorted({scale_title(s).split()[0] for s in r["scales"]}))
        lines.append(f"| {names.get(r['flow'], r.get('name', r['flow']))} | {'no' if r.get('external') else 'yes'} | "
                     f"{q:+.2f} | {q - 1.96 * sd:+.2f} … {q + 1.96 * sd:+.2f} | {by} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
