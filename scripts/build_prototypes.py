"""Embed the shipped category classifier's texts (the zero-shot prototypes) and store them.

The classifier reads ``prototypes.safetensors`` from its data folder when the texts' digest matches, so a
cold process skips that forward pass. After changing a category text, rebuild the shipped file:

    python scripts/build_prototypes.py --out tools/categorize/data

``--classifier DIR`` embeds another classifier's texts (default: the shipped one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_prototypes(out_dir: Path, classifier_dir: Path | None = None) -> Path:
    from safetensors.numpy import save_file

    from comfygen.tools.categorize.classifier import CategoryClassifier
    from comfygen.tools.categorize.fast import PROTO_FILE, OnnxEncoder, texts_digest

    clf = CategoryClassifier.load(classifier_dir)
    texts = clf.prototype_texts()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / PROTO_FILE
    save_file({"prototypes": OnnxEncoder()(texts, bulk=True).astype(np.float32)}, str(out),
              metadata={"texts_sha256": texts_digest(texts)})
    out.chmod(0o644)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write prototypes.safetensors into")
    ap.add_argument("--classifier", type=Path, default=None, help="classifier folder (default: the shipped one)")
    args = ap.parse_args(argv)
    print(f"wrote {write_prototypes(args.out, args.classifier)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
