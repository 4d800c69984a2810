"""Piano rolls of MIDI files, one above the other, with bar lines: to read what the score prior
wrote beside a real tune of the corpus.

    python3 -m venv /tmp/pr && /tmp/pr/bin/pip install mido matplotlib
    /tmp/pr/bin/python scripts/piano_roll.py OUT.png BAR_QUARTERS TITLE=FILE.mid [TITLE=FILE.mid ...]

BAR_QUARTERS is the bar's length in quarter notes (4 in 2/2 and 4/4, 3 in 6/8). Each track is
drawn in its own colour; only the first 16 bars are shown.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mido

BARS = 16
COLOURS = ["#1f5fa8", "#d9822b", "#4a9a4a", "#a83232", "#7a4aa8", "#555555"]


def notes(path):
    """(start, length, key, track) in quarter notes."""
    m = mido.MidiFile(path)
    tpq = m.ticks_per_beat
    out = []
    for i, track in enumerate(m.tracks):
        t, on = 0, {}
        for ev in track:
            t += ev.time
            if ev.type == "note_on" and ev.velocity > 0:
                on[(ev.channel, ev.note)] = t
            elif ev.type in ("note_off", "note_on") and (ev.channel, ev.note) in on:
                s = on.pop((ev.channel, ev.note))
                out.append((s / tpq, (t - s) / tpq, ev.note, i))
    return out


def main():
    out, bar = sys.argv[1], float(sys.argv[2])
    rolls = [a.split("=", 1) for a in sys.argv[3:]]
    fig, axes = plt.subplots(len(rolls), 1, figsize=(14, 3.2 * len(rolls)), squeeze=False)
    for ax, (title, path) in zip(axes[:, 0], rolls):
        ns = [n for n in notes(path) if n[0] < BARS * bar]
        tracks = sorted({n[3] for n in ns})
        for s, d, k, tr in ns:
            ax.add_patch(plt.Rectangle((s, k - 0.4), min(d, BARS * bar - s), 0.8, color=COLOURS[tracks.index(tr) % len(COLOURS)]))
        keys = [n[2] for n in ns] or [60]
        ax.set_xlim(0, BARS * bar)
        ax.set_ylim(min(keys) - 2, max(keys) + 2)
        for b in range(BARS + 1):
            ax.axvline(b * bar, color="#bbbbbb" if b % 8 else "#333333", lw=0.8 if b % 8 else 1.6, zorder=0)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel("MIDI key")
    axes[-1, 0].set_xlabel("quarter notes (thin lines: bars; thick: 8-bar strains)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
