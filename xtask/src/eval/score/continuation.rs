//! `cargo xtask eval continue`: how the score prior continues a phrase it is given (Source:
//! continue, `cantor render --continue`). Each held-out real tune's first full bars are the
//! phrase, read as the plugin reads a player's notes (one part, a sixteenth grid, the key the key
//! finder hears in them); the score prior writes the bars after them in the tune's style and
//! meter. Measured against the phrase: does the continuation keep its key, and is it
//! recognised as the style as often as tunes composed from nothing (same style, key, length)?

use super::classify;
use crate::dataset::scores::{self, ScorePiece};
use anyhow::Result;
use cantor::key_finder::key_of_notes;
use cantor::model::prior::sampling::Sampling;
use cantor::engine::score_stage::{prompt_bars, GivenNote};
use cantor::model::score::tokens::{Score, ScoreNote, METERS, TICKS_PER_QUARTER};
use cantor::model::vocab::Meter;
use cantor::model::score::writer::ScoreWriter;
use cantor::model::score::{ScoreCond, ScorePrior, DEFAULT_GUIDANCE};
use cantor::model::vocab::STYLES;

/// The phrase: the first `bars` full bars of `piece`, played as a player would (in host beats
/// of its time signature) and read as the plugin reads a player's notes
/// (`score_stage::prompt_bars`: a sixteenth grid, one part, each bar's onsets from its start);
/// `None` when the tune is shorter.
fn phrase(piece: &ScorePiece, bars: usize) -> Option<Vec<Vec<ScoreNote>>> {
    let s = &piece.score;
    let first = piece.first_full;
    if s.bars.len() < first + bars + 1 {
        return None;
    }
    let ((n, d), _) = METERS[piece.meter];
    let meter = Meter::of_time_signature(n, d)?;
    let start = s.bars[first];
    let ticks_per_beat = TICKS_PER_QUARTER as f64 * meter.beat_quarters;
    let beat = |tick: u32| (tick - start) as f64 / ticks_per_beat;
    let played: Vec<GivenNote> = s.notes.iter().filter(|n| n.start >= start).map(|n| GivenNote { on: beat(n.start), off: beat(n.start + n.dur), key: n.key, velocity: 90, channel: 0 }).collect();
    let from = bars as f64 * s.bar_ticks as f64 / ticks_per_beat;
    Some(prompt_bars(&played, from, meter))
}

/// A sixteenth in ticks: the onset profile's bins.
const SIXTEENTH: u32 = TICKS_PER_QUARTER / 4;

/// Bars as one score (bar `i` starting at `i` bars).
fn as_score(bars: &[Vec<ScoreNote>], tonic: u8, bar_ticks: u32) -> Score {
    let mut notes: Vec<ScoreNote> = bars.iter().enumerate().flat_map(|(i, b)| b.iter().map(move |n| ScoreNote { start: n.start + i as u32 * bar_ticks, ..*n })).collect();
    notes.sort();
    Score { tonic, bar_ticks, bars: (0..bars.len() as u32).map(|i| i * bar_ticks).collect(), notes }
}

/// Pitch-class weights (by length) and onsets per sixteenth of the bar.
fn profiles(s: &Score) -> ([f64; 12], Vec<f64>) {
    let mut pcs = [0.0; 12];
    let mut onsets = vec![0.0; (s.bar_ticks / SIXTEENTH).max(1) as usize];
    for n in &s.notes {
        pcs[n.key as usize % 12] += n.dur as f64;
        let pos = n.start - s.bars[s.bars.partition_point(|&b| b <= n.start) - 1];
        if let Some(o) = onsets.get_mut((pos / SIXTEENTH) as usize) {
            *o += 1.0;
        }
    }
    (pcs, onsets)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    num / (da * db).sqrt().max(1e-12)
}

#[derive(Default)]
struct Tally {
    tunes: usize,
    key_kept: usize,
    style_right: usize,
    composed_style_right: usize,
    pcs: f64,
    composed_pcs: f64,
    rhythm: f64,
    composed_rhythm: f64,
}

impl Tally {
    fn row(&self, label: &str) -> String {
        let n = self.tunes.max(1) as f64;
        let pct = |c: usize| 100.0 * c as f64 / n;
        format!(
            "| {label} | {} | {:.0}% | {:.0}% / {:.0}% | {:.2} / {:.2} | {:.2} / {:.2} |\n",
            self.tunes,
            pct(self.key_kept),
            pct(self.style_right),
            pct(self.composed_style_right),
            self.pcs / n,
            self.composed_pcs / n,
            self.rhythm / n,
            self.composed_rhythm / n
        )
    }

    fn add(&mut self, o: &Tally) {
        self.tunes += o.tunes;
        self.key_kept += o.key_kept;
        self.style_right += o.style_right;
        self.composed_style_right += o.composed_style_right;
        self.pcs += o.pcs;
        self.composed_pcs += o.composed_pcs;
        self.rhythm += o.rhythm;
        self.composed_rhythm += o.composed_rhythm;
    }
}

