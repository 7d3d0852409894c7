"""Check on a live ComfyUI that search graphs start from exactly the noises the search meant.

The candidates' graph is turned into a probe (:func:`graphs.probe_graph`): the noise sampler stops at
step 0, so ComfyUI applies its own noise handling and scaling and saves the starting latent with
``SaveLatent``; we fetch the ``.latent`` file and compare it with ``K * realise(noise)`` computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load as load_safetensors

from ...flow_library.model import Family, Flow
from ...flow_library.render import render
from ..errors import ComfyUIError, FlowError
from .generate import Mode, rewrite_for
from .graphs import LATENT_FAMILIES, probe_graph, start_scale
from .initial_noise import NoiseSpec, latent_shape, realise

LATENT_SCALE = {Family.SD15: 0.18215, Family.SD21: 0.18215, Family.SDXL: 0.13025, Family.SSD1B: 0.13025,
                Family.SDXL_REFINER: 0.13025}


class ProbeReport(BaseModel):
    mode: str
    candidates: int
    shape: list[int]
    max_abs_err: float = Field(description="Largest |ComfyUI's x_T - ours| over all values.")
    max_rel_err: float = Field(description="max_abs_err / max |x_T|.")
    cosine_min: float = Field(description="Smallest cosine similarity between ComfyUI's and our x_T per candidate.")
    prompt_id: str
    endpoint: str


async def probe_noises(client: Any, flow: Flow, specs: Sequence[NoiseSpec], mode: Mode, *, width: int | None = None,
                       height: int | None = None, prompt: str = "noise probe") -> ProbeReport:
    """Run the probe of one batch of ``specs`` on ``client`` (a ComfyClient) and compare."""
    fam = Family(flow.family)
    if fam not in LATENT_FAMILIES:
        raise FlowError(f"the noise probe knows the latent scaling of SD1.x/SD2.x/SDXL only, not {fam.value}",
                        hint="probe with an SD1.5 or SDXL flow")
    w, h = width or flow.width, height or flow.height
    graph = probe_graph(rewrite_for(specs, mode, fam)(render(flow, prompt, seed=0, width=w, height=h)))
    out = await client.run(graph)
    refs = [ref for o in out.outputs.values() for ref in (o.get("latents") or [])]
    if len(refs) != 1:
        raise ComfyUIError(f"probe returned {len(refs)} latent files", url=getattr(client, "url", None))
    data = await client.fetch_image(refs[0])
    saved = load_safetensors(data)["latent_tensor"].float()
    x_t = saved * LATENT_SCALE[fam]  # SaveLatent holds process_latent_out(x_T)
    k = start_scale(fam)
    shape = latent_shape(w, h)
    want = torch.cat([k * realise(s, shape) for s in specs])
    if tuple(x_t.shape) != tuple(want.shape):
        raise ComfyUIError(f"probe latent has shape {tuple(x_t.shape)}, expected {tuple(want.shape)}")
    err = (x_t.double() - want.double()).abs()
    cos = torch.nn.functional.cosine_similarity(x_t.double().flatten(1), want.double().flatten(1), dim=1)
    return ProbeReport(mode=mode, candidates=len(specs), shape=list(want.shape), max_abs_err=float(err.max()),
                       max_rel_err=float(err.max() / want.abs().max()), cosine_min=float(cos.min()),
                       prompt_id=out.prompt_id, endpoint=out.endpoint)
