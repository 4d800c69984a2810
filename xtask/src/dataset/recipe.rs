//! Clip recipes: everything needed to render one labelled clip, fully determined by the seed.
//!
//! A piece becomes `variants` renderings (instrument family, tempo, key, soundfont, velocity
//! humanisation and, for single-line tunes, an optional accompaniment, all drawn from an RNG
//! seeded by (seed, piece, variant)); each rendering is cut into clips of `clip_seconds`.

use super::index::PieceMeta;
use super::labels::style_of;
use cantor::model::vocab::{INSTRUMENT_FAMILIES, KEY_NAMES, MODES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The knobs of a corpus build. `default()` is the full corpus, `quick()` a one-minute one for tests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetConfig {
    /// Name of the cache sub-folder.
    pub name: String,
    pub seed: u64,
    /// Renderings of each piece (each with its own instrument, tempo, key...).
    pub variants: u32,
    pub clip_seconds: f64,
    /// The shortest tail of a rendering kept as a clip of its own.
    pub min_clip_seconds: f64,
    pub sample_rate: u32,
    /// Soundfont file names, looked up in the soundfont folder.
    pub soundfonts: Vec<String>,
    /// At most this many pieces per collection (0 = all).
    pub max_pieces_per_collection: usize,
    /// At most this many clips from each rendering (0 = the whole piece).
    pub max_clips_per_rendering: usize,
    /// Fractions of pieces in the validation and test splits.
    pub valid_fraction: f64,
    pub test_fraction: f64,
    /// Probability that a single-line tune gets a generated bass and chords.
    pub accompaniment_probability: f64,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            name: "full".into(),
            seed: 20261125,
            variants: 3,
            clip_seconds: 10.0,
            min_clip_seconds: 3.0,
            sample_rate: 24_000,
            soundfonts: vec!["FluidR3_GM.sf2".into(), "MuseScore_General_Full.sf2".into()],
            max_pieces_per_collection: 0,
            max_clips_per_rendering: 0,
            valid_fraction: 0.05,
            test_fraction: 0.05,
            accompaniment_probability: 0.5,
        }
    }
}

impl DatasetConfig {
    /// About a minute of audio: a few pieces of every collection, one soundfont.
    pub fn quick() -> Self {
        Self {
            name: "quick".into(),
            variants: 1,
            clip_seconds: 5.0,
            soundfonts: vec!["FluidR3_GM.sf2".into()],
            max_pieces_per_collection: 2,
            max_clips_per_rendering: 2,
            // Tiny corpora still need every split represented.
            valid_fraction: 0.2,
            test_fraction: 0.2,
            ..Self::default()
        }
    }
}

/// One clip to render, with its labels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClipRecipe {
    pub id: String,
    pub piece: String,
    pub collection: String,
    pub midi: String,
    pub split: String,
    // Labels.
    pub style: String,
    pub instrument: String,
    pub bpm: f64,
    pub key_pitch_class: u8,
    pub key_tonic: String,
    pub key_mode: String,
    pub time_signature: String,
    pub beat_quarters: f64,
    pub bar_quarters: f64,
    /// Where the first full bar of the piece starts, in quarters: bar k starts at this + k * bar.
    pub first_full_bar_quarters: f64,
    pub soundfont: String,
    pub accompaniment: bool,
    // How to render.
    /// GM program for each part of the score (index = part).
    pub programs: Vec<u8>,
    /// Programs for the generated accompaniment: (chords, bass).
    pub accompaniment_programs: (u8, u8),
    pub transpose: i8,
    pub velocity_seed: u64,
    /// Start of the clip in the score, in quarters.
    pub start_quarters: f64,
    pub seconds: f64,
}

impl ClipRecipe {
    /// Quarter notes per second at the clip's tempo.
    pub fn quarters_per_second(&self) -> f64 {
        self.bpm * self.beat_quarters / 60.0
    }
}

/// A stable 64-bit hash (FNV-1a), so seeds derived from names never change between builds.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Split of a piece: by a hash of its split key (collection and tune title), so every clip of a
/// piece, and every setting of a tune that a book prints more than once, lands in one split.
pub fn split_of(cfg: &DatasetConfig, split_key: &str) -> &'static str {
    let u = (stable_hash(&[&cfg.seed.to_le_bytes(), split_key.as_bytes(), b"split"]) >> 11) as f64 / (1u64 << 53) as f64;
    if u < cfg.test_fraction {
        "test"
    } else if u < cfg.test_fraction + cfg.valid_fraction {
        "valid"
    } else {
        "train"
    }
}

/// Tempo range in beats per minute a style is played at (clamped to the knob's 60-180).
fn bpm_range(style: &str, time_signature: &str, beat_quarters: f64) -> (f64, f64) {
    match style {
        "chorale" => (60.0, 100.0),
        "air" => (60.0, 110.0),
        "jig" => (90.0, 140.0),
        "reel" | "hornpipe" if beat_quarters >= 2.0 || time_signature == "2/4" => (75.0, 120.0),
        "reel" => (130.0, 180.0),
        "hornpipe" => (110.0, 170.0),
        _ => (80.0, 130.0),
    }
}