pub fn eval(model: &ScorePrior, model_name: &str, per_style: usize, prompt_bars: usize, bars: usize) -> Result<String> {
    let set = scores::build()?;
    let (train_x, train_y): (Vec<Vec<f64>>, Vec<usize>) = set.split("train").map(|p| (classify::features(&p.score, 0, p.score.bars.len()), p.style)).unzip();
    let style_model = classify::Logistic::fit(&train_x, &train_y, STYLES.len());
    let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: DEFAULT_GUIDANCE, repeat: 0.0 };
    let mut table = String::from(
        "| style | phrases | key kept | style recognised: continued / composed | pitch-class correlation with the phrase: continued / composed | onset-place correlation with the phrase: continued / composed |\n|---|---|---|---|---|---|\n",
    );
    let mut all = Tally::default();
    for (s, style) in STYLES.iter().enumerate() {
        let mut t = Tally::default();
        let mut styles = [0.0; STYLES.len()];
        styles[s] = 1.0;
        for (i, piece) in set.split("test").filter(|p| p.style == s).filter_map(|p| phrase(p, prompt_bars).map(|b| (p, b))).take(per_style).enumerate() {
            let (piece, played) = piece;
            let bar_ticks = METERS[piece.meter].1;
            let heard = as_score(&played, 0, bar_ticks);
            let (tonic, mode) = key_of_notes(heard.notes.iter().map(|n| (n.key, n.dur as f64)));
            let (tonic, mode) = (tonic as u8, mode as u8);
            let cond = ScoreCond { styles: Some(styles), mode: Some(mode), meter: Some(piece.meter) };
            let seed = 1 + i as u64;
            let mut w = ScoreWriter::new(model, tonic, bar_ticks, seed)?;
            for b in &played {
                w.play_bar(b, &cond, &sampling)?;
            }
            let written: Vec<Vec<ScoreNote>> = (0..bars)
                .map(|_| w.write_bar(&cond, &sampling).map(|b| b.notes.iter().map(|n| ScoreNote { start: n.start - b.start, ..*n }).collect()))
                .collect::<candle_core::Result<_>>()?;
            let mut fresh = ScoreWriter::new(model, tonic, bar_ticks, seed)?;
            let composed: Vec<Vec<ScoreNote>> = (0..bars)
                .map(|_| fresh.write_bar(&cond, &sampling).map(|b| b.notes.iter().map(|n| ScoreNote { start: n.start - b.start, ..*n }).collect()))
                .collect::<candle_core::Result<_>>()?;
            let (continued, composed) = (as_score(&written, tonic, bar_ticks), as_score(&composed, tonic, bar_ticks));
            let found = key_of_notes(continued.notes.iter().map(|n| (n.key, n.dur as f64)));
            let (heard_pcs, heard_onsets) = profiles(&heard);
            let ((c_pcs, c_onsets), (f_pcs, f_onsets)) = (profiles(&continued), profiles(&composed));
            t.tunes += 1;
            t.key_kept += (found == (tonic as u32, mode as u32)) as usize;
            t.style_right += (style_model.predict(&classify::features(&continued, 0, bars)) == s) as usize;
            t.composed_style_right += (style_model.predict(&classify::features(&composed, 0, bars)) == s) as usize;
            t.pcs += pearson(&heard_pcs, &c_pcs);
            t.composed_pcs += pearson(&heard_pcs, &f_pcs);
            t.rhythm += pearson(&heard_onsets, &c_onsets);
            t.composed_rhythm += pearson(&heard_onsets, &f_onsets);
        }
        anyhow::ensure!(t.tunes > 0, "no held-out {style} tune has {prompt_bars} full bars");
        table += &t.row(style);
        all.add(&t);
    }
    table += &all.row("**all**");
    let n = all.tunes.max(1) as f64;
    Ok(format!(
        "## Score prior: continuing a phrase\n\n\
         Command: `cargo xtask eval continue --phrases {per_style} --prompt-bars {prompt_bars} --bars {bars}` on `{model_name}`. The phrase is the first {prompt_bars} full bars of each held-out (test split) tune, read as the plugin reads a player's notes (`Source: continue`): one part, onsets and lengths on a sixteenth grid, in the key the key finder hears in them. The score prior reads it as the tune's opening and writes the next {bars} bars in the tune's style and meter (temperature 1, top-p 0.95, guidance {DEFAULT_GUIDANCE}, Repeat 0); \"composed\" is the same writer, style, key and seed with no phrase. Key kept: the key finder (Temperley's profiles over note lengths) finds the phrase's key in the continuation. Style recognised: the style classifier of the score evaluation (trained on the training split's real tunes) names the tune's style from the {bars} written bars. Correlations: the continuation's pitch classes (by length) and onset places in the bar (sixteenths) against the phrase's; higher than the composed tune's means the phrase was heard. The meter is kept by construction: every bar written is a full bar of the phrase's meter.\n\n\
         {table}\n\
         - Key kept in {:.0}% of continuations (target at least 90%).\n\
         - Style recognised in {:.0}% of continuations and {:.0}% of tunes composed from nothing (target: as often).\n",
        100.0 * all.key_kept as f64 / n,
        100.0 * all.style_right as f64 / n,
        100.0 * all.composed_style_right as f64 / n,
    ))
}
