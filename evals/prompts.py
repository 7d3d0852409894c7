"""Prompt sets for evaluations: the public benchmarks and user files, with seeded sampling.

The benchmark files are not part of the package (their licenses and sizes vary). Point at a folder
holding them with ``data_dir`` (CLI ``--data-dir``, env ``COMFYGEN_DATA_DIR``); from a source checkout
the default is ``../shared/data`` next to the repository. Only GenEval's metadata (MIT, 85 kB) ships
with the package, so the GenEval protocol and the smoke config work anywhere.

Layout expected under the data dir (``prompts/``)::

    PartiPrompts.tsv                      Prompt, Category, Challenge, Note
    DrawBench.tsv                         Prompts, Category
    geneval_evaluation_metadata.jsonl     tag, include, exclude, prompt
    t2i_compbench/<category>_val.txt      one prompt a line
    gecko_prompts.csv                     dataset_id, prompt, prompt_type, prompt_id, ...
    imagereward_benchmark_prompts.json    [{id, prompt}]
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..tools.errors import ConfigError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


class Prompt(BaseModel):
    """One evaluation prompt. ``id`` is stable across runs (source + row), so results can be joined."""

    id: str = Field(description="Stable id, '<set>:<row>'.")
    text: str = Field(description="The prompt text.")
    category: str = Field("", description="Category within its set (Parti category, GenEval tag, ...).")
    source: str = Field("", description="Prompt set name.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Set-specific fields (GenEval include/exclude...).")


def default_data_dir() -> Path | None:
    """``$COMFYGEN_DATA_DIR``, else ``../shared/data`` beside a source checkout, else None."""
    env = os.environ.get("COMFYGEN_DATA_DIR")
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").exists():
        candidate = REPO_ROOT.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    if path is None:
        raise ConfigError(
            "no benchmark data directory found",
            hint="pass --data-dir DIR (or set COMFYGEN_DATA_DIR) pointing at a folder with prompts/PartiPrompts.tsv etc.",
        )
    if not (path / "prompts").is_dir():
        raise ConfigError(f"{path} has no prompts/ folder", hint="--data-dir must point at the folder that holds prompts/")
    return path


def _need(path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"prompt file missing: {path}", hint="check --data-dir; see evals/prompts.py for the layout")
    return path


def _tsv(path: Path) -> list[dict[str, str]]:
    with _need(path).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_parti(data: Path) -> list[Prompt]:
    return [Prompt(id=f"parti:{i}", text=r["Prompt"], category=r["Category"], source="parti",
                   meta={"challenge": r.get("Challenge", "")})
            for i, r in enumerate(_tsv(data / "prompts" / "PartiPrompts.tsv"))]


def load_drawbench(data: Path) -> list[Prompt]:
    return [Prompt(id=f"drawbench:{i}", text=r["Prompts"], category=r["Category"].strip(), source="drawbench")
            for i, r in enumerate(_tsv(data / "prompts" / "DrawBench.tsv"))]


def _geneval_lines(data: Path | None) -> list[str]:
    if data is not None and (data / "prompts" / "geneval_evaluation_metadata.jsonl").exists():
        return (data / "prompts" / "geneval_evaluation_metadata.jsonl").read_text(encoding="utf-8").splitlines()
    shipped = resources.files("comfygen.evals") / "data" / "geneval_evaluation_metadata.jsonl"
    return shipped.read_text(encoding="utf-8").splitlines()


def load_geneval(data: Path | None) -> list[Prompt]:
    """GenEval's 553 prompts; ``meta`` is the full metadata record (tag, include, exclude) for scoring."""
    out = []
    for i, line in enumerate(ln for ln in _geneval_lines(data) if ln.strip()):
        rec = json.loads(line)
        out.append(Prompt(id=f"geneval:{i}", text=rec["prompt"], category=rec["tag"], source="geneval", meta=rec))
    return out


def load_t2i_compbench(data: Path) -> list[Prompt]:
    folder = _need(data / "prompts" / "t2i_compbench")
    out = []
    for path in sorted(folder.glob("*_val.txt")):
        cat = path.name.removesuffix("_val.txt")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        out += [Prompt(id=f"t2i_compbench:{cat}:{i}", text=t, category=cat, source="t2i_compbench")
                for i, t in enumerate(lines) if t]
    return out


def _gecko_category(dataset_id: str) -> str:
    # Gecko(S) ids are "skill/sub:detail"; Gecko(R) ids are "<source dataset>_<row>".
    if ":" in dataset_id:
        return dataset_id.split(":")[0]
    return "R/" + re.sub(r"_\d+$", "", dataset_id)


def load_gecko(data: Path) -> list[Prompt]:
    with _need(data / "prompts" / "gecko_prompts.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Prompt(id=f"gecko:{i}", text=r["prompt"], category=_gecko_category(r["dataset_id"]),
                   source="gecko", meta={"dataset_id": r["dataset_id"], "prompt_type": r.get("prompt_type", "")})
            for i, r in enumerate(rows)]


