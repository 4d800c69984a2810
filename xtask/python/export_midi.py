"""Export the licence-clean part of the music21 corpus to MIDI plus a metadata line per piece.

Run by `cargo xtask dataset export` inside a venv that pins music21. Parsing is the slow step
(CPU-hours for everything), so the output (small MIDI files and index.jsonl) is committed and this
script skips every piece it has already exported or already recorded as skipped: it resumes.

Each ABC file is split into tunes at `X:` lines and each tune is parsed on its own, so one broken
tune is logged and skipped without losing the rest of its book.
"""
import argparse
import copy
import json
import os
import signal
import sys
import time
import traceback

import music21
from music21 import converter, corpus, key as m21key, meter, stream

# collection -> (corpus folder, file glob suffix, licence / provenance line). Only collections whose
# licence lets us train and ship a model. Essen (non-commercial), Palestrina (rights reserved),
# Josquin (GPL) and the Nottingham database (no licence stated in its files) are left out on purpose.
COLLECTIONS = {
    "oneills1850": ("oneills1850", ".abc", "O'Neill's Music of Ireland (1903, public domain); ABC transcription by Norbert Paap / M. Hogan"),
    "ryansMammoth": ("ryansMammoth", ".abc", "Ryan's Mammoth Collection (1883, public domain); ABC by J. Chambers and contributors"),
    "airdsAirs": ("airdsAirs", ".abc", "Aird's Selection of Airs (1778-1803, public domain); ABC by Jack Campin, 2009"),
    "bach": ("bach", ".mxl", "J.S. Bach chorales (public domain); (c)2004 Margaret Greentree encodings, distributed with permission"),
}

TIMEOUT_S = 60


class Timeout(Exception):
    pass


def _alarm(_sig, _frm):
    raise Timeout()


def split_abc(text):
    """Split an ABC book into (x_number, tune_text) pairs; file-level header lines are dropped."""
    tunes, cur = [], None
    for line in text.splitlines():
        if line.startswith("X:"):
            if cur:
                tunes.append(cur)
            cur = [line]
        elif cur is not None:
            cur.append(line)
    if cur:
        tunes.append(cur)
    out = []
    for lines in tunes:
        x = lines[0][2:].strip()
        out.append((x, "\n".join(lines) + "\n"))
    return out


def abc_fields(text):
    """The header fields of one tune as {letter: [values]} (T:, R:, M:, L:, Q:, K:, N:, B:)."""
    fields = {}
    for line in text.splitlines():
        if len(line) > 1 and line[1] == ":" and line[0].isalpha():
            fields.setdefault(line[0], []).append(line[2:].strip())
            if line[0] == "K":
                break
    return fields


def dedupe_shared_elements(score):
    """music21's ABC parser sometimes puts one TimeSignature object in two measures (a repeat
    split at a pickup); MIDI export then refuses the stream. Give each later measure its own copy."""
    seen = set()
    for m in score.recurse().getElementsByClass(stream.Measure):
        for el in list(m.getElementsByClass((meter.TimeSignature, m21key.KeySignature))):
            if id(el) in seen:
                m.replace(el, copy.deepcopy(el))
            else:
                seen.add(id(el))


def describe(score):
    """Key, metre and bar positions of a parsed score, as the renderer needs them."""
    flat = score.flatten()
    keys = list(flat.getElementsByClass(m21key.Key))
    if keys:
        k = keys[0]
        key_src = "declared"
    else:
        k = score.analyze("key")
        key_src = "analyzed"
    ts = list(flat.getElementsByClass(meter.TimeSignature))
    ts0 = ts[0] if ts else meter.TimeSignature("4/4")
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    measures = list(parts[0].getElementsByClass(stream.Measure))
    bar_starts = [float(m.offset) for m in measures]
    # A pickup measure is shorter than the metre: the first full bar starts after it.
    first_full = 0.0
    if measures:
        m0 = measures[0]
        if m0.paddingLeft and m0.paddingLeft > 0 and len(bar_starts) > 1:
            first_full = bar_starts[1]
    n_notes = len(flat.notes)
    chords = sum(1 for n in flat.notes if n.isChord)
    return {
        "key_tonic": k.tonic.name,
        "key_pitch_class": k.tonic.pitchClass,
        "key_mode": k.mode,
        "key_source": key_src,
        "time_signature": ts0.ratioString,
        "beat_quarters": float(ts0.beatDuration.quarterLength),
        "bar_quarters": float(ts0.barDuration.quarterLength),
        "time_signatures": sorted(set(t.ratioString for t in ts)),
        "bar_starts_quarters": bar_starts,
        "first_full_bar_quarters": first_full,
        "duration_quarters": float(score.highestTime),
        "parts": len(parts),
        "notes": n_notes,
        "chords": chords,
    }


