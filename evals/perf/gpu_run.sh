#!/usr/bin/env bash
# The GPU benchmark as one command, on a machine with a PyTorch Python and nothing to fetch.
#
#   here:   python -m comfygen.evals.perf.gpu_stage --comfyui-git PATH/TO/ComfyUI/.git   (stages .gpu-stage/)
#   there:  bash evals/perf/gpu_run.sh [gpu_accel flags]      (with .gpu-stage/ carried beside the working tree)
#
# Installs the staged wheels into a temp folder, makes the source tree importable as `comfygen`, then runs
# gpu_accel: random SDXL-size and FLUX-size models built on the GPU, ComfyUI started once, every variant
# for both families, each new variant only while the budget lasts (BUDGET_S, default 420 s after start; a
# compiling variant only with 150 s of it left; one prompt may take at most 150 s), so the whole command
# stays within 8 minutes. Figures: $OUT/gpu_accel.json and $OUT/gpu_accel.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=${COMFYGEN_GPU_STAGE:-.gpu-stage}
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
[ -d "$STAGE/ComfyUI" ] || { echo "no $STAGE/ComfyUI: run python -m comfygen.evals.perf.gpu_stage first" >&2; exit 2; }
SITE=$(mktemp -d /tmp/comfygen-site-XXXX)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE/lib" "$STAGE"/wheels/*.whl
mkdir -p "$SITE/pkg/comfygen"
for d in server tools flow_library evals; do ln -sfn "$PWD/$d" "$SITE/pkg/comfygen/$d"; done
export PYTHONPATH="$SITE/pkg:$SITE/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" || true
uptime | tee "$OUT/uptime.txt"
status=0
"$PY" -m comfygen.evals.perf.gpu_accel --comfyui "$STAGE/ComfyUI" --python "$PY" --make-models \
    --budget-s "${BUDGET_S:-420}" --timeout "${PROMPT_TIMEOUT_S:-150}" --json "$OUT/gpu_accel.json" "$@" 2>&1 | tee "$OUT/gpu_accel.log" || status=$?
for log in /tmp/comfygen-gpu-*/comfyui.log; do [ -f "$log" ] && tail -c 200000 "$log" > "$OUT/comfyui.log"; done
exit $status
