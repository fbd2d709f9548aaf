#!/usr/bin/env bash
# GPU figures in one short run, for a machine with a CUDA GPU and a Python that has torch.
# Usage: benchmarks/gpu_figures.sh OUTDIR   (PY=python3 by default; the tree need not be installed)
# Writes OUTDIR/{env,train,archs,blur,batch,cli,tests}.txt; RESULTS.md is edited by hand from
# them, since the machine that runs this is usually not the one that holds the checkout.
set -u
OUTDIR=${1:?usage: benchmarks/gpu_figures.sh OUTDIR}
PY=${PY:-python3}
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
bs() { "$PY" -m blursynth "$@"; }
now() { date +%s%N; }
secs() { "$PY" -c "print(f'{($2 - $1) / 1e9:.1f}')"; }
# SECTIONS picks parts to run (default all): env train archs blur batch cli tests
SECTIONS=${SECTIONS:-env train archs blur batch cli tests}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

want env && {
  nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, numpy, cv2; print('torch', torch.__version__, 'numpy', numpy.__version__, 'opencv', cv2.__version__); print(torch.cuda.get_device_name())"
  nproc
} >"$OUTDIR/env.txt" 2>&1

# Trainer steps/s, fp32 and bf16, small and paper configs.
want train && timeout 120 "$PY" benchmarks/bench_train.py --device cuda --steps 10 --no-write >"$OUTDIR/train.txt" 2>&1

# Every architecture's steps/s, small and paper configs, the paper ones at the papers' 256 px
# crops and batches, fp32: the rows of "Architectures: training speed" on the GPU.
want archs && timeout 300 "$PY" benchmarks/bench_archs.py --device cuda --steps 5 \
  --paper-crop 256 --no-write >"$OUTDIR/archs.txt" 2>&1

# Blur engine on the GPU: one pair, one image, a batch of 16.
want blur && timeout 60 "$PY" -c "
import sys; sys.argv = ['x']
from benchmarks.bench_blur import gpu_section
print('\n'.join(gpu_section(7)))
" >"$OUTDIR/blur.txt" 2>&1

# Batched rendering (blur --device cuda --batch B): pairs/s at batch 1, 8 and 32 on 64 720p pairs,
# the engine alone and the writer with its PNGs, and whether every batch gave the same bytes.
want batch && timeout 300 "$PY" benchmarks/bench_blur.py --device cuda >"$OUTDIR/batch.txt" 2>&1

# Whole commands on the GPU: blur with --device cuda (batch 1 vs 8), then a short bf16 training run.
W=$(mktemp -d)
want cli && {
  "$PY" -c "
from skimage import data, transform
import numpy as np
from blursynth.sources.photos import save_rgb8
import os
os.makedirs('$W/photos', exist_ok=True)
for i, name in enumerate(['astronaut', 'coffee', 'chelsea', 'rocket']):
    img = getattr(data, name)()
    img = (transform.resize(img, (720, 1280), anti_aliasing=True) * 255).round().astype(np.uint8)
    save_rgb8(f'$W/photos/{i}.png', img)
"
  bs trajectories --n 200 --out "$W/bank" --workers 4
  for b in 1 8 32; do
    s=$(now)
    bs blur "$W/photos" --kernels "$W/bank" --per-image 16 --device cuda --batch $b --out "$W/pairs$b" --workers 1 >/dev/null
    e=$(now); echo "blur --device cuda --batch $b --workers 1: 64 pairs 720p in $(secs $s $e) s"
  done
  # Every core encoding PNGs, each worker its own batches on the GPU (the default --workers).
  s=$(now)
  bs blur "$W/photos" --kernels "$W/bank" --per-image 16 --device cuda --batch 8 --out "$W/pairsall" >/dev/null
  e=$(now); echo "blur --device cuda --batch 8, default --workers: 64 pairs 720p in $(secs $s $e) s"
  for d in pairs32 pairsall; do
    cmp <(cat "$W"/pairs1/data/*.parquet | sha256sum) <(cat "$W"/$d/data/*.parquet | sha256sum) \
      && echo "batch 1 and $d shards: identical bytes" || echo "batch 1 and $d shards DIFFER"
  done
  s=$(now)
  bs blur "$W/photos" --kernels "$W/bank" --per-image 16 --device cpu --out "$W/pairscpu" --workers 8 >/dev/null
  e=$(now); echo "blur --device cpu --workers 8: 64 pairs 720p in $(secs $s $e) s"
  cmp <(cat "$W"/pairs1/data/*.parquet | sha256sum) <(cat "$W"/pairs8/data/*.parquet | sha256sum) \
    && echo "batch 1 and batch 8 shards: identical bytes" || echo "batch 1 and batch 8 shards DIFFER"
  for p in fp32 bf16; do
    s=$(now)
    bs train --data "$W/pairs8" --out "$W/run$p" --config small --steps 60 --device cuda --precision $p --perceptual none --workers 4 2>&1 | tail -2
    e=$(now); echo "train small 60 steps cuda $p: $(secs $s $e) s"
  done
  bs evaluate --model "$W/runbf16" --data "$W/pairs1" --limit 8 --device cuda 2>&1 | tail -4
} >"$OUTDIR/cli.txt" 2>&1

# The tests that behave differently with a GPU present.
want tests && timeout 100 "$PY" -m pytest -q -p no:cacheprovider -x tests/test_shake.py tests/test_device.py \
  tests/test_convolve.py tests/test_blur.py tests/test_blur_batched.py tests/test_trainer.py tests/test_tiling.py >"$OUTDIR/tests.txt" 2>&1
echo done
