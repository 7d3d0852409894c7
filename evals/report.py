"""One self-contained HTML page for an evaluation run (inline thumbnails, SVG charts, CSS; no external assets),
plus ``results.json`` and CSV tables of every number. ``comfygen eval report RUN_DIR``."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .metrics import Sample
from .summary import load_run, load_samples, summarize, win_lookup, write_tables

log = logging.getLogger(__name__)

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
REPORT_FILE = "report.html"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1320px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}.note{color:#666;font-size:12px;margin:4px 0 10px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f5f5f5;font-weight:600}td.l,th.l{text-align:left}
.heat td{text-align:center;min-width:92px}.heat td small{display:block;color:#333;font-size:11px}
.grid{border-collapse:collapse}.grid th{text-align:center}.grid td{vertical-align:top;text-align:center;padding:4px;width:170px}
.grid td.p{text-align:left;width:260px;font-size:12px}.grid img{width:160px;height:160px;object-fit:contain;background:#eee;display:block;margin:auto}
.grid .cap{font-size:11px;color:#555;word-break:break-all}.miss{width:160px;height:160px;background:#f3e0e0;color:#a33;display:flex;align-items:center;justify-content:center;margin:auto;font-size:12px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.best{font-weight:700}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(x: float | None, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _secs(x: float | None) -> str:
    """Seconds: two decimals, or three significant digits below 0.1 s (fake-ComfyUI runs are that short)."""
    if x is None:
        return "–"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def _heat(v: float | None) -> str:
    """Diverging colour: red (0) - white (0.5) - green (1)."""
    if v is None:
        return "#f0f0f0"
    t = max(0.0, min(1.0, v))
    if t < 0.5:
        k = t / 0.5
        r, g, b = 230, int(120 + 135 * k), int(120 + 135 * k)
    else:
        k = (t - 0.5) / 0.5
        r, g, b = int(255 - 155 * k), int(255 - 55 * k), int(255 - 135 * k)
    return f"#{r:02x}{g:02x}{b:02x}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _legend(strategies: Sequence[str], colors: dict[str, str]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{colors[s]}"></i>{_e(s)}</span>'
                                           for s in strategies) + "</div>"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering [lo, hi]."""
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 0.999:
        out.append(round(v, 10))
        v += step
    return out


