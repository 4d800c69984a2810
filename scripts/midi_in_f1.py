"""Note F1 of performances against the MIDI files they played (`cantor render --midi-in`): each
WAV transcribed by basic-pitch (its ONNX model, default thresholds), compared with the file's
notes sounding before the WAV's last 0.2 s by mir_eval (onsets within 50 ms, pitch within 50
cents, offsets ignored), as `cargo xtask eval perform` scores the performer.

    cache/venv-notes/bin/python scripts/midi_in_f1.py TAKE.wav INPUT.mid [TAKE.wav INPUT.mid ...]

The venv is the one `cargo xtask eval perform` makes (add `soundfile`, which librosa brings).
EVAL.md's "Performing a MIDI file" line came from six corpus tunes rendered with
`cantor render --midi-in FILE --instrument I --style S --seconds 20 --sample-rate 24000`.
"""
import logging
import sys

logging.disable(logging.WARNING)  # basic-pitch warns that TensorFlow is absent: it is meant to be

import mir_eval  # noqa: E402
import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
import soundfile  # noqa: E402
from basic_pitch import ICASSP_2022_MODEL_PATH  # noqa: E402
from basic_pitch.inference import Model, predict  # noqa: E402


def arrays(notes):
    """mir_eval's (intervals, pitches in Hz) of (onset, offset, key) notes."""
    intervals = np.array([[a, max(b, a + 0.01)] for a, b, _ in notes]).reshape(-1, 2)
    pitches = np.array([440.0 * 2 ** ((k - 69) / 12) for _, _, k in notes])
    return intervals, pitches


model = Model(ICASSP_2022_MODEL_PATH)
for wav, reference in zip(sys.argv[1::2], sys.argv[2::2]):
    _, midi, _ = predict(wav, model)
    estimate = [(n.start, n.end, n.pitch) for i in midi.instruments for n in i.notes]
    end = soundfile.info(wav).duration - 0.2
    score = pretty_midi.PrettyMIDI(reference)
    wanted = [(n.start, n.end, n.pitch) for i in score.instruments if not i.is_drum for n in i.notes if n.start < end]
    (ri, rp), (ei, ep) = arrays(wanted), arrays(estimate)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=None)
    print(f"{wav}: F1 {f:.2f} (precision {p:.2f}, recall {r:.2f}), {len(wanted)} notes in the file, {len(estimate)} transcribed")
