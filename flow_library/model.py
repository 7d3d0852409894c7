"""The typed flow model: a ComfyUI API-format graph plus what an agent needs to know about it.

A flow file (``flow_library/flows/**/*.json``) holds one base flow, or a list of them, as
``Flow.model_dump(mode="json")``. Graphs are ComfyUI **API format**: ``{node_id: {"class_type", "inputs"}}``
where a link is ``[source_node_id, output_index]``.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Graph = dict[str, dict[str, Any]]


class Family(StrEnum):
    SD15 = "sd15"
    SD21 = "sd21"
    SDXL = "sdxl"
    SDXL_REFINER = "sdxl-refiner"
    SSD1B = "ssd1b"
    PLAYGROUND = "playground"
    SD3 = "sd3"
    FLUX = "flux"
    CASCADE = "cascade"
    PIXART = "pixart"  # PixArt-alpha and PixArt-Sigma (T5 text encoder, 4-channel latents)
    QWEN_IMAGE = "qwen-image"  # 16-channel latents
    HIDREAM = "hidream"  # 16-channel latents
    LUMINA2 = "lumina2"  # Lumina Image 2.0 / Neta (16-channel latents)
    CHROMA = "chroma"  # FLUX-schnell derived, 16-channel latents
    OMNIGEN2 = "omnigen2"  # 16-channel latents
    AURAFLOW = "auraflow"
    HUNYUAN_DIT = "hunyuan-dit"
    KOLORS = "kolors"  # SDXL-architecture UNet with a ChatGLM text encoder (node pack)
    DEEPFLOYD = "deepfloyd"
    EXTERNAL = "external"  # API-only or research models: kept as training signal, not executable locally


# Families whose latents have 16 channels (SD3-style VAE); the rest use 4. Cascade's stage C uses its own.
LATENT16 = frozenset({Family.SD3, Family.FLUX, Family.QWEN_IMAGE, Family.HIDREAM, Family.LUMINA2, Family.CHROMA,
                      Family.OMNIGEN2})


def latent_channels(family: Family | str) -> int:
    """Channels of the family's latent image (what noise search must draw)."""
    return 16 if Family(family) in LATENT16 else 4


class SlotRef(BaseModel):
    """One place in the graph: ``graph[node][input]``."""

    model_config = ConfigDict(frozen=True)
    node: str
    input: str


class Slots(BaseModel):
    """Where the per-run values go. Each slot can feed several nodes (e.g. base + refiner samplers)."""

    positive: list[SlotRef] = Field(default_factory=list)
    negative: list[SlotRef] = Field(default_factory=list)
    seed: list[SlotRef] = Field(default_factory=list)
    width: list[SlotRef] = Field(default_factory=list)
    height: list[SlotRef] = Field(default_factory=list)
    batch: list[SlotRef] = Field(default_factory=list)
    output: list[str] = Field(default_factory=list, description="SaveImage-like node ids whose images are the result.")
    image: list[SlotRef] = Field(default_factory=list,
                                 description="Input images the flow needs (LoadImage files): not text-to-image.")
    regional: list[SlotRef] = Field(default_factory=list,
                                    description="Area / regional prompts: kept as the flow has them, not filled "
                                                "with the run's prompt.")


class LoraRef(BaseModel):
    name: str
    strength_model: float = 1.0
    strength_clip: float = 1.0


class FlowModels(BaseModel):
    """The model files a flow names, by the names they are published under."""

    checkpoint: str | None = None
    refiner: str | None = None
    unet: str | None = None
    clip: list[str] = Field(default_factory=list)
    vae: str | None = None
    loras: list[LoraRef] = Field(default_factory=list)
    upscaler: str | None = None
    face_restore: str | None = None
    other: list[str] = Field(default_factory=list)

    def files(self) -> list[tuple[str, str]]:
        """(folder, file) pairs, folder as ComfyUI's ``/models/<folder>`` names them."""
        out: list[tuple[str, str]] = []
        for name in (self.checkpoint, self.refiner):
            if name:
                out.append(("checkpoints", name))
        if self.unet:
            out.append(("diffusion_models", self.unet))
        out += [("text_encoders", c) for c in self.clip]
        if self.vae:
            out.append(("vae", self.vae))
        out += [("loras", lora.name) for lora in self.loras]
        if self.upscaler:
            out.append(("upscale_models", self.upscaler))
        if self.face_restore:
            out.append(("facerestore_models", self.face_restore))
        return out


