"""A predicted score, with its provenance, for every executable flow of a library.

The planner predicts, per prompt, the quality of the *rated* flows (models that human ratings exist for) on
one joint scale (``linking.py``). Every other flow borrows from them, and says how:

- ``rated``: the flow is a rated model at the settings it was rated at;
- ``inherited``: the same model (checkpoint or diffusion-model file, and the same few-step LoRA if any) with
  other settings, components or LoRAs: the rated model's prediction with a wider uncertainty; where the
  ratings measured a setting on that architecture (AGIQA-3K's few-step and low/high-CFG SD 1.5 runs, for
  SD 1.5 flows) that effect is added;
- ``family prior``: an unrated checkpoint of an architecture with rated models (Juggernaut XL from the
  SDXL-architecture models): their mean, with their spread and a wider uncertainty;
- ``none``: nothing rated is related (ranked last, and said so);
- ``measured``: the user's own scored runs (``comfygen calibrate``, online updates) in the prompt's
  categories, put on the joint scale through the flows they share with the rated ones, and combined with
  the prior above by precision.

Flows are ranked by a lower confidence bound (prediction minus ``KAPPA`` standard deviations), so a rated
model is preferred to an unrated relative with the same predicted mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal

import numpy as np

from ...flow_library.model import Family, Flow

Provenance = Literal["rated", "inherited", "family prior", "measured", "none"]
KAPPA = 1.0
INHERIT_SD = 0.10  # joint units: a model at other settings / with other components
FEW_STEP_LORA_SD = 0.20  # a few-step LoRA on a rated model that was not rated with it
PRIOR_SD = 0.20  # an unrated fine-tune of a rated architecture, beyond the spread of its rated models
BORROW_SD = 0.10  # a model rated only overall (no shared prompts), whose prompt effect is its relative's
NONE_SCORE = -10.0
FEW_STEP_MARKERS = ("lcm", "lightning", "turbo", "hyper", "schnell")

# Architectures whose unrated checkpoints borrow from rated models: family -> families of those models.
PRIOR_FAMILIES: dict[Family, tuple[Family, ...]] = {
    Family.SDXL: (Family.SDXL, Family.PLAYGROUND), Family.SDXL_REFINER: (Family.SDXL,),
    Family.PLAYGROUND: (Family.PLAYGROUND,), Family.SSD1B: (Family.SSD1B,), Family.SD15: (Family.SD15,),
    Family.SD21: (Family.SD21,), Family.SD3: (Family.SD3,), Family.FLUX: (Family.FLUX,),
    Family.CHROMA: (Family.FLUX,), Family.PIXART: (Family.PIXART,)}
# AGIQA-3K's setting variants of SD 1.5: (variant flow, reference flow)
SETTING_EFFECTS = {"few steps": ("rated-sd15-lowstep", "rated-sd15"), "low CFG": ("rated-sd15-lowcfg", "rated-sd15"),
                   "high CFG": ("rated-sd15-highcfg", "rated-sd15")}


@dataclass
class FlowPrediction:
    flow_id: str
    score: float  # joint units (NaN for provenance none)
    sd: float
    provenance: Provenance
    anchor: str | None = None  # the rated flow it borrows from (or the family's, comma-joined)
    note: str = ""
    rank_key: float = 0.0


@dataclass
class _Rule:
    kind: Provenance
    weights: dict[int, float] = field(default_factory=dict)  # planner column -> weight (the prompt's prediction)
    offset: float = 0.0  # prompt-independent, added: measured setting effects, or a scale-only model's own level
    var: float = 0.0
    note: str = ""
    named: list[str] = field(default_factory=list)  # the rated flows whose ratings the number comes from


def model_key(flow: Flow) -> tuple[str, tuple[str, ...]]:
    """What makes two flows 'the same model': the main model file and any few-step LoRA."""
    main = (flow.models.unet or flow.models.checkpoint or "").lower()
    fast = tuple(sorted(lo.name.lower() for lo in flow.models.loras
                        if any(m in lo.name.lower() for m in FEW_STEP_MARKERS)))
    return main, fast


def _few_step(flow: Flow) -> bool:
    text = " ".join([flow.models.unet or "", flow.models.checkpoint or ""] + [lo.name for lo in flow.models.loras])
    return any(m in text.lower() for m in FEW_STEP_MARKERS) or (flow.steps is not None and flow.steps <= 8)


class _Anchors:
    """Rated flows that other flows borrow from: by model key, by main model file, by architecture."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, tuple[str, ...]], str] = {}
        self.by_main: dict[str, str] = {}
        self.members: dict[Family, list[tuple[str, bool]]] = {}  # (flow, few-step)

    def add(self, flow: Flow) -> None:
        key = model_key(flow)
        self.by_key.setdefault(key, flow.id)
        if not key[1]:
            self.by_main.setdefault(key[0], flow.id)
        if flow.id not in {v for v, _ in SETTING_EFFECTS.values()}:
            self.members.setdefault(flow.family, []).append((flow.id, _few_step(flow)))

    def copy(self) -> _Anchors:
        out = _Anchors()
        out.by_key, out.by_main = dict(self.by_key), dict(self.by_main)
        out.members = {fam: list(m) for fam, m in self.members.items()}
        return out

    def family(self, fam: Family) -> list[str]:
        """The rated models that stand for an architecture: its full-step ones, else its few-step ones."""
        members = self.members.get(fam, [])
        return [f for f, few in members if not few] or [f for f, _ in members]


