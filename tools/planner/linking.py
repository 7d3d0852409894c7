"""One quality scale from several human-rating sources.

Each scale ``s`` (one score column of one source) rates prompts ``p`` under flows ``f``. The model is

    y[s, p, f] = mu[s, p] + b[s] * (theta[f] + w[p] . delta[f]) + noise,   noise ~ N(0, sigma[s]^2)

- ``theta[f]``: the flow's quality on the joint scale; ``delta[f, c]``: how much better or worse it does on
  prompts of category ``c`` (``w[p]``: the prompt's category weights, summing to 1), shrunk toward 0 by a
  ridge penalty so that thin categories stay near the flow's overall quality;
- ``b[s]``, ``sigma[s]``: each scale's unit and noise (sources rate on 1-5 Likert, 0-100 MOS, ...);
- ``mu[s, p]``: the prompt's difficulty in that scale. Sources whose prompts are rated under several models
  get one per prompt, so only within-prompt differences inform ``theta`` (the classic paired design); sources
  whose prompts are (almost) never shared get one offset for the whole scale.

Why this model and not per-source z-scores or Bradley-Terry: z-scoring each source on its own puts its
average model at 0, so a source that rated SD 1.5 beside GAN-era models lifts it above a source's SDXL rated
beside DALL-E 3; the link is the models the sources share, and only a model with per-source units and
offsets uses it. The ratings are mean opinion scores and Likert means on interval-like scales, so the
magnitude of a difference carries information that pairwise win/loss models (Bradley-Terry) throw away,
and a linear model gives the within-prompt comparisons directly. It is fitted by alternating weighted
least squares (each step closed-form), and its uncertainty by bootstrapping prompts within each scale.

Units: the first scale given is the reference (``b = 1``), and the anchor flow (default: the reference
scale's first flow by name, or the one asked for) sits at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import PlannerError


@dataclass
class ScaleData:
    """One scale's observations: ``prompt[i]`` (index into ``prompt_ids``), ``flow[i]`` (flow name), ``y[i]``."""

    name: str
    prompt_ids: list[str]
    prompt: np.ndarray
    flow: list[str]
    y: np.ndarray
    paired: bool = True
    weights: np.ndarray | None = None  # [len(prompt_ids), C] category weights (rows sum to 1) or None
    source: str = ""  # scales of one source (EvalMi-50K's alignment and quality) never link each other

    def __post_init__(self) -> None:
        self.source = self.source or self.name

    @classmethod
    def from_rows(cls, name: str, rows: list[dict[str, object]], *, paired: bool | None = None,
                  weights_of: dict[str, np.ndarray] | None = None, source: str = "") -> "ScaleData":
        """From triplet rows (repeated (prompt, flow) pairs are averaged). ``paired`` defaults to whether the
        median prompt is rated under at least two flows."""
        acc: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            acc.setdefault((str(r["prompt_id"]), str(r["flow"])), []).append(float(r["score"]))  # type: ignore[arg-type]
        pids: dict[str, int] = {}
        p_idx, flows, ys = [], [], []
        for (pid, f), vals in acc.items():
            p_idx.append(pids.setdefault(pid, len(pids)))
            flows.append(f)
            ys.append(sum(vals) / len(vals))
        p = np.asarray(p_idx, dtype=np.int64)
        if paired is None:
            per_prompt = np.bincount(p, minlength=len(pids))
            paired = bool(np.median(per_prompt) >= 2)
        w = None
        if weights_of is not None:
            w = np.stack([weights_of[pid] for pid in pids]) if pids else None
        return cls(name, list(pids), p, flows, np.asarray(ys, dtype=np.float64), paired, w, source)


@dataclass
class LinkedScale:
    """The fitted joint scale."""

    flows: list[str]
    theta: np.ndarray  # [F]
    delta: np.ndarray  # [F, C]
    theta_sd: np.ndarray  # [F] bootstrap sd (NaN without bootstrap)
    delta_sd: np.ndarray  # [F, C]
    scales: dict[str, dict[str, float]]  # name -> b, offset (mean prompt offset), sigma, n, paired
    flow_scales: dict[str, list[str]]  # flow -> scales that rated it
    flow_n: dict[str, int]  # flow -> observations
    category_n: np.ndarray  # [F, C] sum of category weights of the flow's observations
    reference: str
    anchor: str
    lam: float

    def index(self, flow: str) -> int:
        return self.flows.index(flow)

    def quality(self, flow: str, weights: np.ndarray | None = None) -> float:
        j = self.index(flow)
        q = float(self.theta[j])
        if weights is not None and self.delta.shape[1]:
            q += float(self.delta[j] @ weights)
        return q

    def to_joint(self, scale: str, y: np.ndarray) -> np.ndarray:
        """Raw scores of one scale in joint units (the scale's average prompt offset removed)."""
        s = self.scales[scale]
        return (np.asarray(y, dtype=np.float64) - s["offset"]) / s["b"]