def bar_chart(groups: Sequence[str], series: Sequence[str], values: dict[tuple[str, str], float | None],
              colors: dict[str, str], *, fixed_range: tuple[float, float] | None = None, width: int = 1240) -> str:
    """Grouped vertical bars (one group per category, one bar per strategy) as inline SVG."""
    vals = [v for v in values.values() if v is not None]
    if not vals or not groups:
        return '<p class="note">no data</p>'
    lo, hi = fixed_range or (min(0.0, min(vals)), max(0.0, max(vals)))
    if hi - lo < 1e-9:
        hi = lo + 1.0
    ticks = _nice_ticks(lo, hi)
    if not fixed_range:
        lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    h, top, bottom, left = 260, 12, 70, 48
    plot_h = h - top - bottom
    gw = (width - left - 10) / len(groups)
    bw = max(2.0, min(26.0, (gw - 8) / max(1, len(series))))

    def y(v: float) -> float:
        return top + plot_h * (hi - v) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-size="11" font-family="sans-serif">']
    for v in ticks:
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#666">{v:g}</text>')
    parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(0.0) if lo <= 0 <= hi else y(lo):.1f}" '
                 f'y2="{y(0.0) if lo <= 0 <= hi else y(lo):.1f}" stroke="#888"/>')
    base = 0.0 if lo <= 0 <= hi else lo
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + (gw - bw * len(series)) / 2
        for si, s in enumerate(series):
            v = values.get((g, s))
            if v is None:
                continue
            y1, y2 = sorted((y(v), y(base)))
            parts.append(f'<rect x="{x0 + si * bw:.1f}" y="{y1:.1f}" width="{bw - 1:.1f}" height="{max(0.5, y2 - y1):.1f}" '
                         f'fill="{colors[s]}"><title>{_e(g)} / {_e(s)}: {v:.4f}</title></rect>')
        label = g if len(g) <= 18 else g[:17] + "…"
        cx = left + gi * gw + gw / 2
        parts.append(f'<text x="{cx:.1f}" y="{h - bottom + 14}" text-anchor="end" fill="#333" '
                     f'transform="rotate(-30 {cx:.1f} {h - bottom + 14})">{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _thumb(path: str | None, cache: dict[str, str]) -> str | None:
    if not path:
        return None
    if path not in cache:
        try:
            from ..tools.images import thumbnail

            data, mime = thumbnail(path, max_side=160, max_bytes=24_000)
            cache[path] = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        except (OSError, ValueError) as e:
            log.warning("no thumbnail for %s: %s", path, e)
            cache[path] = ""
    return cache[path] or None


def _grid(samples: Sequence[Sample], strategies: Sequence[str], heldout: str | None, max_prompts: int) -> str:
    first_seed: dict[str, int] = {}
    for s in samples:
        first_seed[s.prompt_id] = min(first_seed.get(s.prompt_id, s.seed), s.seed)
    cell = {(s.prompt_id, s.strategy): s for s in samples if s.seed == first_seed[s.prompt_id]}
    prompts: dict[str, Sample] = {}
    for s in sorted(samples, key=lambda s: s.prompt_id):
        prompts.setdefault(s.prompt_id, s)
    chosen = list(prompts.values())[:max_prompts]
    cache: dict[str, str] = {}
    rows = ["<tr><th class='l'>prompt</th>" + "".join(f"<th>{_e(st)}</th>" for st in strategies) + "</tr>"]
    for p in chosen:
        best = None
        if heldout:
            scored = [(cell[(p.prompt_id, st)].scores.get(heldout), st) for st in strategies if (p.prompt_id, st) in cell]
            scored = [x for x in scored if x[0] is not None]
            best = max(scored)[1] if scored else None
        tds = [f'<td class="p"><b>{_e(p.category)}</b><br>{_e(p.prompt)}<br><span class="cap">{_e(p.prompt_id)} · '
               f'seed {first_seed[p.prompt_id]}</span></td>']
        for st in strategies:
            s = cell.get((p.prompt_id, st))
            src = _thumb(s.image, cache) if s and s.error is None else None
            if s is None or src is None:
                why = "not run" if s is None else (s.error or "no image")[:60]
                tds.append(f'<td><div class="miss">{_e(why)}</div></td>')
                continue
            sc = s.scores.get(heldout) if heldout else None
            mark = " class='best'" if st == best else ""
            tds.append(f'<td><img src="{src}" alt="{_e(st)}" title="{_e(s.note)}"><div class="cap">{_e(s.flow_id)}<br>'
                       f'<span{mark}>{_e(heldout)} {_f(sc)}</span>'
                       f'{" · GenEval ✓" if s.geneval_correct else (" · GenEval ✗" if s.geneval_correct is False else "")}'
                       f'</div></td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    more = len(prompts) - len(chosen)
    note = f'<p class="note">{more} more prompts in samples.csv.</p>' if more > 0 else ""
    return f'<table class="grid">{"".join(rows)}</table>{note}'


def win_bars(strategies: Sequence[str], baseline: str, wl: dict[tuple[str, str], dict[str, Any]],
             colors: dict[str, str], width: int = 760) -> str:
    """Win rate of each strategy against the baseline, with its CI (the paper's Fig. 5 layout)."""
    rows = [(s, wl.get((s, baseline))) for s in strategies if s != baseline]
    rows = [(s, w) for s, w in rows if w and w.get("win_rate") is not None]
    if not rows:
        return ""
    left, right, bh, gap = 190, 60, 18, 8
    h = len(rows) * (bh + gap) + 34
    pw = width - left - right

    def x(v: float) -> float:
        return left + pw * max(0.0, min(1.0, v))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-size="11" font-family="sans-serif">']
    for k in range(0, 11, 2):
        v = k / 10
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="4" y2="{h - 22}" stroke="#eee"/>'
                     f'<text x="{x(v):.1f}" y="{h - 8}" text-anchor="middle" fill="#666">{v:.1f}</text>')
    for i, (s, w) in enumerate(rows):
        y = 6 + i * (bh + gap)
        parts.append(f'<text x="{left - 6}" y="{y + bh * 0.7:.1f}" text-anchor="end" fill="#222">{_e(s)}</text>'
                     f'<rect x="{left}" y="{y}" width="{x(w["win_rate"]) - left:.1f}" height="{bh}" fill="{colors[s]}">'
                     f'<title>{_e(s)} vs {_e(baseline)}: {w["win_rate"]:.3f}</title></rect>')
        if w.get("ci_low") is not None:
            yc = y + bh / 2
            parts.append(f'<line x1="{x(w["ci_low"]):.1f}" x2="{x(w["ci_high"]):.1f}" y1="{yc}" y2="{yc}" '
                         f'stroke="#222" stroke-width="1.5"/>')
        parts.append(f'<text x="{x(max(w["win_rate"], w.get("ci_high") or 0)) + 5:.1f}" y="{y + bh * 0.7:.1f}" '
                     f'fill="#222">{w["win_rate"]:.2f}</text>')
    parts.append(f'<line x1="{x(0.5):.1f}" x2="{x(0.5):.1f}" y1="2" y2="{h - 22}" stroke="#c33" '
                 f'stroke-dasharray="4 3"/></svg>')
    return "".join(parts)


def _win_section(strategies: Sequence[str], heldout: str, wl: dict[tuple[str, str], dict[str, Any]]) -> str:
    out = [f"<h2>Pairwise win rates ({_e(heldout)})</h2><p class='note'>Row beats column on the same prompt and "
           "seed; ties count half; 95% bootstrap CI over prompts; n = paired comparisons.</p>"]
    hrows = []
    for a in strategies:
        tds = [f"<td class='l'><b>{_e(a)}</b></td>"]
        for b in strategies:
            if a == b:
                tds.append("<td style='background:#fafafa'>–</td>")
                continue
            w = wl.get((a, b))
            v = w["win_rate"] if w else None
            ci = f"[{_f(w['ci_low'], 2)}, {_f(w['ci_high'], 2)}] n={w['n']}" if w else ""
            tds.append(f"<td style='background:{_heat(v)}'>{_f(v, 2)}<small>{ci}</small></td>")
        hrows.append("<tr>" + "".join(tds) + "</tr>")
    out.append("<table class='heat'><tr><th class='l'>A \\ B</th>" + "".join(f"<th>{_e(b)}</th>" for b in strategies)
               + "</tr>" + "".join(hrows) + "</table>")
    return "".join(out)


def render_html(summary: dict[str, Any], samples: Sequence[Sample], run: dict[str, Any], *,
                max_grid_prompts: int = 24) -> str:
    strategies: list[str] = summary["strategies"]
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(strategies)}
    heldout = summary.get("heldout_scorer")
    wl = win_lookup(summary)
    title = run.get("name") or "evaluation"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style></head><body>"]
    out.append(f"<h1>{_e(title)}</h1><div class='meta'>{_e(run.get('description', ''))}<br>"
               f"{summary['n_prompts']} prompts × {summary['seeds_per_prompt']} seed(s) × {len(strategies)} strategies · "
               f"prompt set: {_e(run.get('prompt_set', '?'))} · held-out scorer: <b>{_e(heldout)}</b>"
               f"{' (tiny random weights: numbers are meaningless)' if run.get('tiny') else ''} · "
               f"report built {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</div>")

    if run.get("heldout_in_ensemble"):
        out.append(f"<p class='note' style='color:#a33'><b>Note:</b> {_e(heldout)} is part of the scoring ensemble "
                   "that trains the planner and guides the agent, so its win rates are not held out.</p>")
    # summary table
    mean = {(m["strategy"], m["scorer"]): m for m in summary["mean_scores"]}
    div = {d["strategy"]: d for d in summary["diversity"]}
    cst = {c["strategy"]: c for c in summary["cost"]}
    gen = (summary.get("geneval") or {}).get("table", {})
    base = summary.get("baseline")
    rows = []
    for st in strategies:
        m = mean.get((st, heldout))
        w = wl.get((st, base)) if base and st != base else None
        rows.append([f"<i style='display:inline-block;width:10px;height:10px;background:{colors[st]}'></i> {_e(st)}",
                     _f(m["mean"] if m else None), _f(w["win_rate"] if w else None, 2),
                     div[st]["unique_flows"] if st in div else 0,
                     _secs(cst[st]["gpu_seconds_per_image"] if st in cst else None),
                     cst[st]["images"] if st in cst else 0, cst[st]["reused"] if st in cst else 0,
                     summary["failures"].get(st, 0), _f(gen.get(st, {}).get("Overall"), 3)])
    out.append("<h2>Summary</h2>" + _table(["strategy", f"mean {heldout}", f"win rate vs {base or '–'}",
                                            "unique flows", "GPU s / image", "images", "reused", "failed",
                                            "GenEval overall"], rows))

    if heldout:
        out.append(_win_section(strategies, heldout, wl))
        if base:
            out.append(f"<h2>Win rate against {_e(base)} ({_e(heldout)})</h2><p class='note'>Bars: fraction of "
                       "prompts where the strategy beats the baseline; lines: 95% bootstrap CI; dashed: 0.5.</p>"
                       + win_bars(strategies, base, wl, colors))
        cat_vals = {(c["category"], c["strategy"]): c["mean"] for c in summary["category_scores"]}
        out.append(f"<h2>Mean {_e(heldout)} per category</h2>" + _legend(strategies, colors)
                   + bar_chart(summary["categories"], strategies, cat_vals, colors))

    if summary.get("geneval"):
        g = summary["geneval"]
        cols = g["columns"]
        out.append("<h2>GenEval-style table</h2><p class='note'>Fraction of images judged correct by the detector "
                   "rules (GenEval's verdict logic, OWLv2 + CLIP); Overall is the mean over tasks.</p>")
        out.append(_table(["strategy"] + cols + ["images"],
                          [[_e(st)] + [_f(g["table"].get(st, {}).get(c), 2) for c in cols] + [g["n"].get(st, 0)]
                           for st in strategies]))
        gvals = {(c, st): g["table"].get(st, {}).get(c) for c in cols for st in strategies}
        out.append(_legend(strategies, colors) + bar_chart(cols, strategies, gvals, colors, fixed_range=(0.0, 1.0)))

    out.append("<h2>Mean score per scorer</h2>")
    scorers = summary["scorers"]
    out.append(_table(["strategy"] + scorers,
                      [[_e(st)] + [(f"{_f(mean[(st, sc)]['mean'])} <small>±{_f(mean[(st, sc)]['std'], 2)}</small>"
                                    if (st, sc) in mean else "–") for sc in scorers] for st in strategies]))
    out.append("<h2>Flow diversity and cost</h2>")
    out.append(_table(["strategy", "images", "unique flows", "most used flow", "its share", "entropy (bits)",
                       "GPU s / image", "GPU s total", "timed images"],
                      [[_e(st), div[st]["images"] if st in div else 0, div[st]["unique_flows"] if st in div else 0,
                        _e(div[st]["top_flow"]) if st in div else "–", _f(div[st]["top_flow_share"] if st in div else None, 2),
                        _f(div[st]["entropy_bits"] if st in div else None, 2),
                        _secs(cst[st]["gpu_seconds_per_image"] if st in cst else None),
                        _secs(cst[st]["gpu_seconds_total"] if st in cst else None),
                        cst[st]["timed_images"] if st in cst else 0] for st in strategies], left=1))
    out.append("<h2>Images</h2>" + _grid(samples, strategies, heldout, max_grid_prompts))
    out.append("<p class='note'>Every number on this page is in results.json and the CSV files beside it.</p>")
    out.append("</body></html>")
    return "".join(out)


def build_report(run_dir: str | Path, *, n_boot: int = 2000, max_grid_prompts: int = 24) -> Path:
    """Recompute every number from the run's samples, write results.json + CSVs and report.html."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    samples = load_samples(run_dir)
    if not samples:
        from ..tools.errors import ConfigError

        raise ConfigError(f"{run_dir} holds no samples", hint="run `comfygen eval run --config FILE` first")
    order = run.get("strategies") or sorted({s.strategy for s in samples})
    summary = summarize(samples, strategies=order, heldout=run.get("heldout"), baseline=run.get("baseline"),
                        n_boot=n_boot, seed=run.get("seed", 0))
    write_tables(run_dir, summary, samples)
    path = run_dir / REPORT_FILE
    path.write_text(render_html(summary, samples, run, max_grid_prompts=max_grid_prompts), encoding="utf-8")
    return path