/// Shift in semitones (-6..=5) that moves `from` pitch class onto `to`.
pub fn shift_to(from: u8, to: u8) -> i8 {
    ((to as i32 - from as i32 + 6).rem_euclid(12) - 6) as i8
}

/// Programs for the accompaniment of an instrument family: (chords, bass).
fn accompaniment_programs(family: usize) -> (u8, u8) {
    match INSTRUMENT_FAMILIES[family].0 {
        "piano" => (0, 0),
        "strings" => (48, 42),
        "organ" => (19, 19),
        "winds" => (71, 70),
        "brass" => (61, 58),
        "plucked" => (24, 32),
        "choir/pads" => (52, 89),
        _ => (11, 12),
    }
}

/// All clip recipes of a corpus build, in a fixed order.
pub fn build_recipes(cfg: &DatasetConfig, pieces: &[PieceMeta]) -> Vec<ClipRecipe> {
    let mut per_collection: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut seen_numbers = std::collections::HashSet::new();
    let mut clips = Vec::new();
    for piece in pieces.iter().filter(|p| p.status == "ok" && p.midi.is_some()) {
        // O'Neill's files overlap (0626-0635 and 0626-0700 hold the same tunes): keep one copy.
        if piece.collection == "oneills1850" {
            if let Some(n) = super::labels::tune_number(&piece.id) {
                if !seen_numbers.insert(n) {
                    continue;
                }
            }
        }
        let n = per_collection.entry(piece.collection.as_str()).or_default();
        if cfg.max_pieces_per_collection > 0 && *n >= cfg.max_pieces_per_collection {
            continue;
        }
        *n += 1;
        let style = style_of(piece);
        let split = split_of(cfg, &piece.split_key());
        for v in 0..cfg.variants {
            let mut rng = ChaCha8Rng::seed_from_u64(stable_hash(&[
                &cfg.seed.to_le_bytes(),
                piece.id.as_bytes(),
                &v.to_le_bytes(),
            ]));
            let family = rng.random_range(0..INSTRUMENT_FAMILIES.len());
            let (family_name, programs) = INSTRUMENT_FAMILIES[family];
            let parts = piece.parts.max(1) as usize;
            let part_programs: Vec<u8> = (0..parts).map(|_| programs[rng.random_range(0..programs.len())]).collect();
            let (lo, hi) = bpm_range(style, &piece.time_signature, piece.beat_quarters);
            let bpm = (rng.random_range(lo..=hi) as f64).round().clamp(60.0, 180.0);
            let target_key = rng.random_range(0..12u8);
            let transpose = shift_to(piece.key_pitch_class, target_key);
            let mode = if cantor::model::vocab::mode_index(&piece.key_mode) == Some(1) { MODES[1] } else { MODES[0] };
            let soundfont = cfg.soundfonts[rng.random_range(0..cfg.soundfonts.len())].clone();
            let accompaniment = piece.is_monophonic() && rng.random_bool(cfg.accompaniment_probability);
            let velocity_seed = rng.random();
            let qps = bpm * piece.beat_quarters / 60.0;
            let total_s = piece.duration_quarters / qps;
            let mut start_s = 0.0;
            let mut c = 0;
            while start_s < total_s {
                let seconds = (total_s - start_s).min(cfg.clip_seconds);
                if seconds < cfg.min_clip_seconds {
                    break;
                }
                clips.push(ClipRecipe {
                    id: format!("{}#v{}c{}", piece.id, v, c),
                    piece: piece.id.clone(),
                    collection: piece.collection.clone(),
                    midi: piece.midi.clone().unwrap_or_default(),
                    split: split.into(),
                    style: style.into(),
                    instrument: family_name.into(),
                    bpm,
                    key_pitch_class: target_key,
                    key_tonic: KEY_NAMES[target_key as usize].into(),
                    key_mode: mode.into(),
                    time_signature: piece.time_signature.clone(),
                    beat_quarters: piece.beat_quarters,
                    bar_quarters: piece.bar_quarters,
                    first_full_bar_quarters: piece.first_full_bar_quarters,
                    soundfont: soundfont.clone(),
                    accompaniment,
                    programs: part_programs.clone(),
                    accompaniment_programs: accompaniment_programs(family),
                    transpose,
                    velocity_seed,
                    start_quarters: start_s * qps,
                    seconds,
                });
                start_s += cfg.clip_seconds;
                c += 1;
                if cfg.max_clips_per_rendering > 0 && c >= cfg.max_clips_per_rendering {
                    break;
                }
            }
        }
    }
    clips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_reach_every_key() {
        for from in 0..12 {
            for to in 0..12 {
                let s = shift_to(from, to);
                assert!((-6..=5).contains(&s));
                assert_eq!((from as i32 + s as i32).rem_euclid(12), to as i32);
            }
        }
    }

    #[test]
    fn splits_are_stable_and_roughly_sized() {
        let cfg = DatasetConfig::default();
        let ids: Vec<String> = (0..4000).map(|i| format!("p{i}")).collect();
        let test = ids.iter().filter(|id| split_of(&cfg, id) == "test").count();
        assert!((120..280).contains(&test), "{test}");
        assert_eq!(split_of(&cfg, "p1"), split_of(&cfg, "p1"));
    }
}
