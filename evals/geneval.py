"""GenEval-style prompt-alignment scoring (Ghosh et al. 2024) with an open-vocabulary detector.

The verdict logic is a port of GenEval's ``evaluation/evaluate_images.py`` (djghosh13/geneval@af4902f2):

- detections per class: score above ``threshold`` (``counting_threshold`` for counting prompts), highest
  first, at most ``max_objects``, greedy NMS when ``max_overlap`` < 1 (GenEval: 1.0, i.e. off);
- each ``include`` clause needs ``count`` objects of its class; with a ``color``, CLIP must classify at
  least ``count`` of the most confident ones as that colour (10 colours, 3 prompt templates);
  with a ``position`` (e.g. ``["left of", 0]``), every kept object must stand in that relation to every
  object of the target clause, with GenEval's margin: the centre offset shrinks by
  ``position_threshold`` × (sum of both box sizes) per axis before the direction is read;
- each ``exclude`` clause fails when ``count`` or more objects of its class are found;
- the score of a task is the fraction of correct images; "overall" is the mean over the six tasks.

Differences from GenEval, on purpose: the detector is OWLv2 (transformers) queried with GenEval's 80
class names instead of Mask2Former, so there are no instance masks and colours are classified on the
box crop (GenEval's own ``mask is None`` path); CLIP comes from transformers instead of open_clip.
OWLv2's scores are calibrated differently from Mask2Former's, hence the separate :data:`OWLV2_RULES`
(starting values, not calibrated against human labels: see ``evals/geneval_check.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
COLOR_TEMPLATES = ["a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object"]
TASKS: list[tuple[str, str]] = [
    ("single_object", "Single object"), ("two_object", "Two object"), ("counting", "Counting"),
    ("colors", "Colors"), ("position", "Position"), ("color_attr", "Attribute binding"),
]
DEFAULT_DETECTOR = "google/owlv2-base-patch16-ensemble"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # GenEval uses open_clip ViT-L-14 "openai": the same weights

Box = np.ndarray  # [x0, y0, x1, y1] in pixels
Detections = dict[str, list[tuple[Box, float]]]  # class -> [(box, score)], highest score first


class GenEvalRules(BaseModel):
    threshold: float = Field(0.3, description="Minimum detection score.")
    counting_threshold: float = Field(0.9, description="Minimum detection score on counting prompts.")
    max_objects: int = Field(16, description="Most detections kept per class.")
    max_overlap: float = Field(1.0, description="NMS IoU limit within a class; 1.0 turns NMS off.")
    position_threshold: float = Field(0.1, description="Margin, as a fraction of the boxes' sizes, for positions.")


GENEVAL_RULES = GenEvalRules()  # GenEval's values, tuned for Mask2Former
OWLV2_RULES = GenEvalRules(threshold=0.3, counting_threshold=0.5, max_overlap=0.5)


def object_names() -> list[str]:
    text = (resources.files("comfygen.evals") / "data" / "geneval_object_names.txt").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def vocabulary() -> set[str]:
    """Every word GenEval's prompts to the detector and CLIP use (class names, colours, templates)."""
    words = set("a an of the photo object colored".split()) | set(COLORS)
    for name in object_names():
        words |= set(name.split())
    for t in COLOR_TEMPLATES:
        words |= set(re.findall(r"[a-z]+", t.replace("{c}", "").replace("{cls}", "")))
    return words


def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """GenEval's IoU (pixel-inclusive areas, +1)."""
    def area(b: Sequence[float]) -> float:
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)
    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def relative_position(box_a: Sequence[float], box_b: Sequence[float], margin: float = 0.1) -> set[str]:
    """Relations of A to B ("left of", "right of", "above", "below"), factoring in object sizes."""
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - margin * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def select_detections(raw: Detections, tag: str, rules: GenEvalRules = GENEVAL_RULES) -> dict[str, list[Box]]:
    """Thresholds, per-class cap and NMS, as GenEval's ``evaluate_image`` does before judging."""
    thr = rules.counting_threshold if tag == "counting" else rules.threshold
    out: dict[str, list[Box]] = {}
    for cls, dets in raw.items():
        order = sorted((d for d in dets if d[1] > thr), key=lambda d: -d[1])[: rules.max_objects]
        kept: list[Box] = []
        while order:
            best = order.pop(0)
            kept.append(np.asarray(best[0], dtype=np.float64))
            if rules.max_overlap < 1:
                order = [d for d in order if compute_iou(best[0], d[0]) < rules.max_overlap]
        if kept:
            out[cls] = kept
    return out


