#!/usr/bin/env bash
# Train the codec decoder's PyTorch twin on a lent GPU machine: several settings at once on the
# one GPU (the decoder is small), each for SECONDS_EACH; the weights worth judging and every
# run's log come back in $OUT (at most 8 files: each spectral-only run's best, each adversarial
# run's half-way and last weights, and one log bundle).
#
# Run from the repository root there, with the carried folder .gpu/ holding
#   codec.safetensors   the shipped codec (its decoder is the start unless START names another
#                       file; its codebooks make the latents)
#   decoder-set/        `cargo xtask dataset decoder-set` packed by `decoder_data.py pack`
#   libopus.so.0        this machine's libopus, when the training audio travels as Opus
# Here, afterwards: decoder_data.py merge each candidate into a codec file and judge it with
# `cargo xtask eval codec --weights` and `cargo xtask eval estimators --weights` (see README.md).
set -u
OUT=${OUT:-/tmp/gpu-out}
SECONDS_EACH=${SECONDS_EACH:-420}
mkdir -p "$OUT" /tmp/runs
nvidia-smi --query-gpu=name,memory.total --format=csv > /tmp/runs/gpu.txt 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# Decode the packed audio once for every run.
time python3 xtask/gpu/decoder_data.py unpack --data .gpu/decoder-set --to /tmp/decoder-set || exit 1

# One run a line: NAME ARGS... (session 14: spectral-only without and with the balance term,
# then two adversarial runs held to the input's balance).
RUNS=${RUNS:-"A --batch 32 --lr 2e-4
B --batch 32 --lr 2e-4 --band-weight 2
C --batch 16 --gan --mel-weight 45 --stft-weight 0 --band-weight 20 --mrd-weight 0.1
D --batch 16 --gan --mel-weight 15 --stft-weight 15 --band-weight 20 --mrd-weight 1"}
while read -r name args; do
  [ -n "$name" ] && PYTHONUNBUFFERED=1 python3 xtask/gpu/decoder_twin.py train --data /tmp/decoder-set --start "${START:-.gpu/codec.safetensors}" \
    --out "/tmp/runs/$name" --name "$name" --seconds "$SECONDS_EACH" $args > "/tmp/runs/$name.out" 2>&1 &
done <<< "$RUNS"
wait

for d in /tmp/runs/*/; do
  name=$(basename "$d")
  if grep -q -- "--gan" <<< "$(grep "^$name " <<< "$RUNS")"; then
    for f in snap050 last; do [ -f "$d/$f.safetensors" ] && cp "$d/$f.safetensors" "$OUT/decoder-$name-$f.safetensors"; done
  else
    [ -f "$d/best.safetensors" ] && cp "$d/best.safetensors" "$OUT/decoder-$name-best.safetensors"
  fi
done
# Every log, summary and console tail in one file (the 8-file limit).
python3 - <<'PY' > "$OUT/decoder-gpu-logs.jsonl"
import json, os
root = "/tmp/runs"
print(json.dumps({"gpu": open(f"{root}/gpu.txt").read()}))
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name)
    if name.endswith(".out"):
        print(json.dumps({"run": name[:-4], "console_tail": open(d).read()[-4000:]}))
    elif os.path.isdir(d):
        for line in open(os.path.join(d, "log.jsonl")) if os.path.exists(os.path.join(d, "log.jsonl")) else []:
            print(json.dumps({"run": name, **json.loads(line)}))
        if os.path.exists(os.path.join(d, "summary.json")):
            print(json.dumps({"summary": json.load(open(os.path.join(d, "summary.json")))}))
PY
grep '"summary"' "$OUT/decoder-gpu-logs.jsonl"
ls -la "$OUT"
