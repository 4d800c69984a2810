#!/usr/bin/env python3
"""How closely the second playing of a strain follows the first, in level.

    python3 scripts/strain_echo.py take.wav STRAIN_SECONDS

A 16-bit WAV of at least two strains (e.g. `cantor render --seconds 36 --bpm 110 --sample-rate
24000` then `sox take.wav -b 16 take16.wav`; at 110 BPM in 4/4 an 8-bar strain is 17.4545 s, in 2/2 8.7273 s).
Prints the level dips of the first strain (at least 4 dB below their 2 s surroundings) with
where the repeat's nearest dip falls, and the correlation of the two playings' level envelopes
(50 ms RMS in dB, smoothed over 0.25 s). Used for README's listening notes; EVAL.md's phrase
contrast (`cargo xtask eval prior`) is the measure of structure the issues quote. Needs numpy.
"""
import sys
import wave

import numpy as np

w = wave.open(sys.argv[1])
sr, n = w.getframerate(), w.getnframes()
if w.getsampwidth() != 2:
    sys.exit("strain_echo.py reads 16-bit WAV files")
x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float32).reshape(-1, w.getnchannels()).mean(1) / 32768
strain = float(sys.argv[2])
hop = int(0.05 * sr)
env = np.array([np.sqrt(np.mean(x[i:i + hop] ** 2) + 1e-12) for i in range(0, len(x) - hop, hop)])
smooth = np.convolve(20 * np.log10(env), np.ones(5) / 5, mode="same")
per = int(round(strain / 0.05))
if len(smooth) < 2 * per:
    sys.exit("the take holds less than two strains")
for i in range(20, per - 20):
    around = smooth[max(0, i - 20):i + 20]
    if smooth[i] == around.min() and np.median(around) - smooth[i] > 4:
        j = i + per
        if j + 5 < len(smooth):
            near = smooth[j - 5:j + 6]
            jj = j - 5 + int(np.argmin(near))
            depth = np.median(smooth[max(0, jj - 20):jj + 20]) - smooth[jj]
            print(f"dip at {i * 0.05:.2f} s ({np.median(around) - smooth[i]:.1f} dB deep) -> repeat {jj * 0.05:.2f} s ({depth:.1f} dB deep)")
print(f"level envelope correlation, first playing against the second: {np.corrcoef(smooth[:per], smooth[per:2 * per])[0, 1]:.2f}")