ColorFn = Callable[[str, list[Box]], list[str]]


def evaluate(detected: dict[str, list[Box]], metadata: dict[str, Any], color_fn: ColorFn | None = None,
             *, position_threshold: float = 0.1) -> tuple[bool, list[str]]:
    """GenEval's verdict for one image: (correct, reasons it failed). ``color_fn(class, boxes)`` returns one
    colour name per box (needed only for prompts with colours)."""
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Box] | None] = []
    for req in metadata.get("include", []):
        cls = req["class"]
        matched = True
        found = detected.get(cls, [])[: req["count"]]
        if len(found) < req["count"]:
            correct = matched = False
            reasons.append(f"expected {cls}>={req['count']}, found {len(found)}")
        else:
            if "color" in req:
                if color_fn is None:
                    raise ValueError("a colour check needs color_fn")
                colors = color_fn(cls, found)
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
                    seen = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    reasons.append(f"expected {req['color']} {cls}>={req['count']}, found "
                                   f"{colors.count(req['color'])} {req['color']}; and {seen}")
            if "position" in req and matched:
                expected_rel, target = req["position"]
                if target >= len(matched_groups) or matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {cls} to be {expected_rel}")
                else:
                    for obj in found:
                        for target_obj in matched_groups[target] or []:
                            rels = relative_position(obj, target_obj, position_threshold)
                            if expected_rel not in rels:
                                correct = matched = False
                                reasons.append(f"expected {cls} {expected_rel} target, found {' and '.join(rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls = req["class"]
        if len(detected.get(cls, [])) >= req["count"]:
            correct = False
            reasons.append(f"expected {cls}<{req['count']}, found {len(detected[cls])}")
    return correct, reasons


class GenEvalResult(BaseModel):
    tag: str
    correct: bool
    reason: str = ""
    detections: dict[str, list[list[float]]] = Field(default_factory=dict, description="Kept boxes per class.")


def geneval_table(rows: Iterable[tuple[str, str, bool]]) -> dict[str, dict[str, float]]:
    """(strategy, tag, correct) rows -> {strategy: {task column: accuracy, ..., "Overall": mean of tasks}}.
    Only tasks with images count towards "Overall" (GenEval's summary does the same)."""
    acc: dict[str, dict[str, list[bool]]] = {}
    for strat, tag, ok in rows:
        acc.setdefault(strat, {}).setdefault(tag, []).append(bool(ok))
    table: dict[str, dict[str, float]] = {}
    for strat, by_tag in acc.items():
        row = {label: float(np.mean(by_tag[tag])) for tag, label in TASKS if tag in by_tag}
        row["Overall"] = float(np.mean(list(row.values()))) if row else float("nan")
        table[strat] = row
    return table


@dataclass
class GenEvalScorer:
    """OWLv2 detector + CLIP colour classifier + GenEval's rules. Build with :meth:`from_pretrained`
    (real weights, HF ids or local paths) or :meth:`tiny` (random weights, for tests and smoke runs)."""

    detector: Any
    det_processor: Any
    clip: Any
    clip_processor: Any
    classnames: list[str]
    rules: GenEvalRules = field(default_factory=lambda: OWLV2_RULES)
    device: str = "cpu"
    query_template: str = "a photo of a {}"
    _color_clf: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pretrained(cls, detector: str = DEFAULT_DETECTOR, clip: str = DEFAULT_CLIP, *, device: str = "auto",
                        rules: GenEvalRules | None = None) -> "GenEvalScorer":
        import torch
        from transformers import AutoProcessor, CLIPModel, Owlv2ForObjectDetection, Owlv2Processor

        from ..tools.errors import WeightsMissing

        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        try:
            det = Owlv2ForObjectDetection.from_pretrained(detector).to(dev).eval()
            det_proc = Owlv2Processor.from_pretrained(detector)
            clip_model = CLIPModel.from_pretrained(clip).to(dev).eval()
            clip_proc = AutoProcessor.from_pretrained(clip)
        except OSError as e:
            raise WeightsMissing(f"could not load GenEval models ({detector}, {clip}): {e}",
                                 hint="run once online to fill the Hugging Face cache, or pass local paths") from e
        return cls(det, det_proc, clip_model, clip_proc, object_names(), rules or OWLV2_RULES, dev)

    @classmethod
    def tiny(cls, seed: int = 0, rules: GenEvalRules | None = None) -> "GenEvalScorer":
        from .geneval_tiny import tiny_clip, tiny_owlv2

        words = vocabulary()
        det, det_proc = tiny_owlv2(words, seed)
        clip_model, clip_proc = tiny_clip(words, seed)
        return cls(det, det_proc, clip_model, clip_proc, object_names(), rules or OWLV2_RULES, "cpu")

    def detect(self, image: Image.Image) -> Detections:
        """All GenEval classes at once (each box gets its best class, like a closed-set detector)."""
        import torch

        image = image.convert("RGB")
        queries = [self.query_template.format(c) for c in self.classnames]
        inputs = self.det_processor(text=[queries], images=image, return_tensors="pt", padding="max_length",
                                    truncation=True, max_length=16)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            out = self.detector(**inputs)
        side = max(image.size)  # OWLv2 pads to a square: boxes come back in the padded frame
        res = self.det_processor.image_processor.post_process_object_detection(
            out, threshold=min(self.rules.threshold, self.rules.counting_threshold), target_sizes=[(side, side)])[0]
        w, h = image.size
        found: Detections = {}
        for box, score, label in zip(res["boxes"].cpu().numpy(), res["scores"].cpu().tolist(), res["labels"].tolist()):
            box = np.clip(box, 0, [w, h, w, h])
            found.setdefault(self.classnames[label], []).append((box, float(score)))
        for dets in found.values():
            dets.sort(key=lambda d: -d[1])
        return found

    def _classifier(self, classname: str) -> Any:
        import torch

        if classname not in self._color_clf:
            weights = []
            for c in COLORS:
                texts = [t.format(c=c, cls=classname) for t in COLOR_TEMPLATES]
                tok = self.clip_processor.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
                with torch.no_grad():
                    emb = self.clip.get_text_features(**{k: v.to(self.device) for k, v in tok.items()})
                emb = _as_tensor(emb)
                emb = emb / emb.norm(dim=-1, keepdim=True)
                mean = emb.mean(dim=0)
                weights.append(mean / mean.norm())
            self._color_clf[classname] = torch.stack(weights, dim=1)
        return self._color_clf[classname]

    def colors(self, image: Image.Image, boxes: list[Box], classname: str) -> list[str]:
        import torch

        image = image.convert("RGB")
        crops = [image.crop(_crop_box(b, image.size)) for b in boxes]
        pix = self.clip_processor.image_processor(images=crops, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.no_grad():
            feats = _as_tensor(self.clip.get_image_features(pixel_values=pix))
        feats = feats / feats.norm(dim=-1, keepdim=True)
        logits = feats @ self._classifier(classname)
        return [COLORS[i] for i in logits.argmax(dim=1).tolist()]

    def evaluate(self, image: Image.Image, metadata: dict[str, Any]) -> GenEvalResult:
        kept = select_detections(self.detect(image), metadata["tag"], self.rules)
        ok, reasons = evaluate(kept, metadata, lambda cls, boxes: self.colors(image, boxes, cls),
                               position_threshold=self.rules.position_threshold)
        return GenEvalResult(tag=metadata["tag"], correct=ok, reason="\n".join(reasons),
                             detections={k: [b.tolist() for b in v] for k, v in kept.items()})


def _crop_box(b: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer crop inside the image, at least 1 px each way (a degenerate box must not crash CLIP)."""
    w, h = size
    x0, y0 = int(max(0, min(w - 1, np.floor(b[0])))), int(max(0, min(h - 1, np.floor(b[1]))))
    x1, y1 = int(min(w, max(x0 + 1, np.ceil(b[2])))), int(min(h, max(y0 + 1, np.ceil(b[3]))))
    return x0, y0, x1, y1


def _as_tensor(x: Any) -> Any:
    # transformers 5 may return a model output instead of a bare tensor from get_*_features
    if hasattr(x, "pooler_output") and not hasattr(x, "norm"):
        return x.pooler_output
    return x
