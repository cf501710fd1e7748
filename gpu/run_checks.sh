#!/usr/bin/env bash
# GPU checks of the generated kernels. Run from a source checkout on a machine with an NVIDIA GPU,
# CuPy (pip install cupy-cuda13x) and optionally a CUDA build of torch (for the SDPA column):
#
#     bash gpu/run_checks.sh [--quick]
#
# 1. drift check (verified_lora/kernels/cuda/*.cu and manifest.json vs the specs) + nvcc -ptx -arch=sm_90 of every kernel;
# 2. pytest -m gpu: every kernel through CuPy against the mpmath reference (bounds with the CUDA
#    libm figures), exact on CuPy against exact on NumPy, fast on CuPy against NumPy;
# 3. the verify kernels section (which runs the GPU row when a device is usable);
# 4. benchmarks/gpu_fast_vs_exact.py up to L = 65,536 (--quick: up to 4,096), JSON with the GPU model.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import sys
try:
    import cupy
    ok = cupy.cuda.is_available()
except Exception as exc:  # cupy missing or no driver
    print(f"run_checks: no usable GPU ({exc!r})", file=sys.stderr)
    sys.exit(2)
if not ok:
    print("run_checks: cupy.cuda.is_available() is False", file=sys.stderr)
    sys.exit(2)
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
verified-lora kernels --check --nvcc
# -m gpu selects only GPU tests; -rs lists skips. With a usable GPU none may skip. Only the files that
# hold GPU tests are collected: a module of other tests skipped for a missing optional extra (flint,
# z3, keras) is reported as a skip too, and is no GPU test.
gpu_files=$(grep -l "pytest.mark.gpu" tests/*.py)
out=$(python3 -m pytest -m gpu -q -rs $gpu_files 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if echo "$out" | grep -q "SKIPPED"; then echo "run_checks: a GPU test was skipped on a GPU machine" >&2; exit 1; fi
if ! echo "$out" | grep -Eq "^[0-9]+ passed"; then echo "run_checks: no GPU test ran" >&2; exit 1; fi
verified-lora verify --only kernels
lengths="1024 4096 16384 65536"
if [ "${1:-}" = "--quick" ]; then lengths="1024 4096"; fi
python3 benchmarks/gpu_fast_vs_exact.py --lengths $lengths --json gpu_bench.json
echo "run_checks: all GPU checks passed; benchmark written to gpu_bench.json"
