//! Adherence of generated takes, the table of `eval prior` and each row of its guidance sweep:
//! is each style recognised, its tempo kept and its key right, and how far apart are two takes
//! of one style.

use super::style::{style_features, StyleClassifier};
use super::{render_mono, SR, STYLE_BPM, STYLE_TIME_SIGNATURE};
use crate::eval::music::{estimate_key, tempo_adherent};
use anyhow::Result;
use cantor::knobs::KnobValues;
use cantor::model::vocab::{INSTRUMENT_FAMILIES, STYLES};
use cantor::plugin::render::RenderSettings;
use cantor::plugin::SourceFactory;

/// Adherence of generated takes: every style at its typical tempo, keys and instruments
/// rotating with the seed, at guidance strength `guidance`.
pub(super) struct Adherence {
    /// Markdown rows, one per style: recognised, tempo within 5%, key right (counts of `seeds`).
    pub rows: String,
    pub takes: usize,
    pub style_ok: usize,
    pub tempo_ok: usize,
    pub key_ok: usize,
    /// Mean standardised feature distance between two takes of one style.
    pub diversity: f64,
}

impl Adherence {
    pub fn pct(&self, k: usize) -> f64 {
        100.0 * k as f64 / self.takes.max(1) as f64
    }
}

/// `signature`: every style in this time signature instead of its usual one.
pub(super) fn adherence(
    factory: &impl Fn() -> SourceFactory,
    clf: &StyleClassifier,
    seeds: u32,
    seconds: f64,
    guidance: f32,
    signature: Option<(u32, u32)>,
) -> Result<Adherence> {
    let mut out = Adherence { rows: String::new(), takes: 0, style_ok: 0, tempo_ok: 0, key_ok: 0, diversity: 0.0 };
    let mut diversity = Vec::new();
    for (s, style) in STYLES.iter().enumerate() {
        let mut feats = Vec::new();
        let (mut s_ok, mut t_ok, mut k_ok) = (0, 0, 0);
        for seed in 1..=seeds {
            let key = (seed as usize * 5 + s) % 12;
            let mut styles = [0.0; STYLES.len()];
            styles[s] = 1.0;
            let knobs = KnobValues {
                styles,
                instrument: ((seed as usize + s) % INSTRUMENT_FAMILIES.len()) as i32,
                tempo: STYLE_BPM[s],
                key: key as i32,
                mode: 0,
                seed: seed as i32,
                guidance,
                ..super::eval_knobs()
            };
            let settings = RenderSettings { seconds, sample_rate: SR, time_signature: signature.unwrap_or(STYLE_TIME_SIGNATURE[s]), knobs };
            let mono = render_mono(&settings, factory())?;
            let f = style_features(&mono, STYLE_BPM[s] as f64);
            s_ok += (clf.predict(&f) == s) as usize;
            t_ok += tempo_adherent(&mono, SR, STYLE_BPM[s] as f64, 0.05).0 as usize;
            k_ok += (estimate_key(&mono, SR) == (key as u32, 0)) as usize;
            feats.push(clf.standardise(&f));
        }
        for i in 0..feats.len() {
            for j in i + 1..feats.len() {
                diversity.push(feats[i].iter().zip(&feats[j]).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / (feats[i].len() as f64).sqrt());
            }
        }
        out.rows.push_str(&format!("| {style} | {s_ok}/{seeds} | {t_ok}/{seeds} | {k_ok}/{seeds} |\n"));
        out.takes += seeds as usize;
        (out.style_ok, out.tempo_ok, out.key_ok) = (out.style_ok + s_ok, out.tempo_ok + t_ok, out.key_ok + k_ok);
    }
    out.diversity = diversity.iter().sum::<f64>() / diversity.len().max(1) as f64;
    Ok(out)
}
