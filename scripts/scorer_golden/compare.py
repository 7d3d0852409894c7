"""Print comfygen's parity with the original scorer libraries on the golden fixtures (no originals needed).

Run in comfygen's own environment, from the repository root:
    python scripts/scorer_golden/compare.py
It loads tests/data/scorer_golden through comfygen's loaders, scores the same images and prompts, and prints the
largest absolute difference to the originals' scores per scorer (overall, on RGB images, on the other modes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "scoring"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from comfygen.tools.scoring.aesthetic import AestheticScorer  # noqa: E402
from comfygen.tools.scoring.clipscore import ClipScoreScorer  # noqa: E402
from comfygen.tools.scoring.hps import HPSv20Scorer, HPSv21Scorer  # noqa: E402
from comfygen.tools.scoring.imagereward import ImageRewardScorer  # noqa: E402
from comfygen.tools.scoring.pickscore import PickScoreScorer  # noqa: E402
from golden_helpers import CPU, GOLD, E, S, grid, unpack_clip_tokenizer  # noqa: E402
from PIL import Image  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    from test_golden import imagereward_configs

    images = [Image.open(GOLD / "images" / f) for f in E["images"]]
    rgb = np.array([E["image_modes"][f] == "RGB" for f in E["images"]])
    with tempfile.TemporaryDirectory() as tmp:
        tok = unpack_clip_tokenizer(Path(tmp) / "tok")
        proc = unpack_clip_tokenizer(Path(tmp) / "proc")
        for f in (GOLD / S["pickscore"]["processor"]).iterdir():
            (proc / f.name).write_bytes(f.read_bytes())
        vision, text = imagereward_configs()
        scorers = {
            "imagereward": ImageRewardScorer(checkpoint=GOLD / S["imagereward"]["checkpoint"], vision_config=vision,
                                             text_config=text, **CPU),
            "hpsv21": HPSv21Scorer(checkpoint=GOLD / S["hpsv21"]["checkpoint"], tokenizer=str(tok), **CPU),
            "hpsv20": HPSv20Scorer(checkpoint=GOLD / S["hpsv20"]["checkpoint"], tokenizer=str(tok), **CPU),
            "pickscore": PickScoreScorer(model=str(GOLD / S["pickscore"]["model"]), processor=str(proc), **CPU),
            "aesthetic": AestheticScorer(clip=str(GOLD / S["aesthetic"]["clip"]),
                                         head=GOLD / S["aesthetic"]["checkpoint"], **CPU),
            "clipscore": ClipScoreScorer(model=str(GOLD / S["clipscore"]["checkpoint"]), tokenizer=str(tok), **CPU),
        }
        print("| scorer | reference | pairs | max abs diff | on RGB images | on RGBA/P/L/I;16 | score range |")
        print("|---|---|---|---|---|---|---|")
        for name, sc in scorers.items():
            want = np.array(S[name]["scores"], dtype=np.float64)
            got = (np.array(sc.score(images, "").tolist())[None] if name == "aesthetic" else grid(sc, images))
            want = want.reshape(got.shape)
            d = np.abs(got - want)
            print(f"| {name} | {S[name]['reference'].split(':')[0].split(' (')[0]} | {d.size} | {d.max():.2e} | "
                  f"{d[:, rgb].max():.2e} | {d[:, ~rgb].max():.2e} | {want.min():.3f} .. {want.max():.3f} |")
    v = E["versions"]
    print(f"\noriginals: hpsv2 {v['hpsv2']}, image-reward {v['image-reward']}, openai-clip {v['openai-clip']}, "
          f"open_clip {v['open_clip_torch']}, transformers {v['transformers']}, torch {v['torch']}; "
          f"comfygen side: torch {torch.__version__}")


if __name__ == "__main__":
    main()
