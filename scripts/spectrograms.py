"""Stacked spectrograms of WAV files on a note axis, to see which notes a round trip keeps.

Usage: python scripts/spectrograms.py OUT.png SECONDS "TITLE=FILE.wav" ...
Needs numpy and matplotlib. Each panel is a 4096-point STFT (hop 256) on a log-frequency axis
from C2 to C8, the band of the codec's pitch distance (`spectral::PITCH`), 80 dB of range below
the loudest bin of the first file, so every panel shares one colour scale.
"""
import sys
import wave

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

N_FFT, HOP, LOW_HZ, HIGH_HZ = 4096, 256, 65.4, 4186.0


def read_mono(path, seconds):
    with wave.open(path) as w:
        sr, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(int(seconds * sr) if seconds > 0 else w.getnframes())
    kind = {2: np.int16, 4: np.int32}[width]
    x = np.frombuffer(raw, dtype=kind).astype(np.float64) / np.iinfo(kind).max
    return x.reshape(-1, ch).mean(axis=1), sr


def spectrogram_db(x, sr):
    window = np.hanning(N_FFT)
    frames = [x[i : i + N_FFT] * window for i in range(0, len(x) - N_FFT, HOP)]
    mag = np.abs(np.fft.rfft(np.array(frames), axis=1)).T
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    keep = (freqs >= LOW_HZ) & (freqs <= HIGH_HZ)
    return 20 * np.log10(mag[keep] + 1e-9), freqs[keep]


def main():
    out, seconds, panels = sys.argv[1], float(sys.argv[2]), [a.split("=", 1) for a in sys.argv[3:]]
    specs = []
    for title, path in panels:
        x, sr = read_mono(path, seconds)
        db, freqs = spectrogram_db(x, sr)
        specs.append((title, db, freqs, sr))
    top = specs[0][1].max()
    fig, axes = plt.subplots(len(specs), 1, figsize=(12, 3.2 * len(specs)), sharex=True, squeeze=False)
    for ax, (title, db, freqs, sr) in zip(axes[:, 0], specs):
        t = np.arange(db.shape[1]) * HOP / sr
        ax.pcolormesh(t, freqs, db, vmin=top - 80, vmax=top, shading="auto", cmap="magma")
        ax.set_yscale("log")
        ax.set_yticks([65.4, 130.8, 261.6, 523.3, 1046.5, 2093.0, 4186.0])
        ax.set_yticklabels(["C2", "C3", "C4", "C5", "C6", "C7", "C8"])
        ax.set_title(title)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
