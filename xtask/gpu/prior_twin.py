"""PyTorch twin of Cantor's transformer prior, for training on a lent GPU.

The Rust prior (`src/model/prior/`) is the model: it is what the plugin runs and what
`cargo xtask train prior` trains on the CPU. This file mirrors its forward pass exactly
(same layers, same weight names, same ALiBi window, same delay pattern, same conditioning
features) so that weights trained here load unchanged into the Rust prior. The test
`prior_twin_matches_the_pytorch_twin` (src/model/prior/tests.rs) holds the two together: it
loads a small random model and its inputs and outputs, written by `make_fixture.py` from this
file, and checks that the Rust prior, the conditioning features and the delay pattern give
the same numbers.

Run on a GPU machine (see xtask/gpu/README.md):
    python3 prior_twin.py train --tokens DIR --start START.safetensors --out OUT [...]
"""

import argparse
import json
import lzma
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --- The conditioning vocabulary and feature layout (src/model/vocab.rs, conditioning.rs) ---
N_STYLES = 6
N_INSTRUMENTS = 8
BPM_RANGE = (60.0, 180.0)
PHRASE_BARS = 8
STYLE_AT = 0
INSTRUMENT_AT = STYLE_AT + 1 + N_STYLES
KEY_AT = INSTRUMENT_AT + 1 + N_INSTRUMENTS
TEMPO_AT = KEY_AT + 1 + 12 + 2
GRID_AT = TEMPO_AT + 3
PHRASE_AT = GRID_AT + 4
COND_DIM = PHRASE_AT + 3 + PHRASE_BARS
MASKED = -1e9
LN_EPS = 1e-5

# Conditioning dropout of the Rust trainer (xtask/src/train/prior.rs).
DROP_EACH = 0.1
DROP_ALL = 0.15
DROP_PHRASE = 0.3


def features(style, style_on, instrument, instrument_on, key, mode, key_on, bpm, bpm_on, beats, beats_per_bar, phrase_on):
    """Conditioning features of many frames at once, as `write_features` writes one.

    Every argument is a tensor of the same length (one entry per frame): `style` the index of
    the single style of a corpus clip, `*_on` whether that knob is given (float 0/1), `beats`
    float64. Returns [n, COND_DIM] float32.
    """
    n = beats.shape[0]
    dev = beats.device
    out = torch.zeros(n, COND_DIM, dtype=torch.float32, device=dev)
    rows = torch.arange(n, device=dev)
    out[:, STYLE_AT] = style_on
    out[rows, STYLE_AT + 1 + style] = style_on
    out[:, INSTRUMENT_AT] = instrument_on
    out[rows, INSTRUMENT_AT + 1 + instrument] = instrument_on
    out[:, KEY_AT] = key_on
    out[rows, KEY_AT + 1 + key % 12] = key_on
    out[rows, KEY_AT + 13 + mode.clamp(max=1)] = key_on
    t = torch.log2(bpm.float().clamp(BPM_RANGE[0] * 0.5, BPM_RANGE[1] * 2.0) / 120.0)
    out[:, TEMPO_AT] = bpm_on
    out[:, TEMPO_AT + 1] = t * bpm_on
    out[:, TEMPO_AT + 2] = t * t * bpm_on
    beats = beats.clamp(min=0.0)
    per_bar = beats_per_bar.clamp(1, 32).double()
    beat_phase = torch.frac(beats).float()
    bars = beats / per_bar
    bar_phase = torch.frac(bars).float()
    tau = 2.0 * math.pi
    out[:, GRID_AT] = torch.sin(tau * beat_phase)
    out[:, GRID_AT + 1] = torch.cos(tau * beat_phase)
    out[:, GRID_AT + 2] = torch.sin(tau * bar_phase)
    out[:, GRID_AT + 3] = torch.cos(tau * bar_phase)
    phrase_phase = torch.frac(bars / PHRASE_BARS).float()
    bar_in_phrase = torch.floor(bars).long() % PHRASE_BARS
    out[:, PHRASE_AT] = phrase_on
    out[:, PHRASE_AT + 1] = torch.sin(tau * phrase_phase) * phrase_on
    out[:, PHRASE_AT + 2] = torch.cos(tau * phrase_phase) * phrase_on
    out[rows, PHRASE_AT + 3 + bar_in_phrase] = phrase_on
    return out


