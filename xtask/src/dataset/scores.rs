//! The corpus as score-prior tokens: every piece's MIDI notes and index bars on the tick grid,
//! in its tonic's terms (`cantor::model::score::tokens`), with its style, mode and meter, and
//! the split it belongs to (the same piece-level split as the audio datasets).

use super::index::{read_index, PieceMeta};
use super::labels::style_of;
use super::recipe::{split_of, DatasetConfig};
use super::score::parse_midi;
use anyhow::{bail, Context, Result};
use cantor::model::score::tokens::{meter_index, Score, ScoreNote, METERS, TICKS_PER_QUARTER};
use cantor::model::score::{phrase_slot, ScoreCond};
use cantor::model::vocab::STYLES;
use std::collections::BTreeMap;

/// One piece, tokenised.
#[derive(Debug, Clone)]
pub struct ScorePiece {
    /// The index's id and the score itself: the round-trip test reads them (and the score
    /// evaluation's novelty check will).
    #[cfg_attr(not(test), allow(dead_code))]
    pub id: String,
    /// "train", "valid" or "test".
    pub split: &'static str,
    /// Index into `STYLES`, 0 major / 1 minor, index into `METERS`.
    pub style: usize,
    pub mode: u8,
    pub meter: usize,
    pub score: Score,
    /// Index of the first full bar (after a pickup): where the phrase slots start counting.
    pub first_full: usize,
    pub tokens: Vec<u32>,
    /// Each token's phrase slot (`model::score::phrase_slot`).
    pub slots: Vec<u8>,
}

impl ScorePiece {
    /// The request this piece answers.
    pub fn cond(&self) -> ScoreCond {
        let mut styles = [0.0; STYLES.len()];
        styles[self.style] = 1.0;
        ScoreCond { styles: Some(styles), mode: Some(self.mode), meter: Some(self.meter) }
    }
}

/// The tokenised corpus, and why the pieces left out were left out.
pub struct ScoreSet {
    pub pieces: Vec<ScorePiece>,
    /// Reason -> pieces.
    pub excluded: BTreeMap<String, usize>,
}

impl ScoreSet {
    pub fn split(&self, split: &str) -> impl Iterator<Item = &ScorePiece> {
        let split = split.to_string();
        self.pieces.iter().filter(move |p| p.split == split)
    }

    pub fn tokens(&self, split: &str) -> usize {
        self.split(split).map(|p| p.tokens.len()).sum()
    }
}

/// A time in quarters as ticks, if it lies on the grid.
fn ticks(q: f64) -> Option<u32> {
    let t = q * TICKS_PER_QUARTER as f64;
    (t >= -1e-6 && (t - t.round()).abs() < 1e-4).then(|| t.round() as u32)
}

/// The score of a piece from its index entry and MIDI bytes.
pub fn score_of(meta: &PieceMeta, midi: &[u8]) -> Result<(Score, usize, usize)> {
    let (n, d) = meta.time_signature.split_once('/').and_then(|(n, d)| Some((n.trim().parse().ok()?, d.trim().parse().ok()?))).context("no time signature")?;
    let meter = meter_index(n, d).with_context(|| format!("time signature {n}/{d} is not one the score prior knows"))?;
    let bar_ticks = METERS[meter].1;
    let mut bars: Vec<u32> = meta.bar_starts_quarters.iter().map(|&q| ticks(q)).collect::<Option<_>>().context("bar starts off the tick grid")?;
    bars.dedup();
    if bars.first() != Some(&0) {
        bars.insert(0, 0);
    }
    let first_full = ticks(meta.first_full_bar_quarters).and_then(|t| bars.iter().position(|&b| b == t)).unwrap_or(0);
    let mut notes = Vec::new();
    for note in parse_midi(midi)? {
        let (Some(start), Some(dur)) = (ticks(note.start_q), ticks(note.dur_q)) else {
            bail!("a note off the tick grid (a quintuplet or finer)");
        };
        notes.push(ScoreNote { start, part: note.part, key: note.key, dur });
    }
    notes.sort();
    notes.dedup();
    // The exported MIDI plays the repeats the index's bar list writes once: bars go on in the
    // meter past the last one listed, until every note has its bar.
    let last_onset = notes.iter().map(|n| n.start).max().unwrap_or(0);
    while let Some(&last) = bars.last().filter(|&&b| b + bar_ticks <= last_onset) {
        bars.push(last + bar_ticks);
    }
    let score = Score { tonic: meta.key_pitch_class % 12, bar_ticks, bars, notes };
    Ok((score, meter, first_full))
}

/// Tokenise every usable piece of the committed corpus.
pub fn build() -> Result<ScoreSet> {
    let corpus = super::corpus_dir();
    let cfg = DatasetConfig::default();
    let mut pieces = Vec::new();
    let mut excluded = BTreeMap::new();
    for meta in read_index(&corpus.join("index.jsonl"))? {
        let Some(midi) = meta.midi.as_ref().filter(|_| meta.status == "ok") else {
            *excluded.entry("not exported".to_string()).or_insert(0) += 1;
            continue;
        };
        let bytes = std::fs::read(corpus.join(midi)).with_context(|| format!("reading {midi}"))?;
        let made = score_of(&meta, &bytes).and_then(|(score, meter, first_full)| {
            let (tokens, bars) = score.encode().map_err(anyhow::Error::msg)?;
            Ok((score, meter, first_full, tokens, bars))
        });
        match made {
            Ok((score, meter, first_full, tokens, bars)) => {
                let style = STYLES.iter().position(|s| *s == style_of(&meta)).expect("labels are styles");
                let slots = bars.iter().map(|&b| phrase_slot(b as usize, first_full) as u8).collect();
                let mode = (meta.key_mode == "minor") as u8;
                pieces.push(ScorePiece { id: meta.id.clone(), split: split_of(&cfg, &meta.split_key()), style, mode, meter, score, first_full, tokens, slots });
            }
            Err(e) => {
                // Grouped by kind: numbers blanked ("a note of N ticks").
                let mut reason = String::new();
                for c in e.to_string().split(" (").next().unwrap_or_default().chars() {
                    if !c.is_ascii_digit() {
                        reason.push(c);
                    } else if !reason.ends_with('N') {
                        reason.push('N');
                    }
                }
                *excluded.entry(reason).or_insert(0) += 1;
            }
        }
    }
    Ok(ScoreSet { pieces, excluded })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Score -> tokens -> score is exact on every piece the grid holds; the rest are few and
    /// named.
    #[test]
    fn every_corpus_piece_on_the_grid_round_trips_through_its_tokens() {
        let set = build().unwrap();
        assert!(set.pieces.len() > 4400, "{} pieces tokenised; left out: {:?}", set.pieces.len(), set.excluded);
        for p in &set.pieces {
            let back = Score::decode(&p.tokens, p.score.tonic, p.score.bar_ticks).unwrap();
            assert_eq!(back, p.score, "{}", p.id);
            assert_eq!(p.tokens.len(), p.slots.len());
        }
        let left_out: usize = set.excluded.values().sum();
        assert!(left_out < 200, "{left_out} pieces left out: {:?}", set.excluded);
        assert!(set.tokens("valid") > 0 && set.tokens("train") > 10 * set.tokens("valid") / 2);
    }
}
