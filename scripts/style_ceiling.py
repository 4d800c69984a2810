#!/usr/bin/env python3
"""How well can a style be told from the audio at all? The style labels' ceiling.

    cargo xtask eval style-set --per-style 120 --out cache/style-set   # real clips after the codec
    python3 -m venv /tmp/sv && /tmp/sv/bin/pip install numpy scikit-learn
    /tmp/sv/bin/python scripts/style_ceiling.py cache/style-set

Reads the train split only (the dump writes it first), and cross-validates classifiers over it
with folds grouped by piece (a piece's clips never sit on both sides), from:
- the audio: a NumPy port of `style_features` in xtask/src/eval/prior.rs (rhythm relative to the
  labelled beat, texture, dynamics; close to, not bit-exact with, the Rust features);
- the notation alone: the beat's note value (quarter, dotted quarter, half), beats per bar and
  the tempo, facts of the score that the ear does not get (a 2/4 tune in sixteenths and a 2/2
  one in eighths at the same speed sound alike);
- both.
Most style labels come from the ABC rhythm field or, failing that, the metre
(xtask/src/dataset/labels.rs), so the notation recovers much of what the audio cannot.
"""
import json
import sys

import numpy as np

SR = 24000
N_FFT = 1024
HOP = 256
N_MELS = 32


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def mel_fb(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=40.0, fmax=8000.0):
    bins = n_fft // 2 + 1
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    f = np.arange(bins) * sr / n_fft
    fb = np.zeros((bins, n_mels))
    for m in range(n_mels):
        l, c, r = pts[m], pts[m + 1], pts[m + 2]
        up = (f > l) & (f <= c)
        dn = (f > c) & (f < r)
        fb[up, m] = (f[up] - l) / (c - l)
        fb[dn, m] = (r - f[dn]) / (r - c)
        fb[:, m] *= 2.0 / (r - l)
    return fb


FB = mel_fb()
WIN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def spectrogram(x, n_fft=N_FFT, hop=HOP):
    n = (len(x) - n_fft) // hop + 1
    if n <= 0:
        return np.zeros((0, n_fft // 2 + 1))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    win = WIN if n_fft == N_FFT else 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(x[idx] * win, axis=1))


def acf(env, lag):
    if lag >= len(env):
        return 0.0
    return float(np.dot(env[: len(env) - lag], env[lag:]) / (len(env) - lag))


def base_features(x, bpm):
    spec = spectrogram(x)
    power = spec.astype(np.float64) ** 2
    mels = np.log(1e-5 + power @ FB)
    fps = SR / 256.0
    fpb = 60.0 / bpm * fps
    out = []
    flux = np.maximum(mels[1:] - mels[:-1], 0).sum(1)
    mf, sf = flux.mean(), flux.std()
    env = flux - mf
    zero = max(acf(env, 0), 1e-12)
    a = lambda beats: acf(env, int(round(beats * fpb))) / zero
    out += [a(k / 12) for k in range(1, 49)]
    out.append(a(0.5) - a(1 / 3))
    bin_hz = SR / N_FFT
    fp = power.sum(1)
    loud = fp.max()
    b = np.arange(power.shape[1])
    sel = (b * bin_hz >= 55) & (b * bin_hz < 2000) & (b > 0)
    pcs = np.round(12 * np.log2(np.maximum(b, 1) * bin_hz / 440.0)).astype(int) % 12
    M = np.zeros((power.shape[1], 12))
    M[sel, pcs[sel]] = 1
    keep = (fp > 1e-4 * loud) & (loud > 0)
    ch = power @ M + 1e-9
    ch = ch / ch.sum(1, keepdims=True)
    ent = -(ch * np.log(ch)).sum(1)
    ek = ent[keep]
    out += [ek.mean() if len(ek) else 0, ek.std() if len(ek) else 0]
    mc = np.sort(ch[keep].mean(0))[::-1] if keep.any() else np.zeros(12)
    out.append(mc[:4].sum())
    both = keep[1:] & keep[:-1]
    ch_ = np.abs(ch[1:] - ch[:-1]).sum(1)[both]
    out.append((ch_.mean() if len(ch_) else 0) * fpb)
    low = power[:, b * bin_hz < 200].sum()
    out.append(np.log(low / max(fp.sum(), 1e-12) + 1e-9))
    thr = mf + sf
    w = flux
    on = ((w[1:-1] > w[:-2]) & (w[1:-1] >= w[2:]) & (w[1:-1] > thr)).sum()
    out.append(on / max(len(x) / SR * bpm / 60, 1))
    lv = np.log(fp + 1e-9)
    out.append(lv.std())
    lv = np.sort(lv)
    at = lambda q: lv[int(round((len(lv) - 1) * q))]
    out.append(at(0.9) - at(0.1))
    return np.array(out), dict(mels=mels, flux=flux, power=power, ch=ch, keep=keep, fpb=fpb)




def main():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = sys.argv[1] if len(sys.argv) > 1 else "cache/style-set"
    meta = json.load(open(f"{d}/train.json"))
    pcm = np.fromfile(f"{d}/train.audio", dtype="<i2").astype(np.float64) / 32768
    index = {}
    for line in open("assets/corpus/index.jsonl"):
        piece = json.loads(line)
        index[piece["id"]] = piece
    pieces = [m["id"].split("#")[0] for m in meta]
    y = np.array([m["style"] for m in meta])
    audio, offset = [], 0
    for m in meta:
        audio.append(base_features(pcm[offset : offset + m["samples"]], m["bpm"])[0])
        offset += m["samples"]
    audio = np.array(audio)
    beat = [index[p]["beat_quarters"] for p in pieces]
    notation = np.array([[b == 1.0, b == 1.5, b == 2.0, m["beats_per_bar"], m["bpm"]] for b, m in zip(beat, meta)], float)
    styles = ["chorale", "air", "jig", "reel", "hornpipe", "march/polka"]
    print(f"{len(meta)} clips of {len(set(pieces))} pieces; 5 folds grouped by piece; chance {100 / len(styles):.0f}%")
    forest = lambda: RandomForestClassifier(500, random_state=0)
    for name, x, model in [
        ("audio, logistic regression (as `eval prior`)", audio, lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.03, max_iter=5000))),
        ("audio, random forest", audio, forest),
        ("notation alone, random forest", notation, forest),
        ("audio and notation, random forest", np.hstack([audio, notation]), forest),
    ]:
        pred = cross_val_predict(model(), x, y, groups=pieces, cv=GroupKFold(5))
        print(f"\n{name}: {100 * (pred == y).mean():.1f}%")
        print("confusion (rows: label, columns: verdict; " + ", ".join(styles) + ")")
        print(confusion_matrix(y, pred))


if __name__ == "__main__":
    main()
