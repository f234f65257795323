#!/usr/bin/env bash
# The GPU figures of the closing notes: latency, throughput, TFLOP/s and peak memory on CUDA.
# Run on a machine with a CUDA build of torch: bash benchmarks/gpu_profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for spec in specs/vgg16.yaml specs/resnet50.yaml; do
  for args in "" "--train" "--dtype bfloat16" "--dtype bfloat16 --batch 32" "--dtype bfloat16 --batch 32 --train"; do
    echo "== cnncalc profile $spec --device cuda $args"
    # shellcheck disable=SC2086
    cnncalc profile "$spec" --device cuda --warmup 5 --iters 20 $args | sed -n '/checks/,$p'
  done
done
# cnncalc fit against the GPU: train at the batch fit finds for a 40 GB budget and compare
# torch.cuda.max_memory_allocated with the counted sum (fit leaves out workspaces and the allocator).
for spec in specs/vgg16.yaml specs/resnet50.yaml; do
  batch=$(cnncalc fit "$spec" --memory 40GB --train --optimizer sgd --dtype bfloat16 -f json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["batch"])')
  echo "== cnncalc fit $spec --memory 40GB --train --optimizer sgd --dtype bfloat16: batch $batch"
  cnncalc profile "$spec" --device cuda --train --dtype bfloat16 --batch "$batch" --warmup 1 --iters 3 |
    sed -n '/peak memory/,/kept for bwd/p'
done
# The roofline against the GPU: each layer's CUDA-event time beside its ideal on the measured roof
# and on the published one (H100 SXM; name your device's row of docs/roofline.md if it differs).
for spec in specs/vgg16.yaml specs/resnet50.yaml; do
  for roof in "" "--roofline-device h100-sxm"; do
    echo "== cnncalc profile $spec --device cuda --dtype bfloat16 --batch 64 --roofline $roof"
    # shellcheck disable=SC2086
    cnncalc profile "$spec" --device cuda --dtype bfloat16 --batch 64 --iters 20 --roofline $roof |
      sed -n '/^roofline on/,$p'
  done
done
