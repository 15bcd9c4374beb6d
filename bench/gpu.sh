#!/usr/bin/env bash
# One script a GPU machine runs as is (issue 17): the `make test` set-up, then the realistic-model benches on CUDA
# with a short fixed budget. Prints, last: extremal on a 4 s utterance with 3 areas and 300 iterations (goal < 2 s
# on one H100), occlusion and the gradient methods against the models' own passes, and the long-recording run.
# Budget: under 8 minutes on one GPU (each step has its own timeout). UNTESTED ON A GPU so far (no GPU was lent
# when it was written); on a CPU-only machine it stops at the CUDA check.
#
#     bash bench/gpu.sh            # from the repository root or anywhere
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import avxai, speechbrain, resemblyzer" 2>/dev/null; then
    make setup-test || echo "gpu.sh: set-up incomplete (offline?); continuing with what is installed"
fi
PY=.venv/bin/python
$PY - <<'PYEOF' || exit 1
import torch
if not torch.cuda.is_available():
    raise SystemExit("gpu.sh: no CUDA device here (torch.cuda.is_available() is False)")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PYEOF
LOG=${GPU_BENCH_LOG:-gpu-bench}
mkdir -p "$LOG"
run() {  # timeout, name, command...
    local limit=$1 name=$2; shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$LOG/$name.log" | tail -n 12
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "== $name: exit $rc (124 = over its ${limit}s)"
}
# 1. extremal, 4 s, K = 3 areas, 300 iterations, through the public API, vs the bare model's own passes
run 150 extremal $PY bench/realistic_models.py --device cuda --seconds 4 --iterations 300 --repeats 3 \
    --methods extremal --models ecapa512 ecapa1024 resemblyzer convtasnet --json "$LOG/extremal.json"
# 2. occlusion and the gradient methods, 4 s, vs the models' own passes
run 120 methods $PY bench/realistic_models.py --device cuda --seconds 4 --repeats 3 --occlusion-split 8 \
    --batch-size 32 --methods occlusion saliency smoothgrad integrated-gradients --json "$LOG/methods.json"
# 3. long recordings at the CLI's defaults (occlusion in full; extremal 20 iterations; 10 min: peak memory)
run 200 long $PY bench/long_recordings.py --device cuda --lengths 3 60 600 --json "$LOG/long.json"
echo "== logs and JSON in $LOG/"
