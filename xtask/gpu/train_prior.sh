#!/usr/bin/env bash
# Train the prior's PyTorch twin on a lent GPU machine: several settings at once on the one GPU
# (the model is small; one run leaves most of the chip idle), each keeping its best weights by
# held-out NLL; the best run's weights and every run's log come back in $OUT.
#
# Run from the repository root there, with the carried folder .gpu/ holding
#   start.safetensors   the prior to start from (f16 weights of the main run's checkpoint)
#   tokens/             train.json, train.codes.xz, valid.json, valid.codes (cache/tokens/<codec>)
# Here, afterwards: cargo xtask train prior --adopt <best weights> --adopt-step N (see README.md).
set -u
OUT=${OUT:-/tmp/gpu-out}
SECONDS_EACH=${SECONDS_EACH:-330}
FIRST_STEP=${FIRST_STEP:-3500}
mkdir -p "$OUT" /tmp/runs
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, safetensors; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

run() {
  local name=$1 start=$2; shift 2
  PYTHONUNBUFFERED=1 python3 xtask/gpu/prior_twin.py train --tokens .gpu/tokens --start "$start" \
    --out "/tmp/runs/$name" --name "$name" --first-step "$FIRST_STEP" --seconds "$SECONDS_EACH" "$@" ${EXTRA_ARGS:-} > "/tmp/runs/$name.out" 2>&1
}
# The data (hours of codes) limits this small model more than the GPU does: the settings differ
# in how hard they regularise against repeating the same clips many times.
# RUNS overrides them: one run a line, "NAME START-FILE ARGS...".
RUNS=${RUNS:-"A .gpu/start.safetensors --batch 128 --lr 1.5e-3 --epochs 15 --dropout 0.1 --weight-decay 0.05
B .gpu/start.safetensors --batch 128 --lr 1.5e-3 --epochs 40 --dropout 0.2 --weight-decay 0.1
C .gpu/start.safetensors --batch 64 --lr 1e-3 --epochs 30 --dropout 0.1 --weight-decay 0.1
D .gpu/start.safetensors --batch 128 --lr 2e-3 --epochs 80 --dropout 0.3 --weight-decay 0.1"}
while read -r name start args; do
  [ -n "$name" ] && run "$name" "$start" $args &
done <<< "$RUNS"
wait

python3 - "$OUT" <<'EOF'
import json, os, shutil, sys
out = sys.argv[1]
summaries, logs = [], []
for name in sorted(os.listdir("/tmp/runs")):
    d = os.path.join("/tmp/runs", name)
    if name.endswith(".out"):
        text = open(d).read()
        logs.append(f"===== {name}\n{text[-3000:]}")
        continue
    if os.path.exists(os.path.join(d, "summary.json")):
        summaries.append(json.load(open(os.path.join(d, "summary.json"))))
with open(os.path.join(out, "prior-log-gpu.jsonl"), "w") as f:
    for name in sorted(os.listdir("/tmp/runs")):
        log = os.path.join("/tmp/runs", name, "log.jsonl")
        if os.path.exists(log):
            for line in open(log):
                rec = json.loads(line)
                rec["run"] = name
                f.write(json.dumps(rec) + "\n")
open(os.path.join(out, "runs-output.txt"), "w").write("\n".join(logs))
json.dump(summaries, open(os.path.join(out, "summaries.json"), "w"), indent=1)
ok = [s for s in summaries if os.path.exists(f"/tmp/runs/{s['run']}/best.safetensors")]
for s in sorted(summaries, key=lambda s: s["best_valid_nll"]):
    print(f"{s['run']}: start {s['start_valid_nll']:.4f} best {s['best_valid_nll']:.4f} at gpu step {s['best_gpu_step']} of {s['steps']} ({s['epochs']} epochs, batch {s['batch']}, lr {s['lr']}, dropout {s['dropout']}, wd {s['weight_decay']}, {s['wall_s']} s)")
if ok:
    best = min(ok, key=lambda s: s["best_valid_nll"])
    shutil.copy(f"/tmp/runs/{best['run']}/best.safetensors", os.path.join(out, "prior-gpu-best.safetensors"))
    print("best run:", best["run"])
else:
    print("no run improved on the start weights")
EOF
