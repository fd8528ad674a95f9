#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md in one command, for the few minutes a GPU machine is lent: the compute
# policy's calibration and its choices for vision-perceiver-fourier; one head of 512 latents over 50,176 and
# 262,144 inputs (the policy's kernel, SDPA forced, materialized); a bf16 training step at batch 64 with its
# MFU, eager and under torch.compile; the comparisons against transformers; the model's scaling. Each part has
# its time limit, so that one that hangs leaves the others; logs (and the cost table) go to OUTPUT_DIR.
#
#   usage: benchmarks/gpu_checks.sh OUTPUT_DIR           (on a machine with a CUDA GPU)
#          benchmarks/gpu_checks.sh OUTPUT_DIR --dry-run (the same commands on the CPU at toy sizes)
set -u
out=${1:?usage: benchmarks/gpu_checks.sh OUTPUT_DIR [--dry-run]}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}  # a fresh compute cache: this run calibrates
device=cuda sides=224,512 batch=64 side=224 steps=10 quick=() scale_sides=128,512 limit=1
if [ "${2:-}" = --dry-run ]; then
  device=cpu sides=8,16 batch=2 side=32 steps=2 quick=(--quick) scale_sides=8,16 limit=10
fi

part() {  # part SECONDS LOG COMMAND...: run COMMAND with a time limit, its output appended to OUTPUT_DIR/LOG
  local seconds=$1 log=$out/$2
  shift 2
  echo "== $* [limit $((seconds * limit)) s]" | tee -a "$log"
  local start=$SECONDS
  timeout $((seconds * limit)) "$@" >>"$log" 2>&1
  echo "== exit $? after $((SECONDS - start)) s" | tee -a "$log"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>/dev/null
  python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  grep -m1 "model name" /proc/cpuinfo
} >"$out/policy.log" 2>&1
part 60 policy.log python -m omniperceiver.cli calibrate --device $device
cp "$XDG_CACHE_HOME"/omniperceiver/compute-*.json "$out/cost_table.json"
python -c 'import omniperceiver as op, sys; op.zoo.create("vision-perceiver-fourier").save_pretrained(sys.argv[1])' \
  "$XDG_CACHE_HOME/vision"
part 60 policy.log python -m omniperceiver.cli info "$XDG_CACHE_HOME/vision" --compute --device $device
part 60 policy.log python -m omniperceiver.cli info "$XDG_CACHE_HOME/vision" --compute --device $device --inputs 262144

kinds=attend_fwd,attend_train,materialized_fwd,materialized_train
part 90 attention.log python benchmarks/scaling.py --device $device --sides $sides --kinds $kinds
OMNIPERCEIVER_ATTENTION=sdpa part 60 attention.log python benchmarks/scaling.py --device $device --sides $sides \
  --kinds attend_fwd,attend_train

part 120 vs_transformers.log python benchmarks/vs_transformers.py --device $device --only vision "${quick[@]}"
part 150 training.log python benchmarks/training_step.py --device $device --batch $batch --side $side \
  --steps $steps --compile --peak-tflops 989
for model in language flow; do
  part 100 vs_transformers.log python benchmarks/vs_transformers.py --device $device --only $model "${quick[@]}"
done
part 60 scaling.log python benchmarks/scaling.py --device $device --sides $scale_sides --kinds model_fwd,model_train

echo "== summary"
grep -h -E "^(\||PASS|FAIL|N/A|compute policy|torch|matmul|attend's|==|[a-z-]+, [0-9]+x)|TFLOP|GFLOP" \
  "$out"/policy.log "$out"/attention.log "$out"/training.log "$out"/vs_transformers.log "$out"/scaling.log |
  grep -v "^== exit 0" | cut -c1-400
