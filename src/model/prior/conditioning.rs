//! What the prior is steered by, as one dense feature vector per frame.
//!
//! Knob conditions (style blend, instrument, key, tempo) can each be absent: training drops them
//! at random (conditioning dropout), so the same model is also unconditional, and classifier-free
//! guidance mixes the two. The musical grid (where the frame falls in its beat, bar and phrase)
//! is timing, not a knob: it is present in both guidance passes, except that the phrase position
//! has its own dropout so its effect on long-range structure can be measured (EVAL.md).
//!
//! A dense vector projected by one linear layer is the same as summing one embedding per label,
//! and costs one small matmul per frame.

use crate::model::vocab::{BPM_RANGE, INSTRUMENT_FAMILIES, STYLES};
use std::f32::consts::TAU;

/// Bars per phrase for the phrase-position conditioning (the dance tunes of the corpus are
/// built from 8-bar strains).
pub const PHRASE_BARS: u32 = 8;

const N_STYLES: usize = STYLES.len();
const N_INSTRUMENTS: usize = INSTRUMENT_FAMILIES.len();

// Layout of the feature vector.
const STYLE_AT: usize = 0; // present flag, then normalised weights
const INSTRUMENT_AT: usize = STYLE_AT + 1 + N_STYLES;
const KEY_AT: usize = INSTRUMENT_AT + 1 + N_INSTRUMENTS; // present, 12 tonics, 2 modes
const TEMPO_AT: usize = KEY_AT + 1 + 12 + 2; // present, log2(bpm / 120), its square
const GRID_AT: usize = TEMPO_AT + 3; // beat phase sin/cos, bar phase sin/cos
const PHRASE_AT: usize = GRID_AT + 4; // present, phrase phase sin/cos, bar-in-phrase one-hot
/// Width of the conditioning feature vector.
pub const COND_DIM: usize = PHRASE_AT + 3 + PHRASE_BARS as usize;

/// The knob conditions of one frame. `None` means "not given" (the unconditional model).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Knobs {
    /// Style weights (any non-negative scale; normalised here). All zero counts as absent.
    pub styles: Option<[f32; N_STYLES]>,
    /// Instrument family index.
    pub instrument: Option<u32>,
    /// Key: tonic pitch class (C = 0) and mode (0 major, 1 minor).
    pub key: Option<(u32, u32)>,
    /// Tempo in beats per minute.
    pub bpm: Option<f32>,
}

impl Knobs {
    /// The same knobs with every condition removed (the unconditional guidance pass).
    pub fn unconditional() -> Self {
        Self::default()
    }
}

/// Where a frame falls on the musical grid.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GridPosition {
    /// Beats since the musical origin (bar 0, beat 0), fractional.
    pub beats: f64,
    /// Beats per bar (time signature numerator).
    pub beats_per_bar: u32,
    /// Whether the phrase position is given (dropped in training now and then, and in the
    /// ablation that measures what it does).
    pub phrase: bool,
}

impl GridPosition {
    /// Whether this frame falls in the second playing of a strain, and if so how many frames
    /// back the same place in the first playing is: strains of `PHRASE_BARS` bars come in pairs
    /// (A A B B ..., as the corpus's dance tunes repeat each strain), so the second strain of
    /// every pair echoes the one before (`Sampling::repeat`). `None` in the first strain of a
    /// pair, or without a usable tempo.
    pub fn strain_echo_frames(&self, bpm: Option<f32>, frame_rate: f64) -> Option<usize> {
        let bpm = bpm.filter(|b| b.is_finite() && *b > 0.0)? as f64;
        if !(self.beats.is_finite() && self.beats >= 0.0 && frame_rate.is_finite() && frame_rate > 0.0) {
            return None;
        }
        let per_bar = self.beats_per_bar.clamp(1, 32) as f64;
        let strain = (self.beats / per_bar / PHRASE_BARS as f64).floor() as u64;
        (strain % 2 == 1).then(|| (PHRASE_BARS as f64 * per_bar * 60.0 / bpm * frame_rate).round() as usize)
    }
}

