"""The fake ComfyUI's insides: prompt validation as ComfyUI does it, and a small evaluation engine.

Validation follows ComfyUI's ``execution.validate_prompt``/``validate_inputs`` (v0.3.64) and yields its
exact error bodies. The engine walks the graph in dependency order, passes values along links and
calls an executor per node class; tests plug in their own (``executors={"KSampler": fn}``).

An executor is ``fn(inputs: dict, ctx: NodeContext) -> tuple | dict | Any``: ``inputs`` has links
resolved to upstream values; return a tuple of outputs (one per output slot), a dict
``{"result": tuple, "ui": {...}}`` as ComfyUI nodes do, or a single value for one-output nodes. It
may be a coroutine function. Values used by the default executors:

- LATENT: ``{"samples": np.ndarray [B, 4, H/8, W/8] float32}``
- IMAGE: ``np.ndarray [B, H, W, 3] float32 in [0, 1]``
- CONDITIONING: ``{"text": str, "vec": np.ndarray [4]}``; NOISE: ``{"seed": int}``; SIGMAS: ``np.ndarray``
- MODEL / CLIP / VAE and anything else: ``{"type", "name", "patches"}`` placeholders.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SAMPLER_CLASSES = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
# Loader inputs whose combo lists ComfyUI builds from a model folder.
MODEL_INPUTS = {
    "ckpt_name": "checkpoints", "lora_name": "loras", "vae_name": "vae", "unet_name": "diffusion_models",
    "clip_name": "text_encoders", "clip_name1": "text_encoders", "clip_name2": "text_encoders",
    "clip_name3": "text_encoders", "control_net_name": "controlnet", "upscale_model": "upscale_models",
    "style_model_name": "style_models", "gligen_name": "gligen",
}
MODEL_INPUT_BY_CLASS = {("UpscaleModelLoader", "model_name"): "upscale_models",
                        ("CLIPVisionLoader", "clip_name"): "clip_vision"}


class ExecutionFailure(Exception):
    """Raised by an executor to make the node fail with a given exception type name."""

    def __init__(self, message: str, exception_type: str = "RuntimeError"):
        super().__init__(message)
        self.exception_type = exception_type


@dataclass
class NodeContext:
    node_id: str
    class_type: str
    prompt_id: str
    graph: dict[str, Any]
    schema: dict[str, Any]
    output_dir: Any = None
    temp_dir: Any = None
    input_dir: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- validation
def _input_info(schema: dict[str, Any], name: str) -> tuple[Any, str, dict[str, Any]] | None:
    for cat in ("required", "optional"):
        spec = (schema.get("input", {}).get(cat) or {}).get(name)
        if spec is not None:
            itype = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if itype == "COMBO" and "options" in opts:
                itype = list(opts["options"])
            return itype, cat, opts
    return None


def _type_ok(received: str, expected: Any) -> bool:
    if isinstance(expected, list) or received == expected or "*" in (received, expected):
        return True
    if isinstance(expected, str) and isinstance(received, str):
        return bool(set(received.split(",")) & set(expected.split(",")))
    return False


def _validate_node(prompt: dict[str, Any], nid: str, info: dict[str, Any], validated: dict[str, Any]) -> tuple:
    if nid in validated:
        return validated[nid]
    node = prompt[nid]
    inputs = node.get("inputs", {})
    schema = info[node["class_type"]]
    names = list((schema.get("input", {}).get("required") or {})) + list(schema.get("input", {}).get("optional") or {})
    errors: list[dict[str, Any]] = []
    valid = True
    for x in names:
        itype, cat, opts = _input_info(schema, x)  # type: ignore[misc]
        cfg = [itype if not isinstance(itype, list) else itype, opts]
        if x not in inputs:
            if cat == "required":
                errors.append({"type": "required_input_missing", "message": "Required input is missing",
                               "details": f"{x}", "extra_info": {"input_name": x}})
            continue
        val = inputs[x]
        if isinstance(val, list):
            if len(val) != 2:
                errors.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of "
                               "[node_id, slot_index]", "details": f"{x}",
                               "extra_info": {"input_name": x, "input_config": cfg, "received_value": val}})
                continue
            o_id = str(val[0])
            o_cls = prompt[o_id]["class_type"]  # KeyError / IndexError propagate, as in ComfyUI
            outs = info[o_cls]["output"]
            if not isinstance(val[1], int) or not -len(outs) <= val[1] < len(outs):
                raise IndexError("tuple index out of range")  # RETURN_TYPES is a tuple in ComfyUI
            received = outs[val[1]]
            if not _type_ok(received, itype):
                errors.append({"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                               "details": f"{x}, received_type({received}) mismatch input_type({itype})",
                               "extra_info": {"input_name": x, "input_config": cfg, "received_type": received,
                                              "linked_node": val}})
                continue
            try:
                r = _validate_node(prompt, o_id, info, validated)
                if r[0] is False:
                    valid = False
            except Exception as ex:  # noqa: BLE001 - mirrors ComfyUI
                valid = False
                validated[o_id] = (False, [{
                    "type": "exception_during_inner_validation", "message": "Exception when validating inner node",
                    "details": str(ex), "extra_info": {"input_name": x, "input_config": cfg,
                                                       "exception_message": str(ex),
                                                       "exception_type": type(ex).__name__,
                                                       "traceback": ["  File \"execution.py\", in validate_inputs\n"],
                                                       "linked_node": val}}], o_id)
            continue
        try:
            if itype == "INT":
                val = int(val)
            elif itype == "FLOAT":
                val = float(val)
            elif itype == "STRING":
                val = str(val)
            elif itype == "BOOLEAN":
                val = bool(val)
        except (TypeError, ValueError) as ex:
            errors.append({"type": "invalid_input_type", "message": f"Failed to convert an input value to a {itype} "
                           "value", "details": f"{x}, {val}, {ex}", "extra_info": {
                               "input_name": x, "input_config": cfg, "received_value": val,
                               "exception_message": str(ex)}})
            continue
        if "min" in opts and val < opts["min"]:
            errors.append({"type": "value_smaller_than_min", "message": f"Value {val} smaller than min of "
                           f"{opts['min']}", "details": f"{x}", "extra_info": {
                               "input_name": x, "input_config": cfg, "received_value": val}})
            continue
        if "max" in opts and val > opts["max"]:
            errors.append({"type": "value_bigger_than_max", "message": f"Value {val} bigger than max of "
                           f"{opts['max']}", "details": f"{x}", "extra_info": {
                               "input_name": x, "input_config": cfg, "received_value": val}})
            continue
        if isinstance(itype, list) and val not in itype:
            big = len(itype) > 20
            errors.append({"type": "value_not_in_list", "message": "Value not in list",
                           "details": f"{x}: '{val}' not in {'(list of length %d)' % len(itype) if big else itype}",
                           "extra_info": {"input_name": x, "input_config": None if big else cfg,
                                          "received_value": val}})
    ret = (False, errors, nid) if errors or not valid else (True, [], nid)
    validated[nid] = ret
    return ret


def validate_prompt(prompt: Any, info: dict[str, Any]) -> tuple[bool, dict | None, list[str], dict[str, Any]]:
    """``(ok, error, good_outputs, node_errors)`` exactly as ComfyUI's ``validate_prompt`` returns them."""
    outputs = []
    for x, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return False, {"type": "invalid_prompt", "message": "Cannot execute because a node is missing the "
                           "class_type property.", "details": f"Node ID '#{x}'", "extra_info": {}}, [], {}
        if node["class_type"] not in info:
            return False, {"type": "invalid_prompt", "message": f"Cannot execute because node {node['class_type']} "
                           "does not exist.", "details": f"Node ID '#{x}'", "extra_info": {}}, [], {}
        if info[node["class_type"]].get("output_node") is True:
            outputs.append(x)
    if not outputs:
        return False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                       "extra_info": {}}, [], {}
    good: list[str] = []
    errors: list[tuple[str, list]] = []
    node_errors: dict[str, Any] = {}
    validated: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = _validate_node(prompt, o, info, validated)
        except Exception as ex:  # noqa: BLE001 - mirrors ComfyUI
            valid, reasons = False, [{"type": "exception_during_validation", "message": "Exception when validating "
                                      "node", "details": str(ex), "extra_info": {
                                          "exception_type": type(ex).__name__,
                                          "traceback": ["  File \"execution.py\", in validate_prompt\n"]}}]
            validated[o] = (False, reasons, o)
        if valid:
            good.append(o)
            continue
        errors.append((o, reasons))
        for nid, result in validated.items():
            if result[0] is not True and result[1]:
                entry = node_errors.setdefault(nid, {"errors": result[1], "dependent_outputs": [],
                                                     "class_type": prompt[nid]["class_type"] if nid in prompt else ""})
                entry["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in errors for e in errs)
        return False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": details, "extra_info": {}}, [], node_errors
    return True, None, good, node_errors


# ---------------------------------------------------------------------------------------------- engine helpers
def signature(prompt: dict[str, Any], nid: str, memo: dict[str, str] | None = None) -> str:
    """A node's input signature, upstream included (what ComfyUI's classic cache keys outputs by)."""
    memo = {} if memo is None else memo
    if nid in memo:
        return memo[nid]
    node = prompt[nid]
    parts: dict[str, Any] = {}
    for k, v in sorted(node.get("inputs", {}).items()):
        parts[k] = ["link", signature(prompt, str(v[0]), memo), v[1]] if _is_link(v) else v
    memo[nid] = hashlib.sha256(json.dumps([node["class_type"], parts], sort_keys=True, default=str).encode()
                               ).hexdigest()
    return memo[nid]


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """Dependencies first (depth-first from each output node, inputs in order)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for v in prompt[n].get("inputs", {}).values():
            if _is_link(v):
                visit(str(v[0]))
        order.append(n)

    for o in outputs:
        visit(o)
    return order


def _seed_of(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, default=str).encode()).digest()[:4], "big")


def text_vector(text: str) -> np.ndarray:
    return np.random.default_rng(_seed_of("text", text)).standard_normal(4).astype(np.float32)


def latent_to_image(samples: np.ndarray) -> np.ndarray:
    """The default VAEDecode: [B,4,h,w] latent -> [B,8h,8w,3] image in [0,1], deterministic and smooth."""
    mix = np.array([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]],
                   dtype=np.float32)  # SD1.5's latent2rgb factors
    rgb = np.einsum("bchw,cd->bhwd", samples.astype(np.float32), mix)
    img = 1.0 / (1.0 + np.exp(-2.0 * rgb))
    return np.repeat(np.repeat(img, 8, axis=1), 8, axis=2).astype(np.float32)


def sample_latent(latent: dict[str, Any], seed: int, positive: Any, negative: Any, cfg: float,
                  denoise: float = 1.0) -> dict[str, Any]:
    """Placeholder sampling: seeded noise plus the prompt's vector, so pixels follow seed and prompt."""
    x = np.asarray(latent["samples"], dtype=np.float32)
    noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    pos = _cond_vec(positive)
    neg = _cond_vec(negative)
    guide = (pos + (cfg / 10.0) * (pos - neg)).reshape(1, 4, 1, 1)
    return {**latent, "samples": (1 - denoise) * x + denoise * (0.6 * noise + 0.8 * guide)}


def _cond_vec(c: Any) -> np.ndarray:
    if isinstance(c, dict) and "vec" in c:
        return np.asarray(c["vec"], dtype=np.float32)
    return np.zeros(4, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- default executors
def _ckpt(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    name = str(inputs.get("ckpt_name", ""))
    if name.startswith("broken"):
        raise ExecutionFailure("Error while deserializing header: header too large\n",
                               "safetensors._safetensors_rust.SafetensorError")
    return ({"type": "MODEL", "name": name, "patches": []}, {"type": "CLIP", "name": name, "patches": []},
            {"type": "VAE", "name": name})


def _lora(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    patch = [inputs.get("lora_name"), inputs.get("strength_model", 1.0)]
    model = dict(inputs["model"], patches=[*inputs["model"].get("patches", []), patch])
    if "clip" in inputs:
        return model, dict(inputs["clip"], patches=[*inputs["clip"].get("patches", []), patch])
    return (model,)


def _encode(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    text = str(inputs.get("text", inputs.get("text_g", "")))
    return ({"text": text, "vec": text_vector(text)},)


def _empty_latent(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    b, w, h = int(inputs.get("batch_size", 1)), int(inputs.get("width", 512)), int(inputs.get("height", 512))
    return ({"samples": np.zeros((b, 4, max(h // 8, 1), max(w // 8, 1)), dtype=np.float32)},)


def _ksampler(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    seed = int(inputs.get("seed", inputs.get("noise_seed", 0)))
    return (sample_latent(inputs["latent_image"], seed, inputs.get("positive"), inputs.get("negative"),
                          float(inputs.get("cfg", 7.0)), float(inputs.get("denoise", 1.0))),)


def _custom_advanced(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    noise = inputs.get("noise") or {}
    guider = inputs.get("guider") or {}
    out = sample_latent(inputs["latent_image"], int(noise.get("seed", 0)), guider.get("positive"),
                        guider.get("negative"), float(guider.get("cfg", 1.0)))
    return out, out


def _decode(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    return (latent_to_image(np.asarray(inputs["samples"]["samples"])),)


def _empty_image(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    b, w, h = int(inputs.get("batch_size", 1)), int(inputs.get("width", 512)), int(inputs.get("height", 512))
    color = int(inputs.get("color", 0))
    rgb = np.array([(color >> 16) & 255, (color >> 8) & 255, color & 255], dtype=np.float32) / 255.0
    return (np.broadcast_to(rgb, (b, h, w, 3)).astype(np.float32).copy(),)


def _image_scale(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    img = np.asarray(inputs["image"])
    w, h = int(inputs.get("width", img.shape[2])), int(inputs.get("height", img.shape[1]))
    w, h = w or img.shape[2], h or img.shape[1]
    ys = (np.arange(h) * img.shape[1] // h).clip(0, img.shape[1] - 1)
    xs = (np.arange(w) * img.shape[2] // w).clip(0, img.shape[2] - 1)
    return (img[:, ys][:, :, xs],)


def _guider(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    return ({"type": "GUIDER", "positive": inputs.get("positive", inputs.get("conditioning")),
             "negative": inputs.get("negative"), "cfg": inputs.get("cfg", 1.0)},)


def _scheduler(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    return (np.linspace(14.6, 0.0, int(inputs.get("steps", 20)) + 1, dtype=np.float32),)


def _load_image(inputs: dict[str, Any], ctx: NodeContext) -> tuple:
    from PIL import Image

    with Image.open(Path(ctx.input_dir) / str(inputs["image"])) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    return rgba[None, :, :, :3].copy(), 1.0 - rgba[None, :, :, 3]


DEFAULT_EXECUTORS: dict[str, Callable[..., Any]] = {
    "CheckpointLoaderSimple": _ckpt, "LoraLoader": _lora, "LoraLoaderModelOnly": _lora,
    "CLIPTextEncode": _encode, "CLIPTextEncodeSDXL": _encode, "EmptyLatentImage": _empty_latent,
    "EmptySD3LatentImage": _empty_latent, "KSampler": _ksampler, "KSamplerAdvanced": _ksampler,
    "SamplerCustomAdvanced": _custom_advanced, "VAEDecode": _decode, "VAEDecodeTiled": _decode,
    "EmptyImage": _empty_image, "ImageScale": _image_scale, "RandomNoise": lambda i, c: ({"seed": i["noise_seed"]},),
    "LoadImage": _load_image, "CFGGuider": _guider, "BasicGuider": _guider, "BasicScheduler": _scheduler,
}


def default_output(class_type: str, inputs: dict[str, Any], schema: dict[str, Any]) -> tuple:
    """Any other node: pass through an input of the same type, else a placeholder per output slot."""
    outs = []
    for otype in schema.get("output", []):
        same = [v for k, v in inputs.items() if _looks_like(v, otype)]
        outs.append(same[0] if same else {"type": otype, "name": class_type, "patches": []})
    return tuple(outs)


def _looks_like(v: Any, otype: str) -> bool:
    if otype == "IMAGE":
        return isinstance(v, np.ndarray) and v.ndim == 4 and v.shape[-1] == 3
    if otype == "LATENT":
        return isinstance(v, dict) and "samples" in v
    if otype == "SIGMAS":
        return isinstance(v, np.ndarray) and v.ndim == 1
    return isinstance(v, dict) and v.get("type") == otype


def sampler_steps(class_type: str, inputs: dict[str, Any]) -> int:
    if class_type in ("KSampler", "KSamplerAdvanced", "SamplerCustom"):
        return int(inputs.get("steps", 1))
    if class_type == "SamplerCustomAdvanced":
        sig = inputs.get("sigmas")
        return max(len(sig) - 1, 1) if isinstance(sig, np.ndarray) else 1
    return 0