def load_imagereward(data: Path) -> list[Prompt]:
    items = json.loads(_need(data / "prompts" / "imagereward_benchmark_prompts.json").read_text(encoding="utf-8"))
    return [Prompt(id=f"imagereward:{it.get('id', i)}", text=it["prompt"], category="imagereward", source="imagereward")
            for i, it in enumerate(items)]


BUILTIN_SETS: dict[str, Callable[[Path], list[Prompt]]] = {
    "parti": load_parti,
    "drawbench": load_drawbench,
    "geneval": load_geneval,
    "t2i_compbench": load_t2i_compbench,
    "gecko": load_gecko,
    "imagereward": load_imagereward,
}


def load_user_file(path: str | Path) -> list[Prompt]:
    """A user's prompts: ``.txt`` (one a line, ``#`` comments), ``.csv``/``.tsv`` (column ``prompt`` or the
    first column, optional ``category``), ``.jsonl`` (``prompt`` or ``text``, optional ``category``/``tag``)."""
    p = _need(Path(path))
    name = p.stem
    rows: list[tuple[str, str, dict[str, Any]]] = []
    if p.suffix == ".txt":
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                rows.append((line.strip(), "", {}))
    elif p.suffix in (".csv", ".tsv"):
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if p.suffix == ".tsv" else ",")
            fields = reader.fieldnames or []
            if not fields:
                raise ConfigError(f"{p}: empty file", hint="the first line must name the columns, e.g. 'prompt,category'")
            lower = {k.lower(): k for k in fields}
            col = lower.get("prompt") or lower.get("prompts") or lower.get("text") or fields[0]
            cat = lower.get("category") or lower.get("tag")
            for r in reader:
                if (r.get(col) or "").strip():
                    rows.append((r[col].strip(), (r.get(cat) or "").strip() if cat else "", {}))
    elif p.suffix == ".jsonl":
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{p}:{n}: not JSON ({e.msg})", hint="one JSON object a line") from e
            text = rec.get("prompt") or rec.get("text")
            if not text:
                raise ConfigError(f"{p}:{n}: no 'prompt' field", hint='each line needs {"prompt": "..."}')
            rows.append((text, str(rec.get("category") or rec.get("tag") or ""), rec))
    else:
        raise ConfigError(f"{p}: unknown prompt file type {p.suffix!r}", hint="use .txt, .csv, .tsv or .jsonl")
    return [Prompt(id=f"{name}:{i}", text=t, category=c, source=name, meta=m) for i, (t, c, m) in enumerate(rows)]


def load_set(name_or_path: str, data_dir: str | Path | None = None) -> list[Prompt]:
    """A built-in set by name (``parti``, ``drawbench``, ``geneval``, ``t2i_compbench``, ``gecko``,
    ``imagereward``) or a user file path."""
    if name_or_path in BUILTIN_SETS:
        if name_or_path == "geneval":
            data = Path(data_dir) if data_dir else default_data_dir()
            return load_geneval(data)
        return BUILTIN_SETS[name_or_path](resolve_data_dir(data_dir))
    if Path(name_or_path).suffix in (".txt", ".csv", ".tsv", ".jsonl"):
        return load_user_file(name_or_path)
    raise ConfigError(f"unknown prompt set {name_or_path!r}",
                      hint=f"use one of {sorted(BUILTIN_SETS)} or a path to a .txt/.csv/.tsv/.jsonl file")


def sample(prompts: Sequence[Prompt], *, n: int | None = None, per_category: int | None = None,
           categories: Iterable[str] | None = None, seed: int = 0) -> list[Prompt]:
    """Seeded sample. ``categories`` filters first; ``per_category`` takes up to that many from each
    category; ``n`` then caps the total (spread over categories round-robin, so small categories stay in).
    The result keeps the original file order, so the same arguments always give the same list."""
    pool = list(prompts)
    if categories is not None:
        wanted = set(categories)
        unknown = wanted - {p.category for p in pool}
        if unknown:
            raise ConfigError(f"unknown categories {sorted(unknown)}",
                              hint=f"available: {sorted({p.category for p in pool})}")
        pool = [p for p in pool if p.category in wanted]
    rng = random.Random(seed)
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pool):
        by_cat[p.category].append(i)
    for idx in by_cat.values():
        rng.shuffle(idx)
        if per_category is not None:
            del idx[per_category:]
    chosen: list[int] = []
    if n is None:
        chosen = [i for idx in by_cat.values() for i in idx]
    else:
        queues = [list(by_cat[c]) for c in sorted(by_cat)]
        rng.shuffle(queues)
        while len(chosen) < n and any(queues):
            for q in queues:
                if q and len(chosen) < n:
                    chosen.append(q.pop(0))
    return [pool[i] for i in sorted(chosen)]


def categories(prompts: Iterable[Prompt]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for p in prompts:
        counts[p.category] += 1
    return dict(sorted(counts.items()))