/// Write the features of one frame into `out` (length `COND_DIM`). Absurd values are clamped
/// or treated as absent, never propagated as NaN.
pub fn write_features(knobs: &Knobs, grid: &GridPosition, out: &mut [f32]) {
    debug_assert_eq!(out.len(), COND_DIM);
    out.fill(0.0);
    if let Some(w) = knobs.styles {
        let clean: Vec<f32> = w.iter().map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 }).collect();
        let sum: f32 = clean.iter().sum();
        if sum > 1e-6 {
            out[STYLE_AT] = 1.0;
            for (i, v) in clean.iter().enumerate() {
                out[STYLE_AT + 1 + i] = v / sum;
            }
        }
    }
    if let Some(i) = knobs.instrument.filter(|&i| (i as usize) < N_INSTRUMENTS) {
        out[INSTRUMENT_AT] = 1.0;
        out[INSTRUMENT_AT + 1 + i as usize] = 1.0;
    }
    if let Some((tonic, mode)) = knobs.key {
        out[KEY_AT] = 1.0;
        out[KEY_AT + 1 + (tonic % 12) as usize] = 1.0;
        out[KEY_AT + 13 + mode.min(1) as usize] = 1.0;
    }
    if let Some(bpm) = knobs.bpm.filter(|b| b.is_finite()) {
        let t = (bpm.clamp(BPM_RANGE.0 * 0.5, BPM_RANGE.1 * 2.0) / 120.0).log2();
        out[TEMPO_AT] = 1.0;
        out[TEMPO_AT + 1] = t;
        out[TEMPO_AT + 2] = t * t;
    }
    let beats = if grid.beats.is_finite() { grid.beats.max(0.0) } else { 0.0 };
    let per_bar = grid.beats_per_bar.clamp(1, 32) as f64;
    let beat_phase = beats.fract() as f32;
    let bars = beats / per_bar;
    let bar_phase = bars.fract() as f32;
    out[GRID_AT] = (TAU * beat_phase).sin();
    out[GRID_AT + 1] = (TAU * beat_phase).cos();
    out[GRID_AT + 2] = (TAU * bar_phase).sin();
    out[GRID_AT + 3] = (TAU * bar_phase).cos();
    if grid.phrase {
        let phrase = bars / PHRASE_BARS as f64;
        let phrase_phase = phrase.fract() as f32;
        let bar_in_phrase = (bars.floor() as u64 % PHRASE_BARS as u64) as usize;
        out[PHRASE_AT] = 1.0;
        out[PHRASE_AT + 1] = (TAU * phrase_phase).sin();
        out[PHRASE_AT + 2] = (TAU * phrase_phase).cos();
        out[PHRASE_AT + 3 + bar_in_phrase] = 1.0;
    }
}

/// Features of one frame as a new vector.
pub fn features(knobs: &Knobs, grid: &GridPosition) -> Vec<f32> {
    let mut v = vec![0.0; COND_DIM];
    write_features(knobs, grid, &mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_knobs_leave_only_the_grid() {
        let grid = GridPosition { beats: 5.25, beats_per_bar: 4, phrase: true };
        let f = features(&Knobs::unconditional(), &grid);
        assert!(f[..GRID_AT].iter().all(|&v| v == 0.0));
        // Beat phase 0.25: sin 1, cos 0. Bar 1 of the phrase.
        assert!((f[GRID_AT] - 1.0).abs() < 1e-6 && f[GRID_AT + 1].abs() < 1e-6);
        assert_eq!(f[PHRASE_AT + 3 + 1], 1.0);
    }

    #[test]
    fn style_weights_are_normalised_and_absurd_values_are_tamed() {
        let knobs = Knobs { styles: Some([2.0, 0.0, 2.0, f32::NAN, -1.0, 0.0]), instrument: Some(99), key: Some((14, 7)), bpm: Some(f32::INFINITY) };
        let f = features(&knobs, &GridPosition { beats: f64::NAN, beats_per_bar: 0, phrase: false });
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f[STYLE_AT], 1.0);
        assert_eq!((f[STYLE_AT + 1], f[STYLE_AT + 3]), (0.5, 0.5));
        assert_eq!(f[INSTRUMENT_AT], 0.0, "an unknown instrument is absent");
        assert_eq!(f[KEY_AT + 1 + 2], 1.0, "tonic 14 wraps to D");
        assert_eq!(f[KEY_AT + 14], 1.0, "mode clamps to minor");
        assert_eq!(f[TEMPO_AT], 0.0, "infinite tempo is absent");
    }

    #[test]
    fn the_second_strain_of_each_pair_echoes_the_first() {
        // 4/4 at 120 BPM, 75 frames/s: a strain of 8 bars is 16 s, 1200 frames.
        let at = |bar: f64| GridPosition { beats: bar * 4.0, beats_per_bar: 4, phrase: true }.strain_echo_frames(Some(120.0), 75.0);
        assert_eq!(at(0.0), None);
        assert_eq!(at(7.9), None);
        assert_eq!(at(8.0), Some(1200));
        assert_eq!(at(15.9), Some(1200));
        assert_eq!(at(16.5), None, "a new strain pair starts fresh");
        assert_eq!(at(24.0), Some(1200));
        assert_eq!(GridPosition { beats: 9.0 * 3.0, beats_per_bar: 3, phrase: false }.strain_echo_frames(Some(90.0), 75.0), Some(1200), "3/4 at 90 BPM: 8 bars are 16 s");
        assert_eq!(at(8.0).and(GridPosition { beats: 40.0, beats_per_bar: 4, phrase: true }.strain_echo_frames(None, 75.0)), None, "no tempo, no echo");
        assert_eq!(GridPosition { beats: f64::NAN, beats_per_bar: 4, phrase: true }.strain_echo_frames(Some(120.0), 75.0), None);
    }
}
