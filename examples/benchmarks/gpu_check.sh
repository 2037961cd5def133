#!/usr/bin/env bash
# The GPU check of a session lent a CUDA machine: the fast suite with device="auto" (so on
# CUDA), the CUDA-marked tests (slow ones too), then bench_cuda.py. The machine may lack
# skorch (and an up-to-date scikit-learn): put their wheels and the MNIST-10k files in an
# ignored folder .gpu/ (.gpu/*.whl, .gpu/mnist/), carry it, and run
#   bash examples/benchmarks/gpu_check.sh
# Logs go to $OUT (the device tool's output folder) when it is set.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp}
if ls .gpu/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export SKPRUNE_MNIST=${SKPRUNE_MNIST:-$PWD/.gpu/mnist} SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, sklearn, skorch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'sklearn', sklearn.__version__, 'skorch', skorch.__version__)"
echo "=== fast suite (device='auto' picks CUDA) ==="
timeout "${SUITE_S:-200}" python3 -m pytest -q -p no:cacheprovider --maxfail=30 2>&1 | tee "$OUT/suite.log" | tail -40
echo "=== CUDA-marked tests, slow ones included ==="
timeout 90 python3 -m pytest -q -p no:cacheprovider -m cuda --override-ini="addopts=" -ra tests 2>&1 | tee "$OUT/cuda.log" | tail -15
echo "=== bench_cuda ==="
timeout "${BENCH_S:-200}" python3 examples/benchmarks/bench_cuda.py --rounds 3 2>&1 | tee "$OUT/bench_cuda.log"
