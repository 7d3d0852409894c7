"""Executors for the fake ComfyUI that compute the real noise math of ComfyUI's core nodes.

``NoiseExecutors().executors()`` plugs into ``FakeComfyUI(executors=...)``. The nodes behave as
ComfyUI v0.3.64 does for an EPS model (SD1.5 latent format, scale 0.18215, discrete schedule):
``RandomNoise`` + ``prepare_noise`` with ``batch_index``, ``LatentFromBatch``, ``AddNoise``,
``SetFirstSigma``, ``KarrasScheduler``, ``LatentAdd``/``LatentSubtract``/``LatentMultiply``/``LatentBatch``
and the samplers' noise scaling ``x_T = process_in(latent) + K * noise``. Every sampler records the
``x_T`` it starts from in ``starts`` so tests can compare it with what the search meant.

"Denoising" is a fixed map of the starting noise (``x_T / K``), so decoded pixels are a smooth,
deterministic function of the initial noise and a test scorer's optimum can be computed directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from comfygen.tools.search.initial_noise import discrete_sigma_max, eps_start_scale, prepare_noise

SCALE_FACTOR = 0.18215  # SD1.5 latent format
SIGMA_MAX = discrete_sigma_max()


def _t(x: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))


def pack_module() -> Any:
    """comfygen_noise/__init__.py as written by ``comfygen comfyui install-nodes``, imported."""
    import types

    from comfygen.tools.search.nodepack import NODE_SOURCE

    mod = types.ModuleType("comfygen_noise")
    exec(compile(NODE_SOURCE, "comfygen_noise/__init__.py", "exec"), mod.__dict__)
    return mod


def object_info_with_pack() -> dict[str, Any]:
    """The recorded object_info plus the ComfyGenNoise schema, as a server with the pack serves it."""
    from fakecomfy import recorded_object_info

    mod = pack_module()
    node = mod.ComfyGenNoise
    info = dict(recorded_object_info())
    info["ComfyGenNoise"] = {
        "input": {k: {n: list(v) for n, v in d.items()} for k, d in node.INPUT_TYPES().items()},
        "input_order": {k: list(d) for k, d in node.INPUT_TYPES().items()},
        "output": list(node.RETURN_TYPES), "output_is_list": [False], "output_name": list(node.RETURN_TYPES),
        "name": "ComfyGenNoise", "display_name": mod.NODE_DISPLAY_NAME_MAPPINGS["ComfyGenNoise"],
        "description": node.DESCRIPTION, "python_module": "custom_nodes.comfygen_noise",
        "category": node.CATEGORY, "output_node": False}
    return info


@dataclass
class Start:
    prompt_id: str
    node: str
    x_t: np.ndarray  # [B, C, H, W]: the sampler's starting latent (model space)


@dataclass
class NoiseExecutors:
    starts: list[Start] = field(default_factory=list)

    def executors(self) -> dict[str, Callable[..., Any]]:
        return {
            "RandomNoise": lambda i, c: ({"seed": int(i["noise_seed"]), "kind": "random"},),
            "DisableNoise": lambda i, c: ({"seed": 0, "kind": "empty"},),
            "LatentFromBatch": self._from_batch,
            "LatentBatch": self._batch,
            "LatentAdd": lambda i, c: (self._arith(i, np.add),),
            "LatentSubtract": lambda i, c: (self._arith(i, np.subtract),),
            "LatentMultiply": lambda i, c: ({**i["samples"], "samples": i["samples"]["samples"] * np.float32(
                float(i["multiplier"]))},),
            "KarrasScheduler": self._karras,
            "SetFirstSigma": self._set_first_sigma,
            "AddNoise": self._add_noise,
            "KSampler": self._ksampler,
            "KSamplerAdvanced": self._ksampler,
            "SaveLatent": self._save_latent,
            "BasicScheduler": self._basic_scheduler,
            "SplitSigmas": lambda i, c: (np.asarray(i["sigmas"])[: int(i["step"]) + 1],
                                         np.asarray(i["sigmas"])[int(i["step"]):]),
            "KSamplerSelect": lambda i, c: ({"type": "SAMPLER", "name": i["sampler_name"]},),
            "CFGGuider": lambda i, c: ({"type": "GUIDER", "model": i["model"], "cfg": i["cfg"]},),
            "SamplerCustomAdvanced": self._custom_advanced,
            "ComfyGenNoise": self._pack_noise,
        }

    # ---- latents
    @staticmethod
    def _from_batch(i: dict[str, Any], c: Any) -> tuple:
        lat = i["samples"]
        s = lat["samples"]
        idx = min(s.shape[0] - 1, int(i["batch_index"]))
        n = min(s.shape[0] - idx, int(i["length"]))
        out = {**lat, "samples": s[idx: idx + n].copy()}
        out["batch_index"] = list(lat["batch_index"][idx: idx + n]) if "batch_index" in lat else list(range(idx, idx + n))
        return (out,)

    @staticmethod
    def _batch(i: dict[str, Any], c: Any) -> tuple:
        a, b = i["samples1"], i["samples2"]
        out = {**a, "samples": np.concatenate([a["samples"], b["samples"]], axis=0)}
        out["batch_index"] = (a.get("batch_index", list(range(a["samples"].shape[0])))
                              + b.get("batch_index", list(range(b["samples"].shape[0]))))
        return (out,)

    @staticmethod
    def _arith(i: dict[str, Any], op: Any) -> dict[str, Any]:
        a, b = i["samples1"], i["samples2"]
        return {**a, "samples": op(a["samples"], b["samples"]).astype(np.float32)}

    # ---- sigmas and noise
    @staticmethod
    def _karras(i: dict[str, Any], c: Any) -> tuple:
        n = int(i["steps"])
        ramp = torch.linspace(0, 1, n)
        rho = float(i["rho"])
        lo, hi = float(i["sigma_min"]) ** (1 / rho), float(i["sigma_max"]) ** (1 / rho)
        sig = (hi + ramp * (lo - hi)) ** rho
        return (torch.cat([sig, sig.new_zeros([1])]).numpy(),)

    @staticmethod
    def _set_first_sigma(i: dict[str, Any], c: Any) -> tuple:
        s = np.array(i["sigmas"], dtype=np.float32, copy=True)
        s[0] = float(i["sigma"])
        return (s,)

    @staticmethod
    def _pack_noise(i: dict[str, Any], c: Any) -> tuple:
        """The shipped node's own code (comfygen_noise), run as ComfyUI would load it."""
        obj = pack_module().ComfyGenNoise().get_noise(i["noises"], i["noise_seed"])[0]
        return ({"seed": int(i["noise_seed"]), "kind": "pack", "obj": obj},)

    @staticmethod
    def _noise(noise: dict[str, Any], latent: dict[str, Any]) -> torch.Tensor:
        s = latent["samples"]
        if noise["kind"] == "pack":
            return noise["obj"].generate_noise({"samples": _t(s)})
        if noise["kind"] == "empty":
            return torch.zeros(s.shape)
        return prepare_noise(list(s.shape[1:]), noise["seed"], latent.get("batch_index"), batch=s.shape[0])

    def _add_noise(self, i: dict[str, Any], c: Any) -> tuple:
        sig = np.asarray(i["sigmas"], dtype=np.float32)
        if len(sig) == 0:
            return (i["latent_image"],)
        lat = i["latent_image"]
        x = _t(lat["samples"])
        noisy = self._noise(i["noise"], lat)
        scale = torch.tensor(abs(sig[0] - sig[-1]) if len(sig) > 1 else sig[0])
        if torch.count_nonzero(x) > 0:
            x = x * SCALE_FACTOR  # process_latent_in
        noisy = noisy * scale + x  # EPS noise_scaling, max_denoise=False
        return ({**lat, "samples": (noisy / SCALE_FACTOR).numpy()},)  # process_latent_out

    # ---- samplers
    def _ksampler(self, i: dict[str, Any], c: Any) -> tuple:
        lat = i["latent_image"]
        x = _t(lat["samples"])
        advanced = c.class_type == "KSamplerAdvanced"
        seed = int(i.get("seed", i.get("noise_seed", 0)))
        if advanced and i.get("add_noise") == "disable":
            noise = torch.zeros(x.shape)
        else:
            noise = prepare_noise(list(x.shape[1:]), seed, lat.get("batch_index"), batch=x.shape[0])
        if torch.count_nonzero(x) > 0:
            x = x * SCALE_FACTOR
        k = eps_start_scale(SIGMA_MAX)
        x_t = noise * k + x
        self.starts.append(Start(prompt_id=c.prompt_id, node=c.node_id, x_t=x_t.numpy().copy()))
        return ({**lat, "samples": (x_t / k).numpy()},)  # "denoised": a fixed map of the starting noise

    @staticmethod
    def _basic_scheduler(i: dict[str, Any], c: Any) -> tuple:
        """Starts at the model's sigma_max (as every full-denoise schedule does), ends at 0."""
        steps = int(i["steps"])
        return (np.concatenate([np.geomspace(SIGMA_MAX, 0.03, steps), [0.0]]).astype(np.float32),)

    def _custom_advanced(self, i: dict[str, Any], c: Any) -> tuple:
        lat = i["latent_image"]
        x = _t(lat["samples"])
        sig = np.asarray(i["sigmas"], dtype=np.float32)
        if len(sig) == 0:
            return lat, lat
        noise = self._noise(i["noise"], lat)
        if torch.count_nonzero(x) > 0:
            x = x * SCALE_FACTOR
        s0 = float(sig[0])
        k = eps_start_scale(s0) if abs(s0 - SIGMA_MAX) <= 1e-5 * SIGMA_MAX or s0 > SIGMA_MAX else s0
        x_t = noise * k + x
        self.starts.append(Start(prompt_id=c.prompt_id, node=c.node_id, x_t=x_t.numpy().copy()))
        out = x_t / SCALE_FACTOR if len(sig) == 1 else x_t / k  # zero steps: process_latent_out(x_T)
        res = {**lat, "samples": out.numpy()}
        return res, res

    @staticmethod
    def _save_latent(i: dict[str, Any], c: Any) -> dict[str, Any]:
        """Writes a ComfyUI ``.latent`` file (safetensors: latent_tensor + format marker) under output/."""
        from pathlib import Path

        from safetensors.torch import save_file

        sub, _, base = str(i.get("filename_prefix", "latents/ComfyUI")).rpartition("/")
        folder = Path(c.output_dir) / sub
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{base}_{c.prompt_id[:8]}_{c.node_id}_.latent"
        save_file({"latent_tensor": _t(i["samples"]["samples"]).contiguous(),
                   "latent_format_version_0": torch.tensor([])}, str(folder / name))
        return {"result": (), "ui": {"latents": [{"filename": name, "subfolder": sub, "type": "output"}]}}
