"""The torch-free serving path (ONNX Runtime) against the torch path it replaces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from comfygen.tools.planner import Planner, bundled_dir
from comfygen.tools.planner.onnx_export import ONNX_FILE, export_planner
from comfygen.tools.planner.runtime import OnnxEnsemble, encoder_graph, planner_export, runtime_for, tokenizer

# a fixed test set: short and long, punctuation, accents, CJK, emoji, numbers, over-long (truncated)
PROMPTS = [
    "a red fox in the snow", "A photo of an astronaut riding a horse on Mars, 4k, trending on artstation",
    "x", "Ünïcödé café naïve — “quotes” and 'apostrophes'", "東京の夜景、ネオン", "a cat 🐱 wearing sunglasses 😎",
    "three red apples to the left of a blue bowl", "a neon sign that says OPEN", "portrait of an old fisherman",
    "a cozy living room with a fireplace", "isometric 3d render of a tiny island with a lighthouse",
    "a bowl of ramen, studio lighting, 85mm", "anime girl with silver hair under cherry blossoms",
    "a sports car drifting on a wet track at night", "an oil painting of a stormy sea in the style of Turner",
    "logo for a coffee shop called BEAN THERE", "macro shot of a dew drop on a leaf", "two dogs playing chess",
    "a medieval castle on a cliff, dramatic clouds", "a watercolor map of an imaginary kingdom",
    "HDR photo of New York skyline at dusk", "a robot chef flipping pancakes in a diner kitchen",
    "an astronaut " * 40, "   leading and trailing spaces   ", "numbers 1234567890 and symbols #$%&*()",
    "a dark gothic cathedral interior lit by candles", "a fashion model in a red dress on a runway",
    "pixel art of a knight fighting a dragon", "a plate of sushi on a wooden table", "A B C D E F G",
]


def _torch_scores(path: Path, texts: list[str]) -> np.ndarray:
    from comfygen.tools.planner.artifact import load_artifact
    from comfygen.tools.planner.net import EnsembleNet, TrainParams

    config, adapters, head_w, head_b = load_artifact(path)
    known = set(TrainParams.__dataclass_fields__)
    net = EnsembleNet(adapters, head_w, head_b, TrainParams(**{k: v for k, v in config.params.items() if k in known}))
    return net.scores(texts)


def _assert_agrees(path: Path, texts: list[str]) -> None:
    graph = planner_export(path)
    assert graph is not None, f"no up-to-date {ONNX_FILE} in {path}"
    rt = OnnxEnsemble(graph)
    fast = rt.scores(texts)
    ref = _torch_scores(path, texts)
    assert fast.shape == ref.shape
    assert rt.scores([]).shape == (0, *ref.shape[1:])  # as EnsembleNet.scores([])
    assert np.abs(fast - ref).max() <= 1e-4
    planner = Planner.load(path)
    for a, b in zip(ref.mean(1), fast.mean(1)):
        assert planner.choose_index(a) == planner.choose_index(b)
        assert np.argmax(a) == np.argmax(b)


def test_tokenizer_matches_transformers_exactly():
    from comfygen.tools.planner.encoder import load_tokenizer

    ref = load_tokenizer()
    tok = tokenizer(64)
    for batch in ([p] for p in PROMPTS):  # one at a time (no padding) ...
        ids, mask = tok(batch)
        enc = ref(batch, padding=True, truncation=True, max_length=64)
        assert ids.tolist() == enc["input_ids"] and mask.tolist() == enc["attention_mask"]
    ids, mask = tok(PROMPTS)  # ... and as one padded batch
    enc = ref(PROMPTS, padding=True, truncation=True, max_length=64)
    assert ids.tolist() == enc["input_ids"] and mask.tolist() == enc["attention_mask"]
    assert ids.shape[1] == 64  # the long prompt was truncated


def test_bundled_planner_export_agrees_with_torch():
    _assert_agrees(bundled_dir(), PROMPTS)


def test_trained_planner_is_exported_and_agrees(tiny_planner_dir):
    assert (tiny_planner_dir / ONNX_FILE).is_file()  # written by train_planner
    _assert_agrees(tiny_planner_dir, PROMPTS[:12])


def test_any_member_count_and_vocabulary(tmp_path):
    """A random artifact (K=4, F=7, float32, large LoRA factors) exercises every path of the graph."""
    import torch

    from comfygen.tools.planner.artifact import PlannerConfig, save_artifact

    g = torch.Generator().manual_seed(0)
    k, f = 4, 7
    adapters = []
    for _ in range(k):
        state = {}
        for layer in range(6):
            for module in ("query", "value"):
                key = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
                state[f"{key}.lora_A.weight"] = torch.randn(8, 384, generator=g) * 0.05
                state[f"{key}.lora_B.weight"] = torch.randn(384, 8, generator=g) * 0.05
        adapters.append(state)
    flows = [f"f{j}" for j in range(f)]
    config = PlannerConfig(flows=flows, flow_order=flows, mean=0.0, std=1.0, score_min=-3, score_max=3, tau=0.1,
                           members=k, params={"lora_r": 8, "lora_alpha": 16, "max_length": 64})
    save_artifact(tmp_path, config, adapters, np.random.default_rng(0).normal(0, 0.3, (k, f, 384)),
                  np.random.default_rng(1).normal(0, 1, (k, f)))
    export_planner(tmp_path)
    _assert_agrees(tmp_path, PROMPTS)


def test_stale_export_is_not_served(tmp_path, tiny_planner_dir, caplog):
    art = tmp_path / "p"
    shutil.copytree(tiny_planner_dir, art)
    assert planner_export(art) is not None
    cfg = json.loads((art / "config.json").read_text())
    cfg["tau"] = 0.5
    (art / "config.json").write_text(json.dumps(cfg))
    assert planner_export(art) is None  # the artifact changed after the export
    planner = Planner.load(art)
    planner.predict("a small cat in the picture")
    assert planner._torch and "serving with torch" in caplog.text


def test_shared_forward_serves_planner_and_classifier(monkeypatch):
    """The classifier's embedding for a served prompt comes from the planner's graph, whose scores then
    answer the planner from the cache (one forward pass for both)."""
    from comfygen.tools.categorize.fast import OnnxEncoder
    from comfygen.tools.planner.runtime import shared_encoder

    rt = shared_encoder()
    assert rt.members == Planner.load().config.members  # the bundled planner's graph, not the plain encoder
    prompt = "a lighthouse under a violet sky, shared forward test"
    calls = []
    real = rt.session.run
    monkeypatch.setattr(rt.session, "run", lambda *a, **kw: calls.append(1) or real(*a, **kw), raising=False)
    emb = OnnxEncoder()([prompt])
    Planner.load().score_matrix([prompt])
    assert len(calls) == 1
    plain = runtime_for(encoder_graph()).embeddings([prompt])
    assert np.abs(emb - plain).max() <= 1e-5


def test_classifier_onnx_agrees_with_torch(monkeypatch):
    from comfygen.tools.categorize import CategoryClassifier
    from comfygen.tools.categorize.classifier import Encoder
    from comfygen.tools.categorize.classifier import DATA_DIR
    from comfygen.tools.categorize.fast import OnnxEncoder, cached_prototypes

    clf = CategoryClassifier.load()
    monkeypatch.setattr(CategoryClassifier, "_encoder", Encoder())
    ref_proto = Encoder()(clf.prototype_texts())
    clf._proto = ref_proto
    ref = clf.probs(PROMPTS)
    ref_labels = clf.predict_many(PROMPTS)
    fast_clf = CategoryClassifier.load()
    monkeypatch.setattr(CategoryClassifier, "_encoder", OnnxEncoder())
    fast = fast_clf.probs(PROMPTS)
    shipped = cached_prototypes(clf.prototype_texts(), DATA_DIR)
    assert shipped is not None, "prototypes.safetensors is stale: python scripts/build_prototypes.py --out " + str(DATA_DIR)
    assert np.abs(shipped - ref_proto).max() <= 1e-5
    assert np.abs(fast - ref).max() <= 1e-4
    labels = [[c for c, _ in row] for row in fast_clf.predict_many(PROMPTS)]
    assert labels == [[c for c, _ in row] for row in ref_labels]
    for p in PROMPTS[:5]:  # the one-prompt serving call goes through the planner's graph
        assert np.abs(fast_clf.probs([p])[0] - clf.probs([p])[0]).max() <= 1e-4


@pytest.mark.parametrize("name", ["planner.onnx", "encoder.onnx"])
def test_shipped_graphs_are_small_and_carry_no_base_weights(name):
    path = bundled_dir() / name if name == "planner.onnx" else encoder_graph()
    assert path.stat().st_size < 2_000_000  # MiniLM itself (90 MB) comes from the installed package