class CoverageMap:
    """How each executable flow of a library gets its score from the planner's rated flows."""

    def __init__(self, flows: Iterable[Flow], rated: list[str], quality: dict[str, tuple[float, float]],
                 counts: dict[str, int] | None = None, sources: dict[str, list[str]] | None = None):
        """``rated``: the planner's flow columns; ``quality``: flow -> (joint quality, sd) from the linking fit
        (it may name more flows than the columns: models rated by a source whose prompts are not shared
        between models, e.g. AIGIQA-20K's); ``counts``: observations per rated flow (the most-rated flow of a
        model is its reference)."""
        self.rated = list(rated)
        self.col = {f: j for j, f in enumerate(self.rated)}
        self.quality = quality
        self.sources = sources or {}
        self.flows: dict[str, Flow] = {f.id: f for f in flows if f.executable}
        counts = counts or {}
        self.anchor_rules: dict[str, _Rule] = {}
        columns = _Anchors()
        for fid in sorted(self.rated, key=lambda f: -counts.get(f, 0)):
            if fid in self.flows:
                columns.add(self.flows[fid])
                self.anchor_rules[fid] = _Rule("rated", {self.col[fid]: 1.0}, var=self._sd(fid) ** 2,
                                               note="its own human ratings", named=[fid])
        # models with their own ratings on the joint scale but no planner column: their own level, and the
        # prompt's effect on the nearest column-rated relative (what they would borrow without ratings)
        anchors = columns.copy()
        for fid in sorted(f for f in quality if f not in self.col and f in self.flows):
            q = quality[fid][0]
            if q is None or not math.isfinite(q):
                continue
            near = self._rule(self.flows[fid], columns)
            level = sum(w * self.quality.get(self.rated[j], (0.0, 0.0))[0] for j, w in near.weights.items())
            borrowed = f"; the prompt's effect from {', '.join(near.named)}" if near.named else \
                "; one overall number, the same for every prompt"
            self.anchor_rules[fid] = _Rule("rated", near.weights, q - level, self._sd(fid) ** 2 + BORROW_SD ** 2,
                                           f"its own human ratings{borrowed}", [fid])
            anchors.add(self.flows[fid])
        self.rules: dict[str, _Rule] = {fid: self.anchor_rules.get(fid) or self._rule(flow, anchors)
                                        for fid, flow in self.flows.items()}

    def _sd(self, fid: str) -> float:
        sd = self.quality.get(fid, (0.0, 0.0))[1]
        return 0.0 if sd is None or math.isnan(sd) else float(sd)

    def _rule(self, flow: Flow, anchors: _Anchors) -> _Rule:
        key = model_key(flow)
        anchor = anchors.by_key.get(key)
        if anchor is not None or (key[0] and key[0] in anchors.by_main):
            extra = INHERIT_SD ** 2
            note = f"the same model as {anchor or anchors.by_main[key[0]]}"
            if anchor is None:  # a few-step LoRA on a model rated without it
                anchor = anchors.by_main[key[0]]
                extra = FEW_STEP_LORA_SD ** 2
                note += " (its few-step LoRA was not rated)"
            base = self.anchor_rules[anchor]
            rule = _Rule("inherited", dict(base.weights), base.offset, base.var + extra, note, [anchor])
            ref = self.flows[anchor]
            if not _few_step(flow) and not _few_step(ref):
                applied = []
                if flow.steps and ref.steps and flow.steps <= 12 and ref.steps >= 20:
                    applied.append("few steps")
                if flow.cfg is not None and ref.cfg and flow.cfg <= 0.5 * ref.cfg:
                    applied.append("low CFG")
                if flow.cfg is not None and ref.cfg and flow.cfg >= 1.6 * ref.cfg:
                    applied.append("high CFG")
                for name in applied:  # the overall effect, not a per-prompt one: 218 prompts say little per prompt
                    plus, minus = SETTING_EFFECTS[name]
                    measured_on = self.flows.get(minus)
                    if measured_on is None or measured_on.family != flow.family:
                        continue  # CFG and step effects are an architecture's own: SD 1.5's say nothing of SD 3.5's
                    if plus in self.quality and minus in self.quality:
                        effect = self.quality[plus][0] - self.quality[minus][0]
                        rule.offset += effect
                        rule.var += self._sd(plus) ** 2 + self._sd(minus) ** 2
                        rule.note += f"; {name}: {effect:+.2f} (AGIQA-3K's SD 1.5 runs)"
            return rule
        fams = PRIOR_FAMILIES.get(flow.family, ())
        group = [f for fam in fams for f in anchors.family(fam)]
        if group:
            rules = [self.anchor_rules[f] for f in group]
            weights: dict[int, float] = {}
            for r in rules:
                for j, w in r.weights.items():
                    weights[j] = weights.get(j, 0.0) + w / len(rules)
            q = np.array([self.quality.get(f, (0.0, 0.0))[0] for f in group])
            var = float(np.mean([self._sd(f) ** 2 for f in group])) + float(q.var()) + PRIOR_SD ** 2
            return _Rule("family prior", weights, float(np.mean([r.offset for r in rules])), var,
                         f"an unrated {flow.family} checkpoint: the mean of {', '.join(group)}", group)
        return _Rule("none", note=f"no rated model of the {flow.family} family")

    def _matrix(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rules as one linear map: scores = M @ pred + offset (rows: flows), their sd and a 'known' mask."""
        if getattr(self, "_mat", None) is None:
            ids = list(self.rules)
            m = np.zeros((len(ids), len(self.rated)))
            off = np.zeros(len(ids))
            sd = np.full(len(ids), np.nan)
            known = np.zeros(len(ids), bool)
            for i, fid in enumerate(ids):
                rule = self.rules[fid]
                if rule.kind == "none":
                    continue
                known[i] = True
                for j, w in rule.weights.items():
                    m[i, j] += w
                off[i] = rule.offset
                sd[i] = math.sqrt(rule.var)
            self._mat = (ids, m, off, sd, known)
        return self._mat

    def predict(self, pred: np.ndarray, allowed: set[str] | None = None) -> list[FlowPrediction]:
        """Predictions for one prompt (``pred``: the planner's scores of its rated flows), best first."""
        ids, m, off, sd, known = self._matrix()
        scores = m @ np.nan_to_num(np.asarray(pred, dtype=float), nan=NONE_SCORE) + off
        keys = np.where(known, scores - KAPPA * np.nan_to_num(sd), NONE_SCORE)
        order = np.lexsort((np.array(ids), -keys))
        out = []
        for i in order:
            fid = ids[i]
            if allowed is not None and fid not in allowed:
                continue
            rule = self.rules[fid]
            if not known[i]:
                out.append(FlowPrediction(fid, float("nan"), float("nan"), "none", None, rule.note, NONE_SCORE))
                continue
            anchor = ", ".join(rule.named)
            out.append(FlowPrediction(fid, float(scores[i]), float(sd[i]), rule.kind, anchor, rule.note,
                                      float(keys[i])))
        return out

    def best_overall(self, allowed: set[str] | None = None) -> str | None:
        """The flow with the best prompt-independent rank key (the 'best single flow' among ``allowed``)."""
        key = None if allowed is None else frozenset(allowed)
        cache = self.__dict__.setdefault("_best", {})
        if key not in cache:
            ranked = self.predict(np.nan_to_num(self.global_scores(), nan=NONE_SCORE), allowed)
            cache[key] = ranked[0].flow_id if ranked else None
            if len(cache) > 64:
                cache.pop(next(iter(cache)))
        return cache[key]

    def global_scores(self) -> np.ndarray:
        """The rated flows' prompt-independent quality, in planner column order (for the best single flow)."""
        return np.array([self.quality.get(f, (np.nan, 0.0))[0] for f in self.rated], dtype=float)


def combine_measured(preds: list[FlowPrediction], user: dict[str, tuple[float, float, int]]) -> list[FlowPrediction]:
    """Fold the user's own measurements (flow -> (mean in joint units, sd of one measurement, n)) into the
    predictions by precision weighting; re-rank."""
    out = []
    for p in preds:
        u = user.get(p.flow_id)
        if u is None or u[2] <= 0:
            out.append(p)
            continue
        mean, sd1, n = u
        var_u = max(sd1, 1e-3) ** 2 / n
        if p.provenance == "none" or not math.isfinite(p.score):
            score, var = mean, var_u
        else:
            var_p = max(p.sd, 1e-3) ** 2
            var = 1.0 / (1.0 / var_p + 1.0 / var_u)
            score = var * (p.score / var_p + mean / var_u)
        sd = math.sqrt(var)
        note = f"{n} of your own scored runs in this kind of prompt"
        note += f", with {p.note}" if p.provenance != "none" else ""
        out.append(FlowPrediction(p.flow_id, score, sd, "measured", p.anchor, note, score - KAPPA * sd))
    out.sort(key=lambda p: (-p.rank_key, p.flow_id))
    return out


def link_user_cells(cells: dict[str, tuple[float, float, int]], reference: dict[str, float]
                    ) -> dict[str, tuple[float, float, int]]:
    """Put the user's cells (flow -> (mean, sd, n) in reward-model units) on the joint scale: an affine map
    fitted on the flows that also have a joint-scale prediction (``reference``), weighted by n. With fewer
    than two such flows (or no spread), the user's scores are standardised and given the reference's spread."""
    shared = [f for f in cells if f in reference and math.isfinite(reference[f])]
    ys = np.array([cells[f][0] for f in cells])
    ref_vals = np.array([v for v in reference.values() if math.isfinite(v)])
    ref_sd = float(ref_vals.std()) if len(ref_vals) > 1 else 1.0
    a, b = float(ys.mean()) if len(ys) else 0.0, (float(ys.std()) or 1.0) / (ref_sd or 1.0)
    c = float(ref_vals.mean()) if len(ref_vals) else 0.0
    if len(shared) >= 2:
        x = np.array([reference[f] for f in shared])
        y = np.array([cells[f][0] for f in shared])
        w = np.array([cells[f][2] for f in shared], dtype=float)
        xm, ym = np.average(x, weights=w), np.average(y, weights=w)
        sxx = float(np.sum(w * (x - xm) ** 2))
        slope = float(np.sum(w * (x - xm) * (y - ym))) / sxx if sxx > 0 else 0.0
        if slope > 1e-6:
            a, b, c = ym, slope, xm
    return {f: (c + (m - a) / b, (s or 1.0) / b, n) for f, (m, s, n) in cells.items()}
