//! The note state of each codec frame: what the performer is told to play.
//!
//! A performer is the codes prior conditioned, frame by frame, on the notes of its score. Those
//! notes arrive as `FrameNote`s (times in codec frames) and become one dense vector per frame,
//! appended to the knob and grid features (`conditioning`) when the prior's config asks for
//! notes (`PriorConfig::notes`). The same `paint` serves training (a crop of a tokenised clip)
//! and inference (the generator's next frame), so both see the same features.
//!
//! Layout, per frame f (the span [f, f + 1) in frames):
//! - `present`: 1 when notes are given. Absent notes (all zeros) are the unconditional model
//!   guidance mixes with, and training drops the notes now and then to teach it; silence is
//!   `present` with no key set.
//! - `sounding[key]`: the velocity (0-1) of the loudest note of that key overlapping the frame.
//! - `onset[key]`: 1 if a note of that key starts in this frame; `onset_next[key]` the same for
//!   the next frame. The codec's encoder is not causal (its convolutions see about two frames
//!   ahead), so a code can already carry an attack that starts in the following frame.
//! - `accompaniment[key]`: the key sounds in the generated bass or chords rather than in a part
//!   of the score (the renderer plays them on other programs of the family).
//! - `program[slot]`: which of the instrument family's programs (`vocab::INSTRUMENT_FAMILIES`)
//!   the sounding score parts play.

use serde::{Deserialize, Serialize};

/// Lowest and highest MIDI key the features hold: the renderer folds every note into this range
/// by octaves (C1 to C8), and so does the performer's input.
pub const LOWEST_KEY: u8 = 24;
pub const HIGHEST_KEY: u8 = 108;
/// Keys per block of the layout.
pub const KEYS: usize = (HIGHEST_KEY - LOWEST_KEY) as usize + 1;
/// Programs per instrument family at most.
pub const PROGRAM_SLOTS: usize = 4;

const PRESENT_AT: usize = 0;
const SOUNDING_AT: usize = 1;
/// Where the onsets of this frame start in a frame's features (tests look for them).
pub const ONSET_AT: usize = SOUNDING_AT + KEYS;
const ONSET_NEXT_AT: usize = ONSET_AT + KEYS;
const ACCOMPANIMENT_AT: usize = ONSET_NEXT_AT + KEYS;
const PROGRAM_AT: usize = ACCOMPANIMENT_AT + KEYS;
/// Width of one frame's note features.
pub const NOTE_DIM: usize = PROGRAM_AT + PROGRAM_SLOTS;
/// Frames past a frame whose notes its features show: the onsets of the next frame. Painting a
/// frame needs the notes starting before the end of the frame after it, and no later ones.
pub const ONSETS_AHEAD_FRAMES: u64 = 1;

/// Which voice of the rendering a note belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Voice {
    /// A part of the score, on the given program slot of its instrument family.
    Part { program_slot: u8 },
    /// The block chords of the generated accompaniment.
    Chords,
    /// The bass of the generated accompaniment.
    Bass,
}

/// One note as the performer sees it: onset and release in codec frames from the clip's (or
/// the stream's) first frame, fractional; the MIDI key it sounds at; its velocity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameNote {
    pub on: f64,
    pub off: f64,
    pub key: u8,
    pub velocity: u8,
    pub voice: Voice,
}

/// The velocity a score note is played at, as the corpus renderer humanises it: the score's
/// velocity scaled by 0.85, plus `jitter` (the renderer draws it in -10..10; a performance of a
/// written tune passes 0), plus a metric accent of 10 on the bar's downbeat and 4 on other
/// beats. `bar_position` and `beat` in quarter notes.
pub fn played_velocity(velocity: u8, bar_position: f64, beat: f64, jitter: f64) -> u8 {
    let accent = if bar_position < 1e-6 {
        10.0
    } else if beat > 0.0 && (bar_position / beat).fract() < 1e-6 {
        4.0
    } else {
        0.0
    };
    (velocity as f64 * 0.85 + jitter + accent).round().clamp(20.0, 127.0) as u8
}

/// Move a MIDI key by octaves into the features' range (as the renderer does).
pub fn fold_key(key: i32) -> u8 {
    let mut k = key;
    while k < LOWEST_KEY as i32 {
        k += 12;
    }
    while k > HIGHEST_KEY as i32 {
        k -= 12;
    }
    k as u8
}

