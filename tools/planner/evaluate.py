"""Selection benchmark: mean test score of the flow each strategy picks per prompt.

Only flows measured for a prompt can be picked for it. Strategies: the planner; the best single flow of the
training data (the first measured one in training order); random (the expected score of a uniform pick);
oracle (the best measured flow).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from .data import TripletTable
from .planner import Planner


class EvalReport(BaseModel):
    prompts: int = Field(description="Test prompts with at least one flow the planner knows.")
    skipped: int = Field(0, description="Test prompts none of whose measured flows the planner knows.")
    planner: float
    best_single: float
    best_single_flow: str
    random: float
    oracle: float
    switched: float = Field(description="Fraction of prompts where the planner picked another flow than the best single one.")
    picks: dict[str, int] = Field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"prompts={self.prompts} skipped={self.skipped}",
            f"planner      {self.planner:.4f}  (picked another flow than {self.best_single_flow} on "
            f"{100 * self.switched:.1f}% of prompts)",
            f"best_single  {self.best_single:.4f}  ({self.best_single_flow}, chosen on the training data)",
            f"random       {self.random:.4f}  (expected)",
            f"oracle       {self.oracle:.4f}",
            "picks: " + ", ".join(f"{k}={v}" for k, v in sorted(self.picks.items(), key=lambda t: -t[1])),
            f"planner={self.planner:.4f} best_single={self.best_single:.4f} oracle={self.oracle:.4f}",
        ]


def evaluate_planner(planner: Planner, table: TripletTable) -> EvalReport:
    cols = [table.flows.index(f) if f in table.flows else -1 for f in planner.flows]
    known = np.array([c >= 0 for c in cols])
    avail_all = np.zeros((len(table), len(planner.flows)), bool)
    y = np.full((len(table), len(planner.flows)), np.nan)
    for j, c in enumerate(cols):
        if c >= 0:
            y[:, j] = table.scores[:, c]
            avail_all[:, j] = table.mask[:, c]
    rows = [i for i in range(len(table)) if (avail_all[i] & known).any()]
    pred = planner.score_matrix([table.prompts[i] for i in rows])
    order = [planner.flows.index(f) for f in planner.config.flow_order]
    p_sum = b_sum = r_sum = o_sum = 0.0
    switched = 0
    picks: dict[str, int] = {}
    for n, i in enumerate(rows):
        avail = avail_all[i]
        j = planner.choose_index(pred[n], avail)
        base = next(c for c in order if avail[c])
        p_sum += y[i, j]
        b_sum += y[i, base]
        measured = table.scores[i][table.mask[i]]
        r_sum += float(measured.mean())
        o_sum += float(measured.max())
        switched += int(j != base)
        picks[planner.flows[j]] = picks.get(planner.flows[j], 0) + 1
    n_rows = max(len(rows), 1)
    return EvalReport(prompts=len(rows), skipped=len(table) - len(rows), planner=p_sum / n_rows,
                      best_single=b_sum / n_rows, best_single_flow=planner.best_single, random=r_sum / n_rows,
                      oracle=o_sum / n_rows, switched=switched / n_rows, picks=picks)