def training_pairs(frame_codes, frames, start, length, delays, codebook_size):
    """Inputs and targets of crops in the delay pattern (`pattern::training_pairs`), batched.

    `frame_codes(idx)` returns the codes [*, levels] of clip-relative frames `idx` [b, len]
    (any value where the frame is outside the clip); `frames` [b] clip lengths, `start` [b]
    first frames. Returns inputs [b, len, levels] (BOS = codebook_size where nothing is known)
    and targets [b, len, levels] (-100 where not scored).
    """
    dev = start.device
    steps = torch.arange(length, device=dev)
    levels = len(delays)
    d = torch.tensor(delays, device=dev)
    rel = steps[None, :, None] - d[None, None, :]  # [1, len, levels]
    frame = start[:, None, None] + rel  # [b, len, levels]
    ok = (rel >= 0) & (frame < frames[:, None, None])
    codes = frame_codes(frame.clamp(min=0))  # [b, len, levels, levels]
    lv = torch.arange(levels, device=dev)
    picked = codes[..., lv, lv] if codes.dim() == 4 else codes
    targets = torch.where(ok, picked, torch.full_like(picked, -100))
    inputs = torch.full_like(targets, codebook_size)
    inputs[:, 1:] = torch.where(targets[:, :-1] >= 0, targets[:, :-1], torch.full_like(targets[:, :-1], codebook_size))
    return inputs, targets


def alibi_slopes(heads):
    return [2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)]


def training_bias(heads, length, window, device):
    """[heads, len, len]: causal, banded to `window` keys, ALiBi distance penalty."""
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    dist = (i - j).float()
    slopes = torch.tensor(alibi_slopes(heads), device=device)[:, None, None]
    bias = -slopes * dist[None]
    allowed = (j <= i) & (j > i - window)
    return torch.where(allowed[None], bias, torch.full_like(bias, MASKED))


class Block(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d)
        self.attn.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.up = nn.Linear(d, mlp)
        self.down = nn.Linear(mlp, d)

    def forward(self, x, bias, dropout):
        b, l, d = x.shape
        hd = d // self.heads
        qkv = self.attn.qkv(self.ln1(x)).view(b, l, 3, self.heads, hd)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype)[None], dropout_p=dropout if self.training else 0.0)
        y = self.attn.out(y.transpose(1, 2).reshape(b, l, d))
        x = x + F.dropout(y, dropout, self.training)
        # candle's `gelu` is the tanh approximation.
        y = self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))
        return x + F.dropout(y, dropout, self.training)


