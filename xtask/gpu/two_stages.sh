#!/usr/bin/env bash
# Two stages of train_prior.sh in one device call (a machine's start costs minutes of a lease
# that holds fifteen): stage 1's settings from .gpu/start.safetensors, then stage 2's from
# stage 1's best weights. $OUT gets what train_prior.sh returns, for all eight runs: the best
# weights of either stage, every run's log and summary.
#
#   OUT=$OUT FIRST_STEP=<main run step> EXTRA_ARGS="--codec-id <id>" \
#     SECONDS1=250 SECONDS2=200 RUNS1="..." RUNS2="... STAGE1_BEST ..." bash xtask/gpu/two_stages.sh
# In RUNS2 the start file is written STAGE1_BEST.
set -u
OUT=${OUT:-/tmp/gpu-out}
FIRST_STEP=${FIRST_STEP:-0}
here=$(dirname "$0")
OUT=$OUT FIRST_STEP=$FIRST_STEP SECONDS_EACH=${SECONDS1:-250} RUNS=$RUNS1 bash "$here/train_prior.sh"
[ -f "$OUT/prior-gpu-best.safetensors" ] || { echo "stage 1 improved nothing; stage 2 skipped"; exit 1; }
mkdir -p /tmp/stage1 && cp "$OUT/prior-gpu-best.safetensors" /tmp/stage1/best.safetensors
# Stage 2's logged steps go on from the best stage-1 run's best step.
STEP2=$(python3 -c "
import json; s = min(json.load(open('$OUT/summaries.json')), key=lambda s: s['best_valid_nll'])
print($FIRST_STEP + s['best_gpu_step'])")
echo "stage 2 starts from stage 1's best, at step $STEP2"
OUT=$OUT FIRST_STEP=$STEP2 SECONDS_EACH=${SECONDS2:-200} RUNS=${RUNS2//STAGE1_BEST//tmp/stage1/best.safetensors} bash "$here/train_prior.sh"
