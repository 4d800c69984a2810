"""Loads Cantor.vst3 with Spotify's pedalboard (a JUCE host), as a DAW would: checks it is an
instrument, lists and sets parameters, renders MIDI to audio, performs a note with Source on
"play my notes" (heard after the latency, silent around it) and a phrase with Source on
"continue my phrase" (Cantor answers after a rest, from the next bar line), and round-trips its
state. pedalboard prepares plugins non-realtime (JUCE then asks for the VST3 offline mode).
Run by tests/vst3_host.rs; prints one JSON line with what it saw; exits non-zero on failure."""

import json
import struct
import sys

import numpy as np
import pedalboard
from pedalboard.io import AudioFile  # noqa: F401  (import check: the package is complete)

path = sys.argv[1]
plugin = pedalboard.load_plugin(path)
assert plugin.is_instrument, "Cantor should load as an instrument"
assert not plugin.is_effect, "Cantor takes no audio input"

params = plugin.parameters
names = sorted(params.keys())
for expected in ["output_gain_db", "stereo_width", "temperature", "seed", "run_mode", "reel", "tempo_bpm"]:
    assert expected in names, f"parameter {expected!r} missing from {names}"

plugin.stereo_width = 150.0
plugin.temperature = 1.2
plugin.run_mode = "Always"

sample_rate = 48_000
notes = [(bytes([0x90, 62, 100]), 0.0), (bytes([0x80, 62, 0]), 2.0)]
audio = plugin(notes, duration=3.0, sample_rate=sample_rate, num_channels=2, buffer_size=64)
assert audio.shape == (2, 3 * sample_rate), audio.shape
assert np.isfinite(audio).all(), "non-finite samples"

# Source "play my notes": a note from 1.0 to 1.5 s is heard after the plugin's latency (the
# look-ahead plus about 47 ms) until 0.4 s after its release, and nothing before or after it.
plugin.source = "Play my notes"
plugin.stereo_width = 0.0
played = plugin([(bytes([0x90, 62, 100]), 1.0), (bytes([0x80, 62, 0]), 1.5)], duration=4.0, sample_rate=sample_rate, num_channels=2, buffer_size=256)
tenths = np.abs(played[0]).reshape(-1, sample_rate // 10).max(axis=1)
assert tenths[:10].max() == 0.0, f"sound before the note: {tenths}"
assert tenths[12:15].min() > 0.0, f"the note is not heard: {tenths}"
assert tenths[23:].max() == 0.0, f"sound long after the note's release: {tenths}"

# Source "continue my phrase" (pedalboard prepares plugins non-realtime: the VST3 offline mode):
# four notes a beat apart at 120 BPM from 0.5 s, the last released at 2.25 s (beat 4.5); after a
# beat's rest Cantor answers from bar line 8 (4 s, heard the latency later), silent before it.
plugin.source = "Continue my phrase"
phrase = []
for i, key in enumerate([62, 66, 69, 74]):
    phrase += [(bytes([0x90, key, 100]), 0.5 + 0.5 * i), (bytes([0x80, key, 0]), 0.75 + 0.5 * i)]
answered = plugin(phrase, duration=7.0, sample_rate=sample_rate, num_channels=2, buffer_size=256)
answer_tenths = np.abs(answered[0]).reshape(-1, sample_rate // 10).max(axis=1)
assert answer_tenths[6:20].min() > 0.0, f"the phrase is not heard: {answer_tenths}"
assert answer_tenths[32:40].max() == 0.0, f"sound in the rest before Cantor's cue: {answer_tenths}"
assert answer_tenths[41:].max() > 0.0, f"Cantor did not answer: {answer_tenths}"
plugin.source = "Compose"
plugin.stereo_width = 150.0

state = plugin.raw_state
plugin.temperature = 0.3
assert abs(plugin.temperature - 0.3) < 0.02
plugin.raw_state = state
assert abs(plugin.temperature - 1.2) < 0.02, f"state did not restore the temperature: {plugin.temperature}"

# A factory preset written as a .vstpreset file (tests/vst3_host.rs), loaded the way hosts do.
# What the plugin now holds is read back from its own state (the component chunk of
# `preset_data`): JUCE's parameter cache is not refreshed by a preset load.
plugin.load_preset(sys.argv[2])
data = plugin.preset_data
assert data[:4] == b"VST3", data[:4]
list_offset = struct.unpack("<q", data[40:48])[0]
held = json.loads(data[48:list_offset])["params"]
preset = {"instrument": held["instrument"]["i32"], "tempo": held["tempo"]["f32"], "guidance": held["guidance"]["f32"]}

print(json.dumps({
    "preset": preset,
    "parameters": len(names),
    "samples": int(audio.shape[1]),
    "peak": float(np.abs(audio).max()),
    "played_tenths": [round(float(v), 4) for v in tenths],
    "answer_tenths": [round(float(v), 4) for v in answer_tenths],
    "state_bytes": len(state),
}))