/// Write the features of `frames` frames starting at frame `first` into `out` (`frames *
/// NOTE_DIM` values, frame-major), from `notes` (any order; notes outside the span are skipped,
/// absurd times ignored).
pub fn paint(notes: &[FrameNote], first: i64, frames: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), frames * NOTE_DIM);
    out.fill(0.0);
    for f in 0..frames {
        out[f * NOTE_DIM + PRESENT_AT] = 1.0;
    }
    let (start, end) = (first as f64, first as f64 + frames as f64);
    for n in notes {
        if !(n.on.is_finite() && n.off.is_finite()) || n.off <= start || n.on >= end + 1.0 {
            continue;
        }
        let key = (fold_key(n.key as i32) - LOWEST_KEY) as usize;
        let velocity = n.velocity.min(127) as f32 / 127.0;
        // Frames the note overlaps: f with f < off and f + 1 > on.
        let from = (n.on.floor().max(start) - start) as usize;
        let to = ((n.off.ceil().min(end) - start).max(0.0)) as usize;
        for f in from..to.min(frames) {
            let row = &mut out[f * NOTE_DIM..(f + 1) * NOTE_DIM];
            row[SOUNDING_AT + key] = row[SOUNDING_AT + key].max(velocity);
            match n.voice {
                Voice::Part { program_slot } => row[PROGRAM_AT + (program_slot as usize).min(PROGRAM_SLOTS - 1)] = 1.0,
                Voice::Chords | Voice::Bass => row[ACCOMPANIMENT_AT + key] = 1.0,
            }
        }
        let onset = n.on.floor() - start;
        if onset >= 0.0 && (onset as usize) < frames {
            out[onset as usize * NOTE_DIM + ONSET_AT + key] = 1.0;
        }
        if onset >= 1.0 && ((onset - 1.0) as usize) < frames {
            out[(onset - 1.0) as usize * NOTE_DIM + ONSET_NEXT_AT + key] = 1.0;
        }
    }
}

/// Which keys start in each frame of a painted span (the onset block), as (frame, key) pairs.
pub fn onsets(features: &[f32]) -> Vec<(usize, u8)> {
    features
        .chunks_exact(NOTE_DIM)
        .enumerate()
        .flat_map(|(f, row)| row[ONSET_AT..ONSET_AT + KEYS].iter().enumerate().filter(|(_, &v)| v > 0.0).map(move |(k, _)| (f, k as u8 + LOWEST_KEY)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(on: f64, off: f64, key: u8, voice: Voice) -> FrameNote {
        FrameNote { on, off, key, velocity: 100, voice }
    }

    #[test]
    fn a_note_sounds_in_every_frame_it_overlaps_and_starts_in_one() {
        let notes = [note(2.5, 5.2, 60, Voice::Part { program_slot: 1 }), note(4.0, 6.0, 12, Voice::Bass)];
        let mut out = vec![0.0; 8 * NOTE_DIM];
        paint(&notes, 0, 8, &mut out);
        let k60 = (60 - LOWEST_KEY) as usize;
        let sounding: Vec<usize> = (0..8).filter(|f| out[f * NOTE_DIM + SOUNDING_AT + k60] > 0.0).collect();
        assert_eq!(sounding, vec![2, 3, 4, 5]);
        assert!((out[3 * NOTE_DIM + SOUNDING_AT + k60] - 100.0 / 127.0).abs() < 1e-6);
        assert_eq!(onsets(&out), vec![(2, 60), (4, 24)], "the bass's key 12 folds up an octave to 24");
        assert_eq!(out[NOTE_DIM + ONSET_NEXT_AT + k60], 1.0, "frame 1 knows the onset that comes next");
        assert_eq!(out[3 * NOTE_DIM + PROGRAM_AT + 1], 1.0);
        assert_eq!(out[4 * NOTE_DIM + ACCOMPANIMENT_AT], 1.0);
        assert_eq!(out[3 * NOTE_DIM + ACCOMPANIMENT_AT + k60], 0.0, "a score part is not accompaniment");
        assert!((0..8).all(|f| out[f * NOTE_DIM + PRESENT_AT] == 1.0));
        assert!(out[7 * NOTE_DIM + 1..8 * NOTE_DIM].iter().all(|&v| v == 0.0), "frame 7 is silence");
    }

    #[test]
    fn a_span_paints_the_same_as_the_whole_and_absurd_notes_are_skipped() {
        let notes = [note(2.5, 9.2, 60, Voice::Chords), note(6.0, 6.5, 70, Voice::Part { program_slot: 9 }), note(f64::NAN, 3.0, 50, Voice::Bass), note(1.0, f64::INFINITY, 50, Voice::Bass)];
        let mut whole = vec![0.0; 12 * NOTE_DIM];
        paint(&notes, 0, 12, &mut whole);
        for first in 0..12 {
            let mut one = vec![0.0; NOTE_DIM];
            paint(&notes, first as i64, 1, &mut one);
            assert_eq!(one, whole[first * NOTE_DIM..(first + 1) * NOTE_DIM], "frame {first}");
        }
        assert_eq!(whole[6 * NOTE_DIM + PROGRAM_AT + PROGRAM_SLOTS - 1], 1.0, "slot 9 clamps to the last");
        assert!(whole.iter().all(|v| v.is_finite()));
        let mut before = vec![0.0; 3 * NOTE_DIM];
        paint(&notes, -3, 3, &mut before);
        assert!(before.chunks_exact(NOTE_DIM).all(|r| r[1..].iter().all(|&v| v == 0.0)), "nothing sounds before frame 0");
    }
}
