#!/usr/bin/env bash
# Issue 18's measurements on one GPU machine in one batch (~8 minutes on the H200): the user's command
# (`mmeval run` on 500 images x 18 questions in the lmms-lab layout) for both models, `mmeval bench`
# with the issue's targets table, and the Mamba kernel check. Everything it prints goes to $OUT/log.txt.
#
#   bash bench/issue18_gpu.sh "$OUT"        (repo root; mamba-ssm/causal-conv1d/datasets wheels in .whl/)
#
# Each step has its own time limit, so that one that hangs cannot take the others' time.
set -uo pipefail
OUT=${1:?usage: bash bench/issue18_gpu.sh OUT_DIR}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
stamp() { echo "[$(date +%T)] $*"; }
{
  stamp "start"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cpu cores: $(nproc)"
  python3 -c "import torch, mamba_ssm, causal_conv1d; print('torch', torch.__version__, 'mamba_ssm', mamba_ssm.__version__)"

  stamp "data: 500 images x 18 questions in the lmms-lab layout, and the bench's word-level tokenizer"
  timeout 60 python3 bench/pope_parquet.py --out /tmp/pb

  # The user's command, cold (a fresh machine: no Triton cache yet for Cobra; VL-Mamba's run then
  # finds the LM's kernels compiled). Protocol prismatic: Yes/No probabilities, as the bench's
  # "pope prismatic batched" line (random weights never stop, so llava would decode 128 tokens).
  for m in cobra vl-mamba; do
    stamp "user's command: mmeval run --model $m (batch size auto)"
    SECONDS=0
    timeout 150 python3 -m mmeval run --model "$m" \
      --model-args random_init=1,dtype=bfloat16,tokenizer=/tmp/pb/tokenizer --tasks pope --protocol prismatic \
      --data /tmp/pb --device cuda --bootstrap 0 --no-progress --output /tmp/runs --run-name "$m"
    echo "$m: ${SECONDS} s from the command to its end"
    cp "/tmp/runs/$m/pope.json" "$OUT/run_$m.json" && \
      python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timings'])" "/tmp/runs/$m/pope.json"
  done

  stamp "bench: both models, batch size auto, LM-only paths ours and mamba_ssm"
  timeout 330 python3 -m mmeval bench --models cobra,vl-mamba --lm-paths ours,mamba_ssm --loop-images 5 \
    --out "$OUT/bench.json"

  stamp "decoding step: fused Triton step vs unfused, graphed, 2.8B bf16"
  timeout 90 python3 bench/decode_step.py --batches 1,4,16 --out "$OUT/decode_step.json"

  stamp "kernel check: kernel path vs the PyTorch reference (bf16), batch invariance"
  timeout 100 python3 bench/mamba_kernel_check.py --dtypes bf16 --skip c --out "$OUT/kernel_check.json" | tail -n 25
  stamp "end"
} 2>&1 | tee "$OUT/log.txt"