class Prior(nn.Module):
    """The prior's forward pass (`Prior::forward`), weight names as the Rust VarBuilder's."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        self.embed = nn.Module()
        for k in range(cfg["n_levels"]):
            setattr(self.embed, f"level{k}", nn.Embedding(cfg["codebook_size"] + 1, d))
        self.cond = nn.Linear(COND_DIM, d)
        self.blocks = nn.ModuleList([Block(d, cfg["n_heads"], cfg["mlp"]) for _ in range(cfg["n_layers"])])
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.head = nn.Linear(d, cfg["n_levels"] * cfg["codebook_size"])
        self.dropout = 0.0
        self._bias = {}

    def bias(self, length, device):
        key = (length, str(device))
        if key not in self._bias:
            self._bias[key] = training_bias(self.cfg["n_heads"], length, self.cfg["window"], device)
        return self._bias[key]

    def forward(self, tokens, cond):
        """tokens [b, len, levels] (long), cond [b, len, COND_DIM] → logits [b, len, levels, K]."""
        b, l, _ = tokens.shape
        x = self.cond(cond)
        for k in range(self.cfg["n_levels"]):
            x = x + getattr(self.embed, f"level{k}")(tokens[:, :, k])
        bias = self.bias(l, tokens.device)
        for blk in self.blocks:
            x = blk(x, bias, self.dropout)
        return self.head(self.norm(x)).view(b, l, self.cfg["n_levels"], self.cfg["codebook_size"])


# --- Model files (src/model/weights.rs): safetensors with a Cantor header ---

def read_model(path, kind_prefix="cantor-prior"):
    """Weights and header of a Cantor prior file or prior checkpoint (optimiser state dropped)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        assert meta["cantor.kind"].startswith(kind_prefix), f"{path}: not a prior file ({meta['cantor.kind']})"
        assert "cantor.quant" not in meta, f"{path}: quantised files cannot be trained"
        tensors = {k: f.get_tensor(k).float() for k in f.keys() if not k.startswith(("adam.", "optim."))}
    config = json.loads(meta["cantor.config"])
    if meta["cantor.kind"].endswith("-checkpoint"):
        state, config = config, config["config"]
    else:
        state = None
    return tensors, config, state


def write_model(path, model, kind, config, dtype=torch.float16, extra=None):
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    tensors.update(extra or {})
    meta = {"cantor.kind": kind, "cantor.version": "1", "cantor.config": json.dumps(config)}
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


# --- The tokenised corpus (xtask/src/dataset/tokens.rs) ---

class TokenSet:
    def __init__(self, folder, split, device):
        meta = json.load(open(os.path.join(folder, f"{split}.json")))
        path = os.path.join(folder, f"{split}.codes")
        raw = lzma.open(path + ".xz").read() if os.path.exists(path + ".xz") else open(path, "rb").read()
        self.levels = meta["levels"]
        self.codebook_size = meta["codebook_size"]
        self.frame_rate = meta["frame_rate"]
        self.codec_id = meta["codec_id"]
        codes = np.frombuffer(raw, dtype="<u2").astype(np.int64).reshape(-1, self.levels)
        clips = meta["clips"]
        assert codes.shape[0] == sum(c["frames"] for c in clips), f"{path}: codes and clip list disagree"
        self.codes = torch.from_numpy(codes).to(device)
        col = lambda name, dt: torch.tensor([c[name] for c in clips], dtype=dt, device=device)
        self.offset, self.frames = col("offset", torch.long), col("frames", torch.long)
        self.style, self.instrument = col("style", torch.long), col("instrument", torch.long)
        self.key, self.mode = col("key", torch.long), col("mode", torch.long)
        self.beats_per_bar = col("beats_per_bar", torch.long)
        self.start_beats = col("start_beats", torch.float64)
        # bpm is an f32 in Rust: round it the same way before widening.
        self.bpm = torch.tensor(np.array([c["bpm"] for c in clips], dtype=np.float32).astype(np.float64), device=device)
        self.n = len(clips)
        self.hours = codes.shape[0] / self.frame_rate / 3600.0

    def batch(self, clip, start, length, delays, knobs_on, phrase_on):
        """Inputs, targets and conditioning of crops (`batch_tensors`)."""
        off = self.offset[clip]

        def frame_codes(rel):
            idx = (off[:, None, None] + rel).clamp(max=self.codes.shape[0] - 1)
            return self.codes[idx]

        inputs, targets = training_pairs(frame_codes, self.frames[clip], start, length, delays, self.codebook_size)
        steps = torch.arange(length, device=start.device)
        per_frame = self.bpm[clip] / 60.0 / self.frame_rate
        beats = self.start_beats[clip][:, None] + (start[:, None] + steps[None, :]).double() * per_frame[:, None]
        rep = lambda t: t[:, None].expand(-1, length).reshape(-1)
        on = [rep(k) for k in knobs_on]
        cond = features(
            rep(self.style[clip]), on[0], rep(self.instrument[clip]), on[1], rep(self.key[clip]), rep(self.mode[clip]), on[2],
            rep(self.bpm[clip]), on[3], beats.reshape(-1), rep(self.beats_per_bar[clip]), rep(phrase_on),
        ).view(clip.shape[0], length, COND_DIM)
        return inputs, targets, cond


