"""Building blocks for the hand-built base flows (see ``build_base_flows.py``): a small API-graph builder that
records where each flow's slots are, and ``build_simple`` for the plain checkpoint flows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comfygen.flow_library.model import Family, Flow, FlowModels, LoraRef, Provenance, Requirement, SlotRef, Slots

NEG_GENERIC = "lowres, blurry, jpeg artifacts, watermark, signature, text, worst quality, low quality"
NEG_PEOPLE = ("bad anatomy, bad hands, extra fingers, missing fingers, extra limbs, deformed, disfigured, "
              "mutated, poorly drawn face, cross-eyed, ugly, lowres, blurry, watermark, worst quality")
NEG_ANIME = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
             "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry")
NEG_PHOTO = ("cartoon, anime, illustration, painting, drawing, 3d render, cgi, lowres, blurry, "
             "oversaturated, watermark, worst quality")
NEG_ART = "photo, photorealistic, lowres, blurry, watermark, signature, worst quality"

FACE_RESTORE_PACK = Requirement(kind="node_pack", name="facerestore_cf", url="https://github.com/mav-rik/facerestore_cf",
                                note="FaceRestoreModelLoader / FaceRestoreCFWithModel; models in models/facerestore_models")

Link = list  # [node_id, output_index]


@dataclass
class Builder:
    """Builds one API graph and records where its slots are."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    slots: dict[str, list[SlotRef]] = field(default_factory=lambda: {
        k: [] for k in ("positive", "negative", "seed", "width", "height", "batch")})
    outputs: list[str] = field(default_factory=list)

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def slot(self, name: str, node: str, *inputs: str) -> None:
        self.slots[name] += [SlotRef(node=node, input=i) for i in inputs]

    # -- common blocks ---------------------------------------------------------------------------
    def checkpoint(self, name: str) -> tuple[Link, Link, Link]:
        n = self.add("CheckpointLoaderSimple", ckpt_name=name)
        return [n, 0], [n, 1], [n, 2]

    def loras(self, model: Link, clip: Link, loras: list[LoraRef]) -> tuple[Link, Link]:
        for lora in loras:
            n = self.add("LoraLoader", model=model, clip=clip, lora_name=lora.name,
                         strength_model=lora.strength_model, strength_clip=lora.strength_clip)
            model, clip = [n, 0], [n, 1]
        return model, clip

    def encode(self, clip: Link, text: str, slot: str) -> Link:
        n = self.add("CLIPTextEncode", text=text, clip=clip)
        self.slot(slot, n, "text")
        return [n, 0]

    def latent(self, width: int, height: int, cls: str = "EmptyLatentImage") -> Link:
        n = self.add(cls, width=width, height=height, batch_size=1)
        self.slot("width", n, "width")
        self.slot("height", n, "height")
        self.slot("batch", n, "batch_size")
        return [n, 0]

    def ksampler(self, model: Link, pos: Link, neg: Link, latent: Link, *, steps: int, cfg: float,
                 sampler: str, scheduler: str, denoise: float = 1.0) -> Link:
        n = self.add("KSampler", model=model, seed=0, steps=steps, cfg=cfg, sampler_name=sampler,
                     scheduler=scheduler, positive=pos, negative=neg, latent_image=latent, denoise=denoise)
        self.slot("seed", n, "seed")
        return [n, 0]

    def decode(self, samples: Link, vae: Link) -> Link:
        return [self.add("VAEDecode", samples=samples, vae=vae), 0]

    def save(self, image: Link, prefix: str) -> None:
        self.outputs.append(self.add("SaveImage", images=image, filename_prefix=f"comfygen/{prefix}"))


@dataclass
class Spec:
    """What a simple checkpoint flow is made of; ``build_simple`` turns it into a graph."""

    id: str
    name: str
    description: str
    family: Family
    checkpoint: str
    sampler: str
    scheduler: str
    steps: int
    cfg: float
    width: int = 1024
    height: int = 1024
    tags: list[str] = field(default_factory=list)
    negative: str = NEG_GENERIC
    loras: list[LoraRef] = field(default_factory=list)
    clip_skip: int | None = None
    vae: str | None = None
    freeu: tuple[float, float, float, float] | None = None
    pag: float | None = None
    rescale_cfg: float | None = None
    lcm: bool = False
    hires: tuple[float, float, int] | None = None  # (scale, denoise, steps)
    upscaler: str | None = None  # model upscaler file (4x), downscaled back by 0.5
    face_restore: str | None = None
    sdxl_size_cond: bool = False
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # MODEL -> MODEL nodes
    source: str | None = None


