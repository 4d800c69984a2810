"""Which half of a codec's STFT loses the notes: its magnitudes or its phases?

Reads the audio `cargo xtask eval codec --keep-audio DIR` kept ({clip}-input.wav and
{clip}-{column}.wav), and for each clip builds, on the decoder's own STFT grid (n_fft 1280,
hop 320, Hann):
  - true magnitude with the codec's phase,
  - the codec's magnitude with the true phase,
  - true magnitude with Griffin-Lim phase (what a perfect magnitude-only decoder gives),
  - true magnitude with each bin's true phase less its phase in the first frame: the phase an
    integrated-phase decoder makes with perfect frequencies and no residual (each bin turns
    right, but the bins' relative phases, which shape attacks, are lost),
then transcribes all of them with basic-pitch and scores each against the input's transcription
(xtask/python/note_f1.py: onsets within 50 ms, same pitch).

Run with the eval's venv: cache/venv-notes/bin/python scripts/phase_swap.py DIR [COLUMN]
"""
import json
import pathlib
import subprocess
import sys

import librosa
import numpy as np
import soundfile as sf

N_FFT, HOP = 1280, 320


def stft(x):
    return librosa.stft(x, n_fft=N_FFT, hop_length=HOP, window="hann", center=True)


def istft(s, n):
    return librosa.istft(s, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, length=n)


def main():
    d = pathlib.Path(sys.argv[1])
    column = sys.argv[2] if len(sys.argv) > 2 else "0"
    work = d / "swap"
    work.mkdir(exist_ok=True)
    pairs = []
    for inp in sorted(d.glob("*-input.wav")):
        clip = inp.name.split("-")[0]
        codec = d / f"{clip}-{column}.wav"
        if not codec.exists():
            continue
        x, sr = sf.read(inp, dtype="float32")
        y, _ = sf.read(codec, dtype="float32")
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        X, Y = stft(x), stft(y)
        variants = {
            "codec": y,
            "true-mag-codec-phase": istft(np.abs(X) * np.exp(1j * np.angle(Y)), n),
            "codec-mag-true-phase": istft(np.abs(Y) * np.exp(1j * np.angle(X)), n),
            "true-mag-griffin-lim": librosa.griffinlim(np.abs(X), n_iter=64, hop_length=HOP, n_fft=N_FFT, window="hann", center=True, length=n),
            "true-mag-integrated-oracle": istft(np.abs(X) * np.exp(1j * (np.angle(X) - np.angle(X[:, :1]))), n),
        }
        for name, audio in variants.items():
            path = work / f"{clip}-{name}.wav"
            sf.write(path, audio, sr)
            pairs.append({"id": f"{clip}/{name}", "reference": str(inp), "estimate": str(path)})
    jobs, out = work / "jobs.json", work / "scores.json"
    jobs.write_text(json.dumps({"pairs": pairs}))
    script = pathlib.Path(__file__).resolve().parent.parent / "xtask/python/note_f1.py"
    subprocess.run([sys.executable, str(script), str(jobs), str(out)], check=True)
    results = json.loads(out.read_text())["results"]
    by_variant = {}
    for r in results:
        by_variant.setdefault(r["id"].split("/")[1], []).append(r["f1"])
    for name, f1s in by_variant.items():
        print(f"{name:24s} note F1 {np.mean(f1s):.3f} over {len(f1s)} clips")


if __name__ == "__main__":
    main()
