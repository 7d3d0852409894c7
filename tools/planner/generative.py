"""ComfyGen-FT, generative form (the paper's recipe): LoRA on a causal LM that, given a prompt and a target
score, emits the id of the flow that reached that score.

Training text per triplet::

    Prompt: <prompt>
    Score: <score, normalised to [0, 1] over the training file>
    Flow: <flow id><eos>

The loss covers only the flow id and eos. At inference the planner asks with a high target score (the paper
uses one near the top of the training distribution) and ranks the known flow ids by their log-likelihood
(a constrained decode: the answer is always a real flow). Paper settings: one epoch, LoRA rank 16, lr 2e-4.

    python -m comfygen.tools.planner.generative --triplets TRAIN.csv --model meta-llama/Llama-3.1-8B \\
        --out runs/ft-8b [--bf16] [--epochs 1] [--lora-r 16] [--lr 2e-4]

Needs a GPU for real models; ``tiny=True`` builds a random 2-layer Llama for tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data import load_triplets

logger = logging.getLogger(__name__)


@dataclass
class GenerativeConfig:
    triplets: str = ""
    model: str = "meta-llama/Llama-3.1-8B"
    out: str = "comfygen-ft-generative"
    epochs: float = 1.0
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    max_length: int = 256
    bf16: bool = False
    seed: int = 0
    target_score: float = 0.9
    tiny: bool = False  # random tiny Llama + the bundled MiniLM tokenizer (tests, smoke runs)
    max_steps: int | None = None


def format_example(prompt: str, score: float) -> str:
    return f"Prompt: {prompt.strip()}\nScore: {score:.3f}\nFlow: "


def load_model_and_tokenizer(cfg: GenerativeConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.tiny:
        from transformers import LlamaConfig, LlamaForCausalLM

        from .encoder import load_tokenizer

        tok = load_tokenizer()
        torch.manual_seed(cfg.seed)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                                             eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id))
        return model, tok
    tok = AutoTokenizer.from_pretrained(cfg.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tok


def eos_id(tok: Any) -> int:
    return tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id


def encode_pair(tok: Any, context: str, answer: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the context: only the answer is learned)."""
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    ans = tok(answer, add_special_tokens=False)["input_ids"] + [eos_id(tok)]
    ctx = ctx[-max(1, max_length - len(ans)):]
    return ctx + ans, [-100] * len(ctx) + ans


def main(cfg: GenerativeConfig) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    table = load_triplets(cfg.triplets)
    lo, hi = float(table.scores[table.mask].min()), float(table.scores[table.mask].max())
    span = max(hi - lo, 1e-9)
    examples = [(format_example(r["prompt"], (float(r["score"]) - lo) / span), str(r["flow"]))
                for r in table.to_rows()]
    model, tok = load_model_and_tokenizer(cfg)
    model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                             target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    device = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    steps = max(1, math.ceil(cfg.epochs * len(examples) / (cfg.batch_size * cfg.grad_accum)))
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos_id(tok)
    order: list[int] = []
    model.train()
    losses = []
    for step in range(steps):
        for _ in range(cfg.grad_accum):
            if len(order) < cfg.batch_size:
                order += random.sample(range(len(examples)), len(examples))
            batch, order = order[:cfg.batch_size], order[cfg.batch_size:]
            pairs = [encode_pair(tok, *examples[i], cfg.max_length) for i in batch]
            width = max(len(ids) for ids, _ in pairs)
            ids = torch.tensor([a + [pad] * (width - len(a)) for a, _ in pairs], device=device)
            labels = torch.tensor([b + [-100] * (width - len(b)) for _, b in pairs], device=device)
            attn = torch.tensor([[1] * len(a) + [0] * (width - len(a)) for a, _ in pairs], device=device)
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss / cfg.grad_accum
            loss.backward()
            losses.append(float(loss) * cfg.grad_accum)
        opt.step()
        opt.zero_grad()
        if step % 50 == 0:
            logger.info("step %d/%d loss %.4f", step + 1, steps, losses[-1])
    out = Path(cfg.out)
    model.save_pretrained(str(out / "adapter"))
    meta = {"config": asdict(cfg), "flows": table.flows, "score_min": lo, "score_max": hi, "steps": steps,
            "final_loss": losses[-1], "first_loss": losses[0]}
    (out / "generative.json").write_text(json.dumps(meta, indent=1))
    return {"model": model, "tokenizer": tok, **meta}


def rank_flows(model: Any, tok: Any, flows: list[str], prompt: str, target_score: float,
               max_length: int = 256) -> list[tuple[str, float]]:
    """Flows ranked by log p(flow id + eos | prompt, target score)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    context = format_example(prompt, target_score)
    pairs = [encode_pair(tok, context, f, max_length) for f in flows]
    width = max(len(a) for a, _ in pairs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos_id(tok)
    ids = torch.tensor([a + [pad] * (width - len(a)) for a, _ in pairs], device=device)
    attn = torch.tensor([[1] * len(a) + [0] * (width - len(a)) for a, _ in pairs], device=device)
    labels = torch.tensor([b + [-100] * (width - len(b)) for _, b in pairs], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
    logp = torch.log_softmax(logits.float(), -1)
    tgt = labels[:, 1:]
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (tgt != -100)
    scores = picked.sum(-1).tolist()
    return sorted(zip(flows, scores), key=lambda t: -t[1])


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="LoRA-tune a causal LM to emit a flow for (prompt, target score).")
    defaults = GenerativeConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            ap.add_argument(flag, action="store_true", default=value)
        elif isinstance(value, list):
            ap.add_argument(flag, nargs="+", default=value)
        elif value is None:
            ap.add_argument(flag, type=int, default=None)
        else:
            ap.add_argument(flag, type=type(value), default=value, required=name == "triplets")
    return ap


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    args = make_parser().parse_args()
    result = main(GenerativeConfig(**vars(args)))
    print(json.dumps({k: v for k, v in result.items() if k not in ("model", "tokenizer", "config")}, indent=1))
