//! `cargo xtask eval score`: the score prior's tunes against held-out real tunes, per style, on
//! what a musician reads in a score: key, rhythm, melody, form and novelty.

use super::music::key_of_pitch_classes;
use super::prior::STYLE_TIME_SIGNATURE;
use crate::dataset::scores::{self, ScorePiece};
use anyhow::Result;
use cantor::model::prior::sampling::Sampling;
use cantor::model::score::form::{bar_melodies, melody};
use cantor::model::score::tokens::{meter_index, Score, ScoreNote, METERS};
use cantor::model::score::writer::ScoreWriter;
use cantor::model::score::{ScoreCond, ScorePrior, DEFAULT_GUIDANCE};
use cantor::model::vocab::STYLES;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

mod bench;
mod classify;
mod continuation;
pub use bench::bench;
pub use continuation::eval as eval_continuation;

/// Bar-to-bar distances of the form profile.
const DISTANCES: [usize; 3] = [1, 4, 8];

/// What one tune's score shows.
#[derive(Debug, Clone, Default)]
struct TuneStats {
    /// Share of sounding time on the scale of the requested (or labelled) key.
    on_scale: f64,
    /// The key finder agrees with the request.
    key_right: bool,
    notes_per_bar: f64,
    /// Melodic intervals: share of steps (1-2 semitones), repeats and leaps (5 or more).
    steps: f64,
    repeats: f64,
    leaps: f64,
    range: f64,
    /// Mean similarity of bars 1, 4 and 8 apart (Jaccard over their (onset, pitch) sets).
    similarity: [f64; 3],
    /// Share of 8-bar strain ends whose last melody note is the tonic.
    tonic_cadences: f64,
    /// The style classifier (`classify`) names the tune's style.
    style_right: bool,
}

fn scale(tonic: u8, minor: bool) -> [bool; 12] {
    // Minor counts the raised sixth and seventh too (harmonic and melodic minor).
    let degrees: &[u8] = if minor { &[0, 2, 3, 5, 7, 8, 9, 10, 11] } else { &[0, 2, 4, 5, 7, 9, 11] };
    let mut s = [false; 12];
    for d in degrees {
        s[((tonic + d) % 12) as usize] = true;
    }
    s
}

fn stats(score: &Score, tonic: u8, minor: bool) -> TuneStats {
    let mut t = TuneStats::default();
    let on = scale(tonic, minor);
    let (mut total, mut inside, mut pcs) = (0f64, 0f64, [0f64; 12]);
    for n in &score.notes {
        let d = n.dur as f64;
        total += d;
        pcs[(n.key % 12) as usize] += d;
        if on[(n.key % 12) as usize] {
            inside += d;
        }
    }
    t.on_scale = inside / total.max(1.0);
    t.key_right = key_of_pitch_classes(&pcs) == (tonic as u32 % 12, minor as u32);
    let m = melody(&score.notes);
    let bars = score.bars.len().max(1);
    t.notes_per_bar = m.len() as f64 / bars as f64;
    let intervals: Vec<i32> = m.windows(2).map(|w| w[1].key as i32 - w[0].key as i32).collect();
    let share = |f: &dyn Fn(i32) -> bool| intervals.iter().filter(|&&i| f(i.abs())).count() as f64 / intervals.len().max(1) as f64;
    (t.steps, t.repeats, t.leaps) = (share(&|i| (1..=2).contains(&i)), share(&|i| i == 0), share(&|i| i >= 5));
    let (lo, hi) = m.iter().fold((127u8, 0u8), |(lo, hi), n| (lo.min(n.key), hi.max(n.key)));
    t.range = hi.saturating_sub(lo) as f64;
    t.similarity.copy_from_slice(&similarity(score, &m, 0..score.bars.len(), &DISTANCES));
    let ends: Vec<bool> = (7..score.bars.len())
        .step_by(8)
        .filter_map(|i| {
            let end = score.bars.get(i + 1).copied().unwrap_or(u32::MAX);
            m.iter().filter(|n| n.start < end).next_back().map(|n| n.key % 12 == tonic % 12)
        })
        .collect();
    t.tonic_cadences = ends.iter().filter(|&&e| e).count() as f64 / ends.len().max(1) as f64;
    t
}