def draw_training_crops(ts, batch, length, gen):
    dev = ts.codes.device
    clip = torch.randint(0, ts.n, (batch,), generator=gen, device=dev)
    top = (ts.frames[clip] - length // 2).clamp(min=0)
    start = (torch.rand(batch, generator=gen, device=dev, dtype=torch.float64) * (top + 1).double()).long().clamp(max=top)
    u = torch.rand(batch, 6, generator=gen, device=dev)
    keep_any = (u[:, 0] >= DROP_ALL).float()
    knobs = [keep_any * (u[:, 1 + i] >= DROP_EACH).float() for i in range(4)]
    phrase = (u[:, 5] >= DROP_PHRASE).float()
    return clip, start, knobs, phrase


def held_out_crops(ts, length, limit=None):
    """Every clip of the split cut into whole windows (the last one may run past its end), all knobs given."""
    clips, starts = [], []
    for c in range(min(ts.n, limit or ts.n)):
        for s in range(0, max(int(ts.frames[c]), 1), length):
            clips.append(c)
            starts.append(s)
    dev = ts.codes.device
    clip = torch.tensor(clips, device=dev)
    ones = torch.ones(len(clips), device=dev)
    return clip, torch.tensor(starts, device=dev), [ones] * 4, ones


def mean_nll(model, ts, crops, length, delays, chunk, autocast):
    clip, start, knobs, phrase = crops
    total, count = 0.0, 0
    was = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, clip.shape[0], chunk):
            sl = slice(i, i + chunk)
            inputs, targets, cond = ts.batch(clip[sl], start[sl], length, delays, [k[sl] for k in knobs], phrase[sl])
            with autocast():
                logits = model(inputs, cond)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int((targets >= 0).sum())
    model.train(was)
    return total / max(count, 1)


