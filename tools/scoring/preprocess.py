"""Image preprocessing, one rule per original library, reproduced step for step on PIL + torch (no torchvision).

Every scorer gets the PIL image as opened (any mode; EXIF orientation is NOT applied, as none of the originals
applies it) and turns it into pixels exactly as its original library does:

* :func:`resize_center_crop` -- OpenAI ``clip`` / BLIP (ImageReward, LAION aesthetic, CLIPScore):
  ``Resize(size, BICUBIC)`` of the short side on the PIL image *in its own mode*, ``CenterCrop``, then
  ``convert("RGB")``, ``ToTensor``, ``Normalize``. Consequences kept on purpose: an RGBA image is resized with
  PIL's premultiplied alpha and then loses its alpha channel (transparent areas become their stored colour,
  e.g. black); a palette image is resized with nearest-neighbour (PIL's rule for "P"); a 16-bit image goes
  through PIL's own ``I;16 -> RGB`` conversion.
* :func:`resize_long_side_pad` -- hpsv2 (HPS v2.0/v2.1): ``convert("RGB")``, ``ToTensor``, then the *float*
  tensor is resized (bicubic, antialiased, no clamp, no 8-bit rounding) so its long side is ``size``, zero-padded
  to a centred square, normalised. hpsv2 keeps RGBA as 4 channels and then fails; here RGBA is converted like
  every other mode (alpha dropped). hpsv2 also skips the pad when the long side is already ``size`` (and then
  fails on a non-square image); here such an image is padded.
* :func:`clip_image_processor` -- transformers' ``CLIPImageProcessor`` on PIL (PickScore): transparency is
  composited onto white, then short-side resize, centre crop, rescale, normalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision ``ToTensor`` for an RGB image: CHW float32 in [0, 1]."""
    arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div(255)


def normalize(x: torch.Tensor, mean: Sequence[float] = OPENAI_CLIP_MEAN,
              std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x - m) / s


def short_side_size(w: int, h: int, size: int) -> tuple[int, int]:
    """torchvision's ``Resize(int)`` output size: short side ``size``, long side truncated."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)


def resize_center_crop(img: Image.Image, size: int, mean: Sequence[float] = OPENAI_CLIP_MEAN,
                       std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    """OpenAI clip's / BLIP's ``_transform(size)``: resize and crop in the image's own mode, then RGB."""
    w, h = img.size
    new_w, new_h = short_side_size(w, h, size)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    return normalize(to_tensor(img), mean, std)


def resize_long_side_pad(img: Image.Image, size: int, mean: Sequence[float] = OPENAI_CLIP_MEAN,
                         std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    """hpsv2's ``preprocess_val``: ToTensor, float bicubic resize of the long side, zero pad, normalise."""
    x = to_tensor(img)
    h, w = x.shape[1:]
    scale = size / float(max(h, w))
    if scale != 1.0:
        new_h, new_w = round(h * scale), round(w * scale)
        x = F.interpolate(x[None], size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)[0]
    ph, pw = size - x.shape[1], size - x.shape[2]
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    return normalize(x, mean, std)


def clip_image_processor(source: str | None, size: int):
    """transformers' PIL ``CLIPImageProcessor`` (the processor PickScore's recipe uses, on the PIL backend that
    transformers 4 had when PickScore was published): from ``source``'s ``preprocessor_config.json`` when it has
    one, else CLIP's defaults at ``size``."""
    from transformers import CLIPImageProcessorPil

    if source and (Path(source) / "preprocessor_config.json").is_file():
        return CLIPImageProcessorPil.from_pretrained(source)
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                 image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD))
