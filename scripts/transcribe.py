"""Transcribe a WAV into a MIDI file with basic-pitch (its ONNX model, default thresholds), as
`cargo xtask eval perform` hears takes: to draw what a listener gets beside what was meant
(`scripts/piano_roll.py`).

    cache/venv-notes/bin/python scripts/transcribe.py IN.wav OUT.mid BPM

The venv is the one `cargo xtask eval perform` (or `eval codec`) makes. BPM is the quarter-note
tempo written into the file, so its bars line up with the take's.
"""
import logging
import pathlib
import sys

logging.disable(logging.WARNING)  # basic-pitch warns that TensorFlow is absent: it is meant to be

import mido  # noqa: E402
from basic_pitch import ICASSP_2022_MODEL_PATH  # noqa: E402
from basic_pitch.inference import Model, predict  # noqa: E402


def main():
    wav, out, bpm = sys.argv[1], sys.argv[2], float(sys.argv[3])
    model = Model(str(pathlib.Path(ICASSP_2022_MODEL_PATH).parent / "nmp.onnx"))
    _, _, events = predict(wav, model)
    tpq = 480
    ticks = lambda s: int(round(s * bpm / 60.0 * tpq))  # noqa: E731
    timed = []
    for on, off, key, velocity, _ in events:
        vel = max(1, min(127, int(round(127 * float(velocity)))))
        timed.append((ticks(on), 1, int(key), vel))
        timed.append((max(ticks(off), ticks(on) + 1), 0, int(key), 0))
    timed.sort()
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))])
    now = 0
    for t, is_on, key, vel in timed:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=key, velocity=vel, time=t - now))
        now = t
    midi = mido.MidiFile(ticks_per_beat=tpq)
    midi.tracks.append(track)
    midi.save(out)
    print(f"{len(events)} notes -> {out}")


if __name__ == "__main__":
    main()