class Requirement(BaseModel):
    """Something a flow needs beyond core ComfyUI."""

    kind: Literal["node_pack", "api_key", "external"]
    name: str = Field(description="Node pack name (e.g. 'facerestore_cf'), env var, or service name.")
    url: str | None = None
    note: str | None = None


class Provenance(BaseModel):
    kind: Literal["hand-built", "variant", "imported", "rating-source"] = "hand-built"
    parent: str | None = Field(None, description="Base flow id for variants.")
    changes: list[str] = Field(default_factory=list, description="What a variant changed, e.g. 'sampler=euler_ancestral'.")
    source: str | None = Field(None, description="Where it came from (URL, file, dataset).")
    notes: list[str] = Field(default_factory=list,
                             description="What an import noticed and the user should know (e.g. size not settable).")


class Flow(BaseModel):
    """A runnable (or reference) text-to-image workflow."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Stable id, e.g. 'sdxl-juggernaut-hires'.")
    name: str
    description: str = ""
    family: Family
    models: FlowModels = Field(default_factory=FlowModels)
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int = 1024
    height: int = 1024
    tags: list[str] = Field(default_factory=list)
    requires: list[Requirement] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    slots: Slots = Field(default_factory=Slots)
    graph: Graph = Field(default_factory=dict)

    @field_validator("graph")
    @classmethod
    def _api_format(cls, graph: Graph) -> Graph:
        for node_id, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node or not isinstance(node.get("inputs", {}), dict):
                raise ValueError(f"node {node_id!r} is not API format (needs 'class_type' and an 'inputs' object)")
        return graph

    @model_validator(mode="after")
    def _slots_exist(self) -> "Flow":
        if not self.graph:
            return self
        for name in ("positive", "negative", "seed", "width", "height", "batch", "image", "regional"):
            for ref in getattr(self.slots, name):
                if ref.node not in self.graph:
                    raise ValueError(f"slot {name} points at node {ref.node!r}, which is not in the graph")
        for node_id in self.slots.output:
            if node_id not in self.graph:
                raise ValueError(f"output slot points at node {node_id!r}, which is not in the graph")
        return self

    @property
    def needs_image(self) -> bool:
        """True for flows that read an input image (img2img, inpainting, edits): not plain text-to-image."""
        return bool(self.slots.image)

    @property
    def executable(self) -> bool:
        """False for reference flows (API-only or research models) that ComfyUI cannot run as they are."""
        return self.family != Family.EXTERNAL and bool(self.graph)

    def graph_hash(self) -> str:
        return graph_hash(self.graph)


def graph_hash(graph: Graph) -> str:
    """Canonical hash of an API graph: key order and node-id spelling do not matter, structure does."""
    return hashlib.sha256(json.dumps(canonical_graph(graph), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def canonical_graph(graph: Graph) -> Any:
    """Renumber nodes by a deterministic traversal so equal graphs with different ids compare equal."""
    order: dict[str, int] = {}

    def visit(node_id: str) -> None:
        if node_id in order or node_id not in graph:
            return
        for value in sorted(graph[node_id].get("inputs", {}).items()):
            if _is_link(value[1]):
                visit(str(value[1][0]))
        order[node_id] = len(order)

    def signature(node_id: str) -> str:
        return json.dumps(graph[node_id], sort_keys=True, default=str)

    for node_id in sorted(graph, key=signature):
        visit(node_id)

    def rewrite(value: Any) -> Any:
        if _is_link(value):
            return [order.get(str(value[0]), -1), value[1]]
        return value

    return sorted(
        [order[n], graph[n]["class_type"], {k: rewrite(v) for k, v in sorted(graph[n].get("inputs", {}).items())}]
        for n in graph
    )


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
