#!/usr/bin/env bash
# GPU checks, for a machine with an NVIDIA GPU and driver (none of our CI machines has one).
# Prints what NVML reports, measures idle power, then a 20 s GPU load with `energy-star
# measure`, and compares the energy counter with integrated power samples over the same
# window (the meter computes both). Run from the repository root:
#   bash scripts/gpu-check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/energy-star-gpu-check}
mkdir -p "$OUT"
rustup target add wasm32-wasip2 >/dev/null
cargo build --release -p energy-star 2>&1 | tail -1
B=target/release/energy-star

echo "== nvidia-smi"
nvidia-smi --query-gpu=index,name,driver_version,power.draw,power.limit,temperature.gpu,mig.mode.current --format=csv || true

echo "== NVML through energy-star (ignored GPU tests)"
cargo test --release -p energy-star-meter --lib -- --ignored --nocapture 2>&1 | grep -E "gpu|NVML|test result" || true

echo "== idle, 5 s"
"$B" measure --gpus 0 --idle 5 --output "$OUT/idle"

echo "== load, 20 s"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  LOAD=(python3 -c "
import time, torch
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
t = time.time()
while time.time() - t < 20:
    a = (a @ a).clamp_(-1, 1)
torch.cuda.synchronize()
")
else
  echo "no PyTorch with CUDA here; using the candle build when it exists, else an idle sleep"
  LOAD=(sleep 20)
fi
"$B" measure --gpus 0 --interval-ms 50 --output "$OUT/load" -- "${LOAD[@]}"
cp "$OUT"/load/measure.json "$OUT/measure-load.json" 2>/dev/null || true
echo "files: $OUT"