/// For each distance d, the mean similarity of the melody `m`'s bars d apart within bars
/// `range` of `score`: the Jaccard index of the two bars' (onset in the bar, pitch) sets, over
/// the pairs where either bar has notes.
fn similarity(score: &Score, m: &[ScoreNote], range: std::ops::Range<usize>, distances: &[usize]) -> Vec<f64> {
    let bar_sets: Vec<HashSet<(u32, u8)>> = range
        .filter(|&i| i < score.bars.len())
        .map(|i| {
            let (a, b) = (score.bars[i], score.bars.get(i + 1).copied().unwrap_or(u32::MAX));
            m.iter().filter(|n| n.start >= a && n.start < b).map(|n| (n.start - a, n.key)).collect()
        })
        .collect();
    distances
        .iter()
        .map(|&d| {
            let sims: Vec<f64> = (0..bar_sets.len().saturating_sub(d))
                .filter(|&i| !bar_sets[i].is_empty() || !bar_sets[i + d].is_empty())
                .map(|i| bar_sets[i].intersection(&bar_sets[i + d]).count() as f64 / bar_sets[i].union(&bar_sets[i + d]).count() as f64)
                .collect();
            sims.iter().sum::<f64>() / sims.len().max(1) as f64
        })
        .collect()
}

/// A bar's melody as one hash (`form::bar_melodies`: onsets in the bar, pitches relative to the
/// tonic, lengths).
fn bar_hashes(score: &Score) -> Vec<u64> {
    bar_melodies(score)
        .iter()
        .map(|bar| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bar.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// The longest run of consecutive bars of `tune` that also stand consecutively in a training tune.
fn longest_copied_run(tune: &[u64], index: &HashMap<u64, Vec<(u32, u32)>>, training: &[Vec<u64>]) -> usize {
    let mut best = 0;
    for start in 0..tune.len() {
        let Some(places) = index.get(&tune[start]) else { continue };
        for &(t, i) in places.iter().take(2000) {
            let src = &training[t as usize];
            let run = (0..).take_while(|&k| start + k < tune.len() && (i as usize + k) < src.len() && tune[start + k] == src[i as usize + k]).count();
            best = best.max(run);
        }
    }
    best
}

/// Mean of a statistic over tunes.
fn mean(tunes: &[TuneStats], f: impl Fn(&TuneStats) -> f64) -> f64 {
    tunes.iter().map(f).sum::<f64>() / tunes.len().max(1) as f64
}

fn row(label: &str, n: usize, t: &[TuneStats]) -> String {
    format!(
        "| {label} | {n} | {:.0}% | {:.0}% | {:.1} | {:.0}% / {:.0}% / {:.0}% | {:.1} | {:.2} / {:.2} / {:.2} | {:.0}% | {:.0}% |\n",
        100.0 * mean(t, |s| s.key_right as u8 as f64),
        100.0 * mean(t, |s| s.on_scale),
        mean(t, |s| s.notes_per_bar),
        100.0 * mean(t, |s| s.steps),
        100.0 * mean(t, |s| s.repeats),
        100.0 * mean(t, |s| s.leaps),
        mean(t, |s| s.range),
        mean(t, |s| s.similarity[0]),
        mean(t, |s| s.similarity[1]),
        mean(t, |s| s.similarity[2]),
        100.0 * mean(t, |s| s.tonic_cadences),
        100.0 * mean(t, |s| s.style_right as u8 as f64),
    )
}

/// Excerpts of `EXCERPT_BARS` bars (the realism classifier's unit), from the first full bar.
const EXCERPT_BARS: usize = 8;

/// Features of a tune's whole excerpts.
fn excerpts(score: &Score) -> Vec<Vec<f64>> {
    let pickup = score.bars.len() > 1 && score.bars[1] - score.bars[0] < score.bar_ticks;
    let first = pickup as usize;
    (first..score.bars.len().saturating_sub(EXCERPT_BARS - 1)).step_by(EXCERPT_BARS).map(|b| classify::features(score, b, b + EXCERPT_BARS)).collect()
}

/// The first `n` excerpts of `tunes`' (tune by tune), still grouped by tune.
fn first_excerpts(tunes: &[Vec<Vec<f64>>], mut n: usize) -> Vec<Vec<Vec<f64>>> {
    let mut out = Vec::new();
    for t in tunes {
        if n == 0 {
            break;
        }
        let k = t.len().min(n);
        out.push(t[..k].to_vec());
        n -= k;
    }
    out
}

/// The `q` quantile of a sample.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Write `seeds` tunes of `bars` bars per style with `model` and compare them with the test
/// split's real tunes; returns the EVAL.md section.
pub fn eval(model: &ScorePrior, model_name: &str, seeds: u64, bars: usize, guidance: f32) -> Result<String> {
    let set = scores::build()?;
    let training: Vec<Vec<u64>> = set.split("train").map(|p| bar_hashes(&p.score)).collect();
    let mut index: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
    for (t, tune) in training.iter().enumerate() {
        for (i, h) in tune.iter().enumerate() {
            index.entry(*h).or_default().push((t as u32, i as u32));
        }
    }
    // The style classifier learns from the training split's real tunes only.
    let (train_x, train_y): (Vec<Vec<f64>>, Vec<usize>) = set.split("train").map(|p| (classify::features(&p.score, 0, p.score.bars.len()), p.style)).unzip();
    let style_model = classify::Logistic::fit(&train_x, &train_y, STYLES.len());
    let mut table = String::from(
        "| style | tunes | key finder agrees | time on the scale | melody notes a bar | steps / repeats / leaps | range (semitones) | bar similarity 1 / 4 / 8 apart | strain ends on the tonic | style recognised |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut copied_runs = Vec::new();
    let (mut all_real, mut all_gen) = (Vec::new(), Vec::new());
    let (mut real_excerpts, mut gen_excerpts) = (Vec::new(), Vec::new());
    let (mut dance_real, mut dance_gen) = (Vec::new(), Vec::new());
    for (s, style) in STYLES.iter().enumerate() {
        let real: Vec<&ScorePiece> = set.split("test").filter(|p| p.style == s).collect();
        anyhow::ensure!(!real.is_empty(), "the test split holds no {style} tunes to compare with");
        let mut real_stats = Vec::new();
        for p in &real {
            let mut t = stats(&p.score, p.score.tonic, p.mode == 1);
            t.style_right = style_model.predict(&classify::features(&p.score, 0, p.score.bars.len())) == s;
            real_stats.push(t);
        }
        let (n, d) = STYLE_TIME_SIGNATURE[s];
        let meter = meter_index(n, d).expect("a known meter");
        let mut gen_stats = Vec::new();
        let mut generated = Vec::new();
        for seed in 1..=seeds {
            // The key and mode of a held-out tune of the style, in turn: both sides have the
            // same mix of modes (a third minor made the realism classifier's first tell the
            // minor third: real reels and jigs are mostly major).
            let like = real[(seed as usize - 1) % real.len()];
            let (tonic, minor) = (like.score.tonic, like.mode == 1);
            let mut styles = [0.0; STYLES.len()];
            styles[s] = 1.0;
            let cond = ScoreCond { styles: Some(styles), mode: Some(minor as u8), meter: Some(meter) };
            let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance, repeat: 0.0 };
            let mut w = ScoreWriter::new(model, tonic, METERS[meter].1, seed)?;
            let mut score = Score { tonic, bar_ticks: METERS[meter].1, bars: Vec::new(), notes: Vec::new() };
            for _ in 0..bars {
                let b = w.write_bar(&cond, &sampling)?;
                score.bars.push(b.start);
                score.notes.extend(b.notes);
            }
            score.notes.sort();
            copied_runs.push(longest_copied_run(&bar_hashes(&score), &index, &training));
            let mut t = stats(&score, tonic, minor);
            t.style_right = style_model.predict(&classify::features(&score, 0, score.bars.len())) == s;
            gen_stats.push(t);
            generated.push(score);
        }
        // As many excerpts from each side, style by style (the two sides' style mixes differ).
        let real_ex: Vec<Vec<Vec<f64>>> = real.iter().map(|p| excerpts(&p.score)).collect();
        let gen_ex: Vec<Vec<Vec<f64>>> = generated.iter().map(excerpts).collect();
        let n = real_ex.iter().map(Vec::len).sum::<usize>().min(gen_ex.iter().map(Vec::len).sum());
        real_excerpts.extend(first_excerpts(&real_ex, n));
        gen_excerpts.extend(first_excerpts(&gen_ex, n));
        if s >= 2 {
            // The dance tunes: jig, reel, hornpipe, march/polka.
            dance_real.extend(real_stats.iter().map(|t| t.similarity[2]));
            dance_gen.extend(gen_stats.iter().map(|t| t.similarity[2]));
        }
        table += &row(&format!("{style}, real (test split)"), real_stats.len(), &real_stats);
        table += &row(&format!("{style}, generated"), gen_stats.len(), &gen_stats);
        all_real.extend(real_stats);
        all_gen.extend(gen_stats);
    }
    table += &row("**all, real**", all_real.len(), &all_real);
    table += &row("**all, generated**", all_gen.len(), &all_gen);
    let copies = copied_runs.iter().filter(|&&r| r >= 2).count();
    // The same check on the held-out real tunes: how often two tunes of the tradition share two
    // bars anyway (stock openings and cadences).
    let real_runs: Vec<usize> = set.split("test").map(|p| longest_copied_run(&bar_hashes(&p.score), &index, &training)).collect();
    let real_copies = real_runs.iter().filter(|&&r| r >= 2).count();
    let worst = copied_runs.iter().max().copied().unwrap_or(0);
    let recognised = |t: &[TuneStats]| mean(t, |s| s.style_right as u8 as f64);
    let realism = classify::real_or_generated_accuracy(&real_excerpts, &gen_excerpts, 5);
    let excerpt_count: usize = real_excerpts.iter().map(Vec::len).sum();
    let flat = |e: &[Vec<Vec<f64>>]| e.iter().flatten().cloned().collect::<Vec<_>>();
    let tells = classify::largest_differences(&flat(&real_excerpts), &flat(&gen_excerpts), 4)
        .iter()
        .map(|(name, d)| format!("{name} ({d:+.2})"))
        .collect::<Vec<_>>()
        .join(", ");
    let (lo, hi) = (quantile(&dance_real, 0.1), quantile(&dance_real, 0.9));
    let gen_form = dance_gen.iter().sum::<f64>() / dance_gen.len().max(1) as f64;
    let within = dance_gen.iter().filter(|&&v| v >= lo && v <= hi).count();
    Ok(format!(
        "## Score prior: the tunes it writes\n\n\
         Command: `cargo xtask eval score --seeds {seeds} --bars {bars}{}` on `{model_name}`. Each style in its usual time signature, each tune in the key and mode of a held-out real tune of the style in turn (so both sides have the same mix of modes), temperature 1, top-p 0.95, guidance {guidance}, written as the corpus notates its tunes: Repeat 0, so each strain once (in playback Repeat plays each strain twice, A A B B, which puts bars 8 apart at similarity 1 by construction). Real tunes are the test split's, in their labelled keys. The key finder is Temperley's profiles over the notes' durations; melody is part 0's highest note at each onset; bar similarity is the Jaccard index of two bars' (onset, pitch) sets. \
         The style classifier is a logistic regression over {} features of a whole tune (pitch classes against the tonic, melodic intervals, onset places and lengths, density, register, range, voices, bar similarity 1, 2 and 4 apart; `eval/score/classify.rs`) trained on the {} real tunes of the training split, never on generated ones.\n\n\
         {table}\n\
         - Style: recognised in {:.0}% of the real held-out tunes and {:.0}% of the generated ones ({:.0}% as often; target at least 90%).\n\
         - Realism: a logistic regression over the same features of 8-bar excerpts tells real from generated with {:.0}% accuracy (5-fold cross-validation, each tune's excerpts in one fold, {excerpt_count} excerpts a side, as many of each style on both sides; 50% is chance, target at most 65%). The features that differ most (generated minus real, in pooled standard deviations): {tells}.\n\
         - Form: bar similarity 8 apart in the dance tunes (jig, reel, hornpipe, march/polka) is {gen_form:.2} on average in generated tunes; real ones spread from {lo:.2} to {hi:.2} (10th to 90th percentile of {} tunes), and {within} of {} generated tunes lie in that spread.\n\
         - Novelty: {copies} of {} generated tunes contain a run of 2 or more consecutive melody bars (onsets, pitches relative to the tonic, lengths) found in the same order in a training tune; the longest such run is {worst} bars. For comparison, {real_copies} of {} held-out real tunes share such a run with a training tune.\n",
        if guidance == DEFAULT_GUIDANCE { String::new() } else { format!(" --guidance {guidance}") },
        classify::FEATURES,
        train_y.len(),
        100.0 * recognised(&all_real),
        100.0 * recognised(&all_gen),
        100.0 * recognised(&all_gen) / recognised(&all_real).max(1e-9),
        100.0 * realism,
        dance_real.len(),
        dance_gen.len(),
        copied_runs.len(),
        real_runs.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cantor::model::score::tokens::TICKS_PER_QUARTER;

    #[test]
    fn a_scale_in_its_key_is_recognised_and_repetition_shows_at_its_distance() {
        // A D major scale, then the same two bars again: 2/4, quarters.
        let q = TICKS_PER_QUARTER;
        let keys = [62u8, 64, 66, 67, 62, 64, 66, 67, 69, 71, 73, 74, 69, 71, 73, 74];
        let notes: Vec<ScoreNote> = keys.iter().enumerate().map(|(i, &key)| ScoreNote { start: i as u32 * q, part: 0, key, dur: q }).collect();
        let score = Score { tonic: 2, bar_ticks: 2 * q, bars: (0..8).map(|i| i * 2 * q).collect(), notes };
        let s = stats(&score, 2, false);
        assert!(s.key_right && s.on_scale == 1.0, "{s:?}");
        assert_eq!(s.notes_per_bar, 2.0);
        assert!(s.similarity[0] < 0.01, "{s:?}");
        assert!((s.steps - 13.0 / 15.0).abs() < 1e-9, "{s:?}");
        let h = bar_hashes(&score);
        assert_eq!((h[0], h[1]), (h[2], h[3]));
        let index: HashMap<u64, Vec<(u32, u32)>> = h.iter().enumerate().fold(HashMap::new(), |mut m, (i, x)| {
            m.entry(*x).or_default().push((0, i as u32));
            m
        });
        assert_eq!(longest_copied_run(&h[..4], &index, &[h.clone()]), 4);
    }
}
