"""Note precision, recall and F1 between audio and the notes it should carry.

Run by `cargo xtask eval codec` inside a venv it creates (basic-pitch's ONNX model on
onnxruntime, no TensorFlow; mir_eval for the scores). Reads a job file:

    {"pairs": [{"id": "...", "reference": "orig.wav" or [[on_s, off_s, midi_key], ...],
                "estimate": "roundtrip.wav"}, ...]}

Each WAV is transcribed once (basic-pitch's default thresholds), and each pair is scored with
mir_eval's onset-only note matching: onsets within 50 ms, pitches within 50 cents, offsets
ignored. A reference given as notes is the score itself (the transcription ceiling); a reference
given as a WAV is that WAV's transcription (a codec round trip against its input).

Writes {"results": [{"id", "precision", "recall", "f1", "reference_notes", "estimate_notes",
"transcription"}]} to the output path; "transcription" is the estimate's notes as
[[on_s, off_s, midi_key], ...] (for measures of the notes themselves: grid, key).
"""
import json
import logging
import pathlib
import sys

import numpy as np

logging.disable(logging.WARNING)  # basic-pitch warns that TensorFlow is absent: it is meant to be

import mir_eval  # noqa: E402
from basic_pitch import ICASSP_2022_MODEL_PATH  # noqa: E402
from basic_pitch.inference import Model, predict  # noqa: E402


def main():
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    jobs = json.loads(pathlib.Path(jobs_path).read_text())
    model = Model(str(pathlib.Path(ICASSP_2022_MODEL_PATH).parent / "nmp.onnx"))
    transcribed = {}

    def notes_of(wav):
        if wav not in transcribed:
            _, _, events = predict(wav, model)
            transcribed[wav] = [(float(on), float(off), int(key)) for on, off, key, _, _ in events]
        return transcribed[wav]

    def as_arrays(notes):
        notes = [n for n in notes if n[1] > n[0]]
        if not notes:
            return np.zeros((0, 2)), np.zeros(0)
        intervals = np.array([[on, off] for on, off, _ in notes], dtype=float)
        hz = np.array([440.0 * 2 ** ((key - 69) / 12) for _, _, key in notes], dtype=float)
        return intervals, hz

    results = []
    for pair in jobs["pairs"]:
        ref = pair["reference"]
        ref_notes = notes_of(ref) if isinstance(ref, str) else [tuple(n) for n in ref]
        est_notes = notes_of(pair["estimate"])
        (ri, rp), (ei, ep) = as_arrays(ref_notes), as_arrays(est_notes)
        if len(rp) == 0 or len(ep) == 0:
            p = r = f = float(len(rp) == len(ep))
        else:
            p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None)
        results.append({"id": pair["id"], "precision": p, "recall": r, "f1": f, "reference_notes": len(rp), "estimate_notes": len(ep), "transcription": est_notes})
    pathlib.Path(out_path).write_text(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
