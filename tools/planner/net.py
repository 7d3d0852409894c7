"""The planner network: MiniLM + LoRA (one adapter per ensemble member) + a linear head over the flow vocabulary.

Each ensemble member scores every flow for a prompt (standardised score units). Members run together in one
forward pass with peft's mixed-adapter batches (the prompt is repeated once per member).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .encoder import load_base_model, load_tokenizer, mean_pool

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

EMBED_SCALE = 4.0  # unit-norm embeddings times this feed the head (keeps head learning rates sensible)
HIDDEN = 384


@dataclass
class TrainParams:
    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float = 3e-3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    max_length: int = 64
    abs_weight: float = 0.1
    min_steps: int = 20
    max_steps: int | None = None
    time_budget_s: float | None = None  # per member: fewer steps when the machine is too slow to finish in time


def lora_config(p: TrainParams) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                      target_modules=["query", "value"])


def pairwise_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, abs_weight: float) -> torch.Tensor:
    """Mean squared error of all within-prompt score differences (offset-free: only relative scores matter),
    plus a small absolute term that anchors the level. Missing cells (mask 0) take no part."""
    import torch

    m = mask.to(pred.dtype)
    r = (pred - torch.nan_to_num(target)) * m
    n = m.sum(1)
    pair_sse = n * (r * r).sum(1) - r.sum(1) ** 2  # = sum over pairs i<j of (r_i - r_j)^2
    pairs = (n * (n - 1) / 2).clamp(min=1)
    rel = (pair_sse / pairs).sum() / max(int((n > 1).sum()), 1)
    absolute = (r * r).sum() / m.sum().clamp(min=1)
    return rel + abs_weight * absolute


def encode_batch(model: Any, tok: PreTrainedTokenizerBase, texts: list[str], max_length: int,
                 adapter_names: list[str] | None = None) -> torch.Tensor:
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    kwargs = {"adapter_names": adapter_names} if adapter_names is not None else {}
    hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs).last_hidden_state
    return mean_pool(hidden, enc["attention_mask"]) * EMBED_SCALE


def train_member(texts: list[str], targets: np.ndarray, params: TrainParams, seed: int,
                 on_step: Any = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Fit one LoRA adapter + head on standardised targets [n, F] (NaN = missing).

    Returns (adapter state dict, head weight [F, 384], head bias [F]).
    """
    import torch
    from peft import get_peft_model, get_peft_model_state_dict

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = load_tokenizer()
    model = get_peft_model(load_base_model(), lora_config(params))
    n_flows = targets.shape[1]
    head = torch.nn.Linear(HIDDEN, n_flows)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.tensor(np.nan_to_num(np.nanmean(targets, 0) if np.isfinite(targets).any() else 0.0)))
    lora_params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": lora_params, "lr": params.lr},
                             {"params": head.parameters(), "lr": params.head_lr}], weight_decay=0.0)
    y = torch.tensor(targets, dtype=torch.float32)
    mask = torch.isfinite(y)
    n = len(texts)
    bs = min(params.batch_size, n)
    steps = max(params.min_steps, int(round(params.epochs * n / bs)))
    if params.max_steps is not None:
        steps = min(steps, params.max_steps)
    plan = [steps]  # the schedule reads the (possibly shortened) step count
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, plan[0] // 10)) *
                                              max(0.0, 1 - s / plan[0]) ** 0.5)
    model.train()
    order: list[int] = []
    started = time.perf_counter()
    step = 0
    while step < plan[0]:
        if params.time_budget_s and step == 5:
            per_step = (time.perf_counter() - started) / 5
            fit = int(params.time_budget_s / max(per_step, 1e-6))
            if fit < plan[0]:
                logger.warning("training is slow here (%.2f s/step): %d steps instead of %d to stay within %.0f s",
                               per_step, max(fit, 10), plan[0], params.time_budget_s)
                plan[0] = max(fit, 10)
        if len(order) < bs:
            order += list(rng.permutation(n))
        idx, order = order[:bs], order[bs:]
        out = head(encode_batch(model, tok, [texts[i] for i in idx], params.max_length))
        loss = pairwise_loss(out, y[idx], mask[idx], params.abs_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if on_step is not None:
            on_step(step, plan[0], float(loss))
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    return state, head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()


class EnsembleNet:
    """Loaded ensemble: base MiniLM with K named adapters + K heads. ``scores(texts)`` -> [n, K, F]."""

    def __init__(self, adapters: list[dict[str, Any]], head_w: np.ndarray, head_b: np.ndarray, params: TrainParams):
        import torch
        from peft import get_peft_model, set_peft_model_state_dict

        self.params = params
        self.tok = load_tokenizer()
        cfg = lora_config(params)
        cfg.lora_dropout = 0.0
        self.names = [f"m{i}" for i in range(len(adapters))]
        model = get_peft_model(load_base_model(), cfg, adapter_name=self.names[0])
        for name in self.names[1:]:
            model.add_adapter(name, cfg)
        for name, state in zip(self.names, adapters):
            set_peft_model_state_dict(model, state, adapter_name=name)
        model.eval()
        self.model = model
        self.head_w = torch.tensor(head_w, dtype=torch.float32)  # [K, F, H]
        self.head_b = torch.tensor(head_b, dtype=torch.float32)  # [K, F]

    def scores(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        k = len(self.names)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), max(1, batch_size // k)):
                chunk = texts[start:start + max(1, batch_size // k)]
                rep = [t for t in chunk for _ in range(k)]
                names = self.names * len(chunk) if k > 1 else None
                emb = encode_batch(self.model, self.tok, rep, self.params.max_length, names)
                emb = emb.view(len(chunk), k, -1)
                out.append((torch.einsum("nkh,kfh->nkf", emb, self.head_w) + self.head_b).numpy())
        return np.concatenate(out) if out else np.zeros((0, k, self.head_w.shape[1]))