def export_one(score, out_path):
    # Write at a fixed 120 quarter notes a minute: the renderer re-times to the target tempo.
    for mm in list(score.recurse().getElementsByClass("MetronomeMark")):
        mm.activeSite.remove(mm)
    score.insert(0, music21.tempo.MetronomeMark(number=120))
    score.write("midi", fp=out_path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="output folder (midi/ and index.jsonl inside)")
    ap.add_argument("--collections", default=",".join(COLLECTIONS))
    ap.add_argument("--limit", type=int, default=0, help="at most this many pieces per collection (0: all)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    index_path = os.path.join(args.out, "index.jsonl")
    done = set()
    if os.path.exists(index_path):
        with open(index_path) as f:
            for line in f:
                try:
                    done.add(json.loads(line)["id"])
                except Exception:
                    pass
    index = open(index_path, "a", buffering=1)
    signal.signal(signal.SIGALRM, _alarm)
    root = os.path.dirname(corpus.__file__)

    for coll in args.collections.split(","):
        folder, ext, licence = COLLECTIONS[coll]
        files = sorted(f for f in os.listdir(os.path.join(root, folder)) if f.endswith(ext))
        os.makedirs(os.path.join(args.out, "midi", coll), exist_ok=True)
        count = 0
        for fname in files:
            path = os.path.join(root, folder, fname)
            if ext == ".abc":
                with open(path, encoding="latin-1") as f:
                    items = [(f"{coll}/{os.path.splitext(fname)[0]}-{x}", t) for x, t in split_abc(f.read())]
            else:
                items = [(f"{coll}/{os.path.splitext(fname)[0]}", None)]
            for pid, text in items:
                if args.limit and count >= args.limit:
                    break
                count += 1
                if pid in done:
                    continue
                rec = {"id": pid, "collection": coll, "source_file": f"music21/corpus/{folder}/{fname}",
                       "licence": licence, "music21": music21.__version__}
                t0 = time.time()
                signal.alarm(TIMEOUT_S)
                try:
                    if text is not None:
                        fields = abc_fields(text)
                        rec["title"] = (fields.get("T") or [""])[0]
                        rec["rhythm"] = (fields.get("R") or [""])[0]
                        rec["abc_meter"] = (fields.get("M") or [""])[0]
                        rec["abc_key"] = (fields.get("K") or [""])[0]
                        rec["abc_notes"] = fields.get("N", [])
                        score = converter.parse(text, format="abc")
                        if isinstance(score, stream.Opus):
                            score = score.scores[0]
                    else:
                        score = converter.parse(path)
                        rec["title"] = score.metadata.title if score.metadata and score.metadata.title else pid
                        rec["rhythm"] = "chorale"
                    dedupe_shared_elements(score)
                    rec.update(describe(score))
                    if rec["notes"] < 8:
                        raise ValueError("fewer than 8 notes")
                    mid = os.path.join("midi", pid + ".mid")
                    export_one(score, os.path.join(args.out, mid))
                    rec["midi"] = mid
                    rec["status"] = "ok"
                except Timeout:
                    rec["status"] = "skipped"
                    rec["reason"] = f"parse timeout ({TIMEOUT_S} s)"
                except Exception as e:  # noqa: BLE001: every failure is recorded, none aborts the run
                    rec["status"] = "skipped"
                    rec["reason"] = f"{type(e).__name__}: {str(e)[:200]}"
                finally:
                    signal.alarm(0)
                rec["parse_s"] = round(time.time() - t0, 2)
                index.write(json.dumps(rec, sort_keys=True) + "\n")
                print(f"{pid}: {rec['status']} {rec.get('reason', '')} ({rec['parse_s']} s)", flush=True)
    index.close()


if __name__ == "__main__":
    sys.exit(main())