def _fit_once(data: list[ScaleData], flows: list[str], lam: float, anchor: int, iters: int,
              init: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    F = len(flows)
    C = next((d.weights.shape[1] for d in data if d.weights is not None), 0)
    fidx = {f: j for j, f in enumerate(flows)}
    cols = [np.asarray([fidx[f] for f in d.flow], dtype=np.int64) for d in data]
    wrows = [d.weights[d.prompt] if (d.weights is not None and C) else np.zeros((len(d.y), C)) for d in data]
    if init is None:
        theta, delta = np.zeros(F), np.zeros((F, C))
        b = np.array([max(float(np.std(d.y)), 1e-6) for d in data])
    else:
        theta, delta, b = (x.copy() for x in init)
    sigma2 = np.array([max(float(np.var(d.y)), 1e-9) for d in data])
    mus: list[np.ndarray] = [np.zeros(len(d.prompt_ids)) for d in data]
    spread = np.array([max(float(np.std(_centred(d.y, d))), 1e-9) for d in data])
    b0 = spread / spread[0]  # prior unit of each scale relative to the reference: the ratio of their spreads
    elsewhere = [set().union(*[set(o.flow) for o in data if o.source != d.source]) for d in data]
    same = np.array([[o.source == d.source for o in data] for d in data])
    shared = [np.array([f in elsewhere[s] for f in d.flow], dtype=bool) for s, d in enumerate(data)]
    anchor_shared = [flows[anchor] in elsewhere[s] for s in range(len(data))]
    S = len(data)
    xs = [np.concatenate([np.ones((len(d.y), 1)), wr], 1) for d, wr in zip(data, wrows)]
    groups = []  # per scale: (flow column, its rows)
    for c in cols:
        order = np.argsort(c, kind="stable")
        bounds = np.searchsorted(c[order], np.arange(F + 1))
        groups.append([(j, order[bounds[j]:bounds[j + 1]]) for j in range(F) if bounds[j + 1] > bounds[j]])
    for _ in range(iters):
        # prompt offsets
        q = [theta[c] + (wr * delta[c]).sum(1) if C else theta[c] for c, wr in zip(cols, wrows)]
        for s, d in enumerate(data):
            r = d.y - b[s] * q[s]
            if d.paired:
                mus[s] = np.bincount(d.prompt, r, len(d.prompt_ids)) / np.maximum(
                    np.bincount(d.prompt, minlength=len(d.prompt_ids)), 1)
            else:
                mus[s] = np.full(len(d.prompt_ids), r.mean())
        # flow qualities: weighted ridge per flow on [1, w] with the penalty on delta only
        xtx = np.zeros((S, F, C + 1, C + 1))
        xty = np.zeros((S, F, C + 1))
        for s, d in enumerate(data):
            z = (d.y - mus[s][d.prompt]) / b[s]
            om = b[s] ** 2 / sigma2[s]
            if C:
                for j, rows in groups[s]:
                    x = xs[s][rows]
                    xtx[s, j] = om * (x.T @ x)
                    xty[s, j] = om * (x.T @ z[rows])
            else:
                xtx[s, :, 0, 0] = om * np.bincount(cols[s], minlength=F)
                xty[s, :, 0] = om * np.bincount(cols[s], z, F)
        pen = np.diag([0.0] + [lam] * C) + 1e-9 * np.eye(C + 1)
        sol = np.linalg.solve(xtx.sum(0) + pen, xty.sum(0)[..., None])[..., 0]
        theta, delta = sol[:, 0].copy(), sol[:, 1:].copy()
        # identification: anchor at 0 (offsets absorb the shift), reference unit 1
        theta -= theta[anchor]
        q = [theta[c] + (wr * delta[c]).sum(1) if C else theta[c] for c, wr in zip(cols, wrows)]
        for s, d in enumerate(data):
            if s > 0 and shared[s].any():
                # a scale's unit: its within-prompt differences against what the *other* scales say of the same
                # flows (with its own data in the comparison, a scale that dominates a flow fits any unit)
                m = shared[s]
                keep = ~same[s]
                other = np.linalg.solve(xtx[keep].sum(0) + pen, xty[keep].sum(0)[..., None])[..., 0]
                other[:, 0] -= other[anchor, 0] if anchor_shared[s] else 0.0
                qo = other[cols[s][m], 0] + ((wrows[s][m] * other[cols[s][m], 1:]).sum(1) if C else 0.0)
                sub = ScaleData(d.name, d.prompt_ids, d.prompt[m], [], d.y[m], d.paired, source=d.source)
                b[s] = _unit(_centred(qo, sub), _centred(d.y[m], sub), cols[s][m], sigma2[s], b0[s] * b[0])
            qq, rr = _centred(q[s], d), _centred(d.y, d)  # within-prompt (paired) or within-scale deviations
            sigma2[s] = max(float(np.mean((rr - b[s] * qq) ** 2)), 1e-6 * max(float(np.var(d.y)), 1e-12))
        k = b[0]
        theta, delta, b = theta * k, delta * k, b / k
    return theta, delta, b, sigma2, mus


UNIT_PRIOR_SD = 0.5  # sd of log(unit) around the spread ratio: a factor of ~1.6 either way
INTERACTION_SD = 0.1  # joint units: how much a model's standing differs between studies beyond rating noise


def _unit(qq: np.ndarray, rr: np.ndarray, flow: np.ndarray, sigma2: float, prior: float) -> float:
    """A scale's unit: its deviations ``rr`` regressed on the joint ones ``qq``, flow by flow, with a log-normal
    prior at the ratio of spreads.

    A flow's average deviation carries the rating noise (``sigma2 / n``) and also a model-by-source
    interaction (``INTERACTION_SD``: the same model rated by two studies with other prompts and raters does
    not differ by exactly the same amount from the others), so the information about a unit grows with the
    number of shared flows, not with the number of prompts. Where only two flows link a scale and they
    disagree with the rest (AGIQA-3K's DALL-E 2 vs SD 1.5), the prior keeps the unit sensible."""
    flows, inv = np.unique(flow, return_inverse=True)
    n = np.bincount(inv, minlength=len(flows)).astype(float)
    rbar = np.bincount(inv, rr, len(flows)) / n
    qbar = np.bincount(inv, qq, len(flows)) / n
    logs = np.log(prior) + np.linspace(-4, 4, 801) * UNIT_PRIOR_SD
    bs = np.exp(logs)[:, None]
    var = sigma2 / n[None, :] + (bs * INTERACTION_SD) ** 2
    nll = 0.5 * (((rbar[None, :] - bs * qbar[None, :]) ** 2) / var + np.log(var)).sum(1)
    obj = nll + (logs - np.log(prior)) ** 2 / (2 * UNIT_PRIOR_SD ** 2)
    return float(bs[int(np.argmin(obj)), 0])


def _centred(x: np.ndarray, d: ScaleData) -> np.ndarray:
    if not d.paired:
        return x - x.mean()
    n = np.maximum(np.bincount(d.prompt, minlength=len(d.prompt_ids)), 1)
    return x - (np.bincount(d.prompt, x, len(d.prompt_ids)) / n)[d.prompt]


def fit_linked(data: list[ScaleData], *, anchor: str | None = None, lam: float = 30.0, iters: int = 60,
               bootstrap: int = 0, seed: int = 0) -> LinkedScale:
    """Fit the joint scale. ``data[0]`` is the reference scale. ``lam``: ridge penalty on category effects,
    in units of observations (a category needs about that many weighted ratings to move a flow halfway).
    ``bootstrap``: resamples of prompts within each scale for the uncertainty (0: none)."""
    if not data:
        raise PlannerError("no rating data to link", hint="pass at least one triplet file")
    flows = sorted({f for d in data for f in d.flow})
    _check_connected(data, flows)
    ref_flows = sorted(set(data[0].flow))
    anchor = anchor if anchor in flows else ref_flows[0]
    a = flows.index(anchor)
    theta, delta, b, sigma2, mus = _fit_once(data, flows, lam, a, iters)
    F, C = delta.shape
    theta_sd, delta_sd = np.full(F, np.nan), np.full((F, C), np.nan)
    if bootstrap:
        rng = np.random.default_rng(seed)
        th, de = [], []
        for _ in range(bootstrap):
            resampled = [_resample(d, rng) for d in data]
            present = sorted({f for d in resampled for f in d.flow})
            if present != flows:
                continue
            t, dl, *_ = _fit_once(resampled, flows, lam, a, max(8, iters // 4), init=(theta, delta, b))
            th.append(t)
            de.append(dl)
        if len(th) >= 2:
            theta_sd, delta_sd = np.std(th, 0, ddof=1), np.std(de, 0, ddof=1)
    scales = {}
    flow_scales: dict[str, list[str]] = {f: [] for f in flows}
    flow_n = dict.fromkeys(flows, 0)
    cat_n = np.zeros((F, C))
    for s, d in enumerate(data):
        scales[d.name] = {"b": float(b[s]), "offset": float(mus[s].mean()), "sigma": float(np.sqrt(sigma2[s])),
                          "n": int(len(d.y)), "prompts": len(d.prompt_ids), "paired": bool(d.paired)}
        for f in sorted(set(d.flow)):
            flow_scales[f].append(d.name)
        for f, p in zip(d.flow, d.prompt):
            flow_n[f] += 1
            if C and d.weights is not None:
                cat_n[flows.index(f)] += d.weights[p]
    return LinkedScale(flows, theta, delta, theta_sd, delta_sd, scales, flow_scales, flow_n, cat_n,
                       data[0].name, anchor, lam)


def _resample(d: ScaleData, rng: np.random.Generator) -> ScaleData:
    n = len(d.prompt_ids)
    pick = rng.integers(0, n, n)
    by_prompt = np.argsort(d.prompt, kind="stable")
    starts = np.searchsorted(d.prompt[by_prompt], np.arange(n + 1))
    rows, prompts = [], []
    for new, old in enumerate(pick):
        sel = by_prompt[starts[old]:starts[old + 1]]
        rows.append(sel)
        prompts.append(np.full(len(sel), new))
    idx = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return ScaleData(d.name, [d.prompt_ids[i] for i in pick], np.concatenate(prompts) if prompts else idx,
                     [d.flow[i] for i in idx], d.y[idx], d.paired,
                     None if d.weights is None else d.weights[pick], d.source)


def _check_connected(data: list[ScaleData], flows: list[str]) -> None:
    """Every scale must share a flow with the others, directly or through a chain of scales."""
    if len(data) < 2:
        return
    sets = [set(d.flow) for d in data]
    reached, frontier = {0}, [0]
    while frontier:
        s = frontier.pop()
        for t in range(len(data)):
            if t not in reached and (sets[s] & sets[t]) and (data[s].source != data[t].source or s == 0 or t == 0):
                reached.add(t)
                frontier.append(t)
    lonely = [data[t].name for t in range(len(data)) if t not in reached]
    if lonely:
        raise PlannerError(f"the scales {lonely} share no flow with {data[0].name!r} (directly or through other "
                           "files), so their scores cannot be put on one scale",
                           hint="name the same model the same way in every file (the flow column), or train on "
                                "them separately")


@dataclass
class LosoResult:
    source: str
    shared_flows: list[str] = field(default_factory=list)
    rho: float | None = None  # Spearman of the other sources' prediction vs this source's own order


def leave_one_source_out(groups: dict[str, list[ScaleData]], **fit_kw: object) -> list[LosoResult]:
    """For each source: fit on the others, predict the order of its flows that the others also rated, and
    compare with the source's own order (fitted on it alone). Spearman rho over >= 3 shared flows."""
    out = []
    names = list(groups)
    for held in names:
        rest = [d for n in names if n != held for d in groups[n]]
        own = groups[held]
        shared = sorted({f for d in own for f in d.flow} & {f for d in rest for f in d.flow})
        res = LosoResult(held, shared)
        if len(shared) >= 3 and rest:
            try:
                others = fit_linked(rest, **fit_kw)  # type: ignore[arg-type]
                alone = fit_linked(own, **fit_kw)  # type: ignore[arg-type]
            except PlannerError:
                out.append(res)
                continue
            a = np.array([others.quality(f) for f in shared])
            b = np.array([alone.quality(f) for f in shared])
            res.rho = spearman(a, b)
        out.append(res)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks of ties
        m = x == v
        r[m] = r[m].mean()
    return r
