"""The scorer interface and what every scorer shares: device choice, PIL preprocessing, weight lookup.

A scorer maps ``(images, prompts)`` to one float per image (higher is better). Models load lazily on
the first ``score`` call (or an explicit ``load()``), run under ``torch.inference_mode`` in batches,
in fp16 on a GPU and fp32 on the CPU (bf16 autocast is several times slower on CPUs without bf16
units). ``compile=True`` wraps the model with ``torch.compile``; :meth:`Scorer.smash` applies Pruna's
``torch_compile`` when the optional ``pruna`` package is installed.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from functools import lru_cache
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import nn

from ..errors import ScoringError, WeightsMissing
from .preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, resize_center_crop, resize_long_side_pad  # noqa: F401

log = logging.getLogger(__name__)


def pick_device(preference: str | None = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU when present (then Apple MPS), else the CPU."""
    pref = (preference or "auto").strip().lower()
    if pref != "auto":
        return torch.device(pref)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """fp16 on accelerators, fp32 on the CPU."""
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


# ---------------------------------------------------------------- preprocessing (one rule per original: preprocess.py)

def stack(images: Sequence[Image.Image], fn: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    return torch.stack([fn(im) for im in images])


# ---------------------------------------------------------------- shared heads

class RewardMLP(nn.Module):
    """The 5-linear head of ImageReward and of the LAION improved aesthetic predictor.

    ``layers.{0,2,4,6,7}`` are Linear layers (dims ``d -> 1024 -> 128 -> 64 -> 16 -> 1``) with Dropouts
    between them and no activations, exactly the keys of both official checkpoints.
    """

    def __init__(self, input_size: int, hidden: Sequence[int] = (1024, 128, 64, 16)):
        super().__init__()
        h1, h2, h3, h4 = hidden
        self.layers = nn.Sequential(
            nn.Linear(input_size, h1), nn.Dropout(0.2), nn.Linear(h1, h2), nn.Dropout(0.2),
            nn.Linear(h2, h3), nn.Dropout(0.1), nn.Linear(h3, h4), nn.Linear(h4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# ---------------------------------------------------------------- weights

def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub takes a TCP connection (asked once per process).

    Without a network, ``huggingface_hub`` retries each missing file with back-off for about 25 s before it
    gives up; asking once lets every scorer go straight to the local cache instead. Behind a proxy the
    direct connection says nothing, so the hub is then assumed reachable."""
    if hf_offline():
        return False
    if any(os.environ.get(k) for k in PROXY_VARS):
        return True
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        log.info("the Hugging Face hub (%s) is unreachable: model files come from the local cache only",
                    url.hostname)
        return False


def cache_only_note() -> str:
    if hf_offline():
        return " (HF_HUB_OFFLINE=1 is set: only the local cache is used)"
    if not hub_reachable():
        return " (the Hugging Face hub is unreachable from here: only the local cache was looked in)"
    return ""


def resolve_file(*, filename: str, repo_id: str, setting: str, local: str | Path | None = None,
                 weights_dir: Path | None = None, what: str) -> Path:
    """Find a checkpoint file: an explicit path, then ``weights_dir``, then the Hugging Face cache/hub.

    ``local`` may be a file, or a directory holding ``filename``. The hub lookup goes through
    ``hf_hub_download`` (so ``HF_HUB_OFFLINE=1`` means: cache only). Raises :class:`WeightsMissing`
    naming the file, the HF id and the setting to set.
    """
    tried: list[str] = []
    if local:
        p = Path(local).expanduser()
        cand = p / filename if p.is_dir() else p
        if cand.is_file():
            return cand
        tried.append(str(cand))
    if weights_dir:
        for cand in (Path(weights_dir) / filename, Path(weights_dir) / repo_id.split("/")[-1] / filename):
            if cand.is_file():
                return cand
            tried.append(str(cand))
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename, local_files_only=not hub_reachable()))
    except Exception as e:  # offline, not cached, no network, gated repo...
        tried.append(f"hf://{repo_id}/{filename} ({type(e).__name__})")
        raise WeightsMissing(
            f"{what}: weight file {filename!r} not found (tried: {', '.join(tried)})",
            hint=(f"download it with `huggingface-cli download {repo_id} {filename}`" + cache_only_note()
                  + f", or set {setting} to a local copy, or put it in COMFYGEN_WEIGHTS_DIR"),
            details={"file": filename, "repo_id": repo_id, "setting": setting, "tried": tried},
        ) from e


def resolve_pretrained(source: str, *, weights_dir: Path | None, setting: str) -> str:
    """A model directory or HF id for ``from_pretrained``: a local path wins, then ``weights_dir/<name>``."""
    p = Path(source).expanduser()
    if p.exists():
        return str(p)
    if weights_dir:
        cand = Path(weights_dir) / source.split("/")[-1]
        if cand.is_dir():
            return str(cand)
    return source


M = TypeVar("M")  # a transformers model class


def from_pretrained(cls: type[M], source: str, *, setting: str, what: str, **kwargs: Any) -> M:
    """``cls.from_pretrained(source)`` with missing weights turned into :class:`WeightsMissing`, and a
    checkpoint that leaves weights uninitialised (missing keys) turned into :class:`ScoringError`."""
    if not Path(source).expanduser().exists() and not hub_reachable():
        kwargs = {"local_files_only": True, **kwargs}
    try:
        model, info = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        raise WeightsMissing(
            f"{what}: cannot load {source!r} ({type(e).__name__})",
            hint=(f"download it with `huggingface-cli download {source}`" + cache_only_note()
                  + f", or set {setting} to a local directory"),
            details={"repo_id": source, "setting": setting},
        ) from e
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        raise ScoringError(f"{what}: {source!r} does not match the model class (missing {missing[:5]}, "
                           f"mismatched {mismatched[:3]})", hint=f"point {setting} at the right checkpoint")
    return model


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (OpenAI publishes its CLIP weights as one): a zip with ``constants.pkl``/``code/``."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """``.safetensors``, a torch pickle (weights only) or a TorchScript archive (its state dict); unwraps
    ``{'state_dict': ...}`` and ``module.``. A file that is none of these is a :class:`ScoringError` naming it."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        elif is_torchscript(path):
            sd = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ScoringError(f"cannot read checkpoint {path} ({type(e).__name__}: {str(e)[:200]})",
                           hint="point the setting at a state-dict file (.pt/.pth/.bin/.safetensors) or a TorchScript "
                                "archive of the scorer's model") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ScoringError(f"{path} does not hold a state dict", hint="point the setting at the official checkpoint")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_strict(module: nn.Module, sd: dict[str, torch.Tensor], what: str, *, ignore: Sequence[str] = ()) -> None:
    """``load_state_dict`` that reports missing/unexpected keys as a :class:`ScoringError`."""
    sd = {k: v for k, v in sd.items() if not any(k == i or k.endswith("." + i) for i in ignore)}
    result = module.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise ScoringError(
            f"{what}: checkpoint does not match the architecture (missing {missing[:5]}{'...' if len(missing) > 5 else ''},"
            f" unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})",
            hint="point the setting at the official checkpoint file for this scorer",
            details={"missing": missing, "unexpected": unexpected},
        )


# ---------------------------------------------------------------- the interface

class Scorer:
    """Base class. Subclasses set ``name``/``description`` and implement ``_build`` and ``_score_batch``."""

    name: str = "scorer"
    description: str = ""
    #: what the raw number means, for listings ("cosine", "reward", "1-10"...)
    unit: str = ""

    def __init__(self, *, device: str | torch.device | None = "auto", dtype: torch.dtype | None = None,
                 batch_size: int = 8, compile: bool = False, tiny: bool = False):
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype = dtype or pick_dtype(self.device)
        self.batch_size = max(1, int(batch_size))
        self.compile = compile
        self.tiny = tiny
        self._loaded = False

    # -- lifecycle
    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> Scorer:
        """Build the model and load weights (idempotent). Raises WeightsMissing / ScoringError."""
        if not self._loaded:
            self._build()
            self._loaded = True
            if self.compile:
                self._apply_compile()
        return self

    def _build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """The nn.Modules this scorer runs (for compile/smash and parameter counts)."""
        return {}

    def _apply_compile(self) -> None:
        for attr in self.modules():
            setattr(self, attr, torch.compile(getattr(self, attr)))  # dynamic shapes after a 2nd batch size

    def smash(self, algorithms: Sequence[str] = ("torch_compile",), **hyperparameters: Any) -> Scorer:
        """Speed up the loaded modules with Pruna (``pip install pruna``); raises when it is not installed.

        ``algorithms`` are Pruna algorithm names (``SmashConfig(["torch_compile"])``); ``hyperparameters``
        are prefixed settings such as ``torch_compile_backend="openvino"``. ``pruna.smash`` returns a
        ``PrunaModel`` whose ``__call__`` runs ``.model`` under ``no_grad``; the scorers already run under
        ``inference_mode``, so the inner module replaces each attribute and is called exactly as before.
        Pruna's telemetry is switched off unless ``PRUNA_METRICS_ENABLED`` is set.
        """
        os.environ.setdefault("PRUNA_METRICS_ENABLED", "false")  # read when pruna is imported
        try:
            from pruna import SmashConfig, smash  # type: ignore[import-not-found]
        except Exception as e:
            raise ScoringError("pruna is not importable", hint="install it in its own environment: pip install pruna "
                               "(set PRUNA_METRICS_ENABLED=false), or use compile=True (torch.compile)") from e
        self.load()
        for attr, mod in self.modules().items():
            cfg = SmashConfig(list(algorithms), device=str(self.device))
            if hyperparameters:
                cfg.add(dict(hyperparameters))
            smashed = smash(mod, cfg)
            setattr(self, attr, getattr(smashed, "model", smashed))
        return self

    def param_count(self) -> int:
        self.load()
        return sum(p.numel() for m in self.modules().values() for p in m.parameters())

    # -- scoring
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | str) -> torch.Tensor:
        """One float32 score per image (on the CPU), computed in batches of ``batch_size``.

        ``prompts`` is one prompt per image, or a single string used for all of them.
        """
        if isinstance(prompts, str):
            prompts = [prompts] * len(images)
        if len(prompts) != len(images):
            raise ScoringError(f"{self.name}: {len(images)} images but {len(prompts)} prompts",
                               hint="pass one prompt per image, or a single prompt string")
        if not images:
            return torch.zeros(0, dtype=torch.float32)
        self.load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                chunk = self._score_batch(list(images[i:i + self.batch_size]), list(prompts[i:i + self.batch_size]))
                out.append(chunk.detach().float().reshape(-1).cpu())
        scores = torch.cat(out)
        if not torch.isfinite(scores).all():
            log.warning("%s produced non-finite scores: %s", self.name, scores.tolist())
        return scores

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _pixels(self, images: list[Image.Image], fn: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
        return stack(images, fn).to(self.device, self.dtype)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "unit": self.unit, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "batch_size": self.batch_size,
                "loaded": self._loaded, "tiny": self.tiny}


def seeded(seed: int) -> torch.Generator:
    g = torch.Generator().manual_seed(seed)
    return g


def init_random_(module: nn.Module, seed: int) -> nn.Module:
    """Deterministic random weights for tiny/test models (independent of the global RNG state).

    Matrices get N(0, 1/fan_in) so activations keep unit scale through the heads, embeddings N(0, 1),
    norms 1 +- 0.1; scores of different images then differ visibly even in 2-layer models.
    """
    g = seeded(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith("logit_scale"):
                p.fill_(math.log(1 / 0.07))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("weight"):  # layer norms
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return module