def train(args):
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    tensors, cfg, start_state = read_model(args.start)
    model = Prior(cfg)
    model.load_state_dict(tensors, strict=True)
    model.to(dev).train()
    model.dropout = args.dropout
    train_set, valid_set = TokenSet(args.tokens, "train", dev), TokenSet(args.tokens, "valid", dev)
    if args.codec_id:
        # A start prior of the same codec before its codebooks were re-fitted (`cargo xtask train
        # codebooks`): its layers carry over, its code embeddings as far as the codes kept their place.
        cfg = dict(cfg, codec_id=args.codec_id)
    assert train_set.codec_id == cfg["codec_id"], "tokens of another codec"
    length, delays = cfg["window"], cfg["delays"]
    # bf16 matrix products on the GPU (CANTOR_TWIN_BF16=1 tries the same on the CPU).
    use_bf16 = dev.type == "cuda" or os.environ.get("CANTOR_TWIN_BF16") == "1"
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, int(train_set.codes.shape[0] / (args.batch * length)))
    total = max(1, int(args.epochs * steps_per_epoch))
    valid = held_out_crops(valid_set, length, args.valid_clips)
    first_step = args.first_step if args.first_step is not None else (start_state or {}).get("step", 0)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    t0 = time.time()
    best = mean_nll(model, valid_set, valid, length, delays, args.valid_chunk, autocast)
    start_nll = best
    print(json.dumps({"start_valid_nll": best, "train_hours": round(train_set.hours, 2), "steps_per_epoch": steps_per_epoch, "planned_steps": total}), flush=True)
    best_step = 0
    step, acc, acc_n = 0, 0.0, 0
    t_steps = time.time()
    valid_every = max(1, int(steps_per_epoch * args.valid_epochs))
    while step < total:
        # Fit the plan to the time budget once the speed is known.
        if step == 30:
            per_step = (time.time() - t_steps) / 30
            fit = int((args.seconds - (time.time() - t0)) / per_step) + step
            if fit < total:
                total = max(step + 1, fit)
                print(json.dumps({"s_per_step": per_step, "planned_steps": total, "epochs": total / steps_per_epoch}), flush=True)
        frac = step / total
        warm = min(1.0, (step + 1) / args.warmup)
        decay = 1.0 if frac < 1 - args.decay_frac else max(0.0, (1 - frac) / args.decay_frac)
        lr = args.lr * warm * decay
        for g in opt.param_groups:
            g["lr"] = lr
        clip, start, knobs, phrase = draw_training_crops(train_set, args.batch, length, gen)
        inputs, targets, cond = train_set.batch(clip, start, length, delays, knobs, phrase)
        with autocast():
            logits = model(inputs, cond)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        acc = acc + loss.detach()  # summed on the device: no synchronisation per step
        acc_n += 1
        if step % valid_every == 0 or step == total:
            nll = mean_nll(model, valid_set, valid, length, delays, args.valid_chunk, autocast)
            rec = {"gpu_step": step, "step": first_step + step, "epoch": round(step / steps_per_epoch, 2), "nll": float(acc) / max(acc_n, 1), "valid_nll": nll,
                   "lr": lr, "grad_norm": float(norm), "batch": args.batch, "wall_s": round(time.time() - t0, 1)}
            acc, acc_n = 0.0, 0
            if nll < best:
                best, best_step = nll, step
                rec["best"] = True
                write_model(os.path.join(args.out, "best.safetensors"), model, "cantor-prior", cfg)
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
    summary = {"run": args.name, "start_valid_nll": start_nll, "best_valid_nll": best, "best_gpu_step": best_step, "steps": step,
               "epochs": round(step / steps_per_epoch, 2), "batch": args.batch, "lr": args.lr, "dropout": args.dropout,
               "weight_decay": args.weight_decay, "wall_s": round(time.time() - t0, 1), "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}
    print(json.dumps(summary), flush=True)
    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train from a prior file or checkpoint; keeps the weights with the best held-out NLL")
    t.add_argument("--tokens", required=True, help="folder with train/valid .json and .codes (or .codes.xz)")
    t.add_argument("--start", required=True, help="prior weights or checkpoint to start from")
    t.add_argument("--out", required=True)
    t.add_argument("--name", default="run")
    t.add_argument("--first-step", type=int, default=None, help="the Rust trainer's step the start weights are from (logged steps count on from it)")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--epochs", type=float, default=30)
    t.add_argument("--seconds", type=float, default=400, help="training time budget; the plan shrinks to fit it")
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--decay-frac", type=float, default=0.3, help="final fraction of the steps over which the rate falls to zero")
    t.add_argument("--valid-epochs", type=float, default=1.0)
    t.add_argument("--valid-chunk", type=int, default=64)
    t.add_argument("--valid-clips", type=int, default=None, help="validate on the first N clips only (smoke tests)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--codec-id", default=None, help="codes id the trained prior is for, when the start prior's codec has had its codebooks re-fitted")
    e = sub.add_parser("export", help="write the f16 weights of a prior file or checkpoint (the start file of a GPU run)")
    e.add_argument("--from", dest="src", required=True)
    e.add_argument("--to", dest="dst", required=True)
    args = p.parse_args()
    if args.cmd == "train":
        train(args)
    elif args.cmd == "export":
        tensors, cfg, state = read_model(args.src)
        model = Prior(cfg)
        model.load_state_dict(tensors, strict=True)
        write_model(args.dst, model, "cantor-prior", cfg)
        print(f"{args.dst}: step {(state or {}).get('step', '?')}, {sum(t.numel() for t in tensors.values())} parameters")


if __name__ == "__main__":
    main()