def build_simple(spec: Spec) -> Flow:
    b = Builder()
    model, clip, vae = b.checkpoint(spec.checkpoint)
    if spec.vae:
        vae = [b.add("VAELoader", vae_name=spec.vae), 0]
    model, clip = b.loras(model, clip, spec.loras)
    for class_type, inputs in spec.patches:
        model = [b.add(class_type, model=model, **inputs), 0]
    if spec.lcm:
        model = [b.add("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False), 0]
    if spec.clip_skip:
        clip = [b.add("CLIPSetLastLayer", clip=clip, stop_at_clip_layer=spec.clip_skip), 0]
    if spec.freeu:
        b1, b2, s1, s2 = spec.freeu
        model = [b.add("FreeU_V2", model=model, b1=b1, b2=b2, s1=s1, s2=s2), 0]
    if spec.pag is not None:
        model = [b.add("PerturbedAttentionGuidance", model=model, scale=spec.pag), 0]
    if spec.rescale_cfg is not None:
        model = [b.add("RescaleCFG", model=model, multiplier=spec.rescale_cfg), 0]
    if spec.sdxl_size_cond:
        pos_id = b.add("CLIPTextEncodeSDXL", clip=clip, width=4096, height=4096, crop_w=0, crop_h=0,
                       target_width=spec.width, target_height=spec.height, text_g="", text_l="")
        neg_id = b.add("CLIPTextEncodeSDXL", clip=clip, width=1024, height=1024, crop_w=0, crop_h=0,
                       target_width=spec.width, target_height=spec.height, text_g=spec.negative, text_l=spec.negative)
        b.slot("positive", pos_id, "text_g", "text_l")
        b.slot("negative", neg_id, "text_g", "text_l")
        for n in (pos_id, neg_id):
            b.slot("width", n, "target_width")
            b.slot("height", n, "target_height")
        pos, neg = [pos_id, 0], [neg_id, 0]
    else:
        pos = b.encode(clip, "", "positive")
        neg = b.encode(clip, spec.negative, "negative")
    latent = b.latent(spec.width, spec.height)
    samples = b.ksampler(model, pos, neg, latent, steps=spec.steps, cfg=spec.cfg, sampler=spec.sampler,
                         scheduler=spec.scheduler)
    if spec.hires:
        scale, denoise, steps = spec.hires
        up = [b.add("LatentUpscaleBy", samples=samples, upscale_method="nearest-exact", scale_by=scale), 0]
        samples = b.ksampler(model, pos, neg, up, steps=steps, cfg=spec.cfg, sampler=spec.sampler,
                             scheduler=spec.scheduler, denoise=denoise)
    image = b.decode(samples, vae)
    if spec.face_restore:
        loader = b.add("FaceRestoreModelLoader", model_name=spec.face_restore)
        image = [b.add("FaceRestoreCFWithModel", facerestore_model=[loader, 0], image=image,
                       facedetection="retinaface_resnet50", codeformer_fidelity=0.5), 0]
    if spec.upscaler:
        loader = b.add("UpscaleModelLoader", model_name=spec.upscaler)
        image = [b.add("ImageUpscaleWithModel", upscale_model=[loader, 0], image=image), 0]
        image = [b.add("ImageScaleBy", image=image, upscale_method="lanczos", scale_by=0.5), 0]
    b.save(image, spec.id)
    requires = [FACE_RESTORE_PACK] if spec.face_restore else []
    models = FlowModels(checkpoint=spec.checkpoint, vae=spec.vae, loras=spec.loras, upscaler=spec.upscaler,
                        face_restore=spec.face_restore)
    return make_flow(spec.id, spec.name, spec.description, spec.family, b, models=models, sampler=spec.sampler,
                 scheduler=spec.scheduler, steps=spec.steps, cfg=spec.cfg, width=spec.width, height=spec.height,
                 tags=spec.tags, requires=requires, source=spec.source)


def make_flow(id: str, name: str, description: str, family: Family, b: Builder, **kw: Any) -> Flow:
    source = kw.pop("source", None)
    slots = Slots(**b.slots, output=b.outputs)
    return Flow(id=id, name=name, description=description, family=family, slots=slots, graph=b.nodes,
                provenance=Provenance(kind="hand-built", source=source), **kw)
