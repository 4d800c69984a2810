//! Two classifiers over what a score shows, for `eval score`:
//! - a style classifier, trained on the training split's real tunes only: its accuracy on the
//!   held-out real tunes is the bar the generated tunes are measured against;
//! - a real-or-generated classifier on 8-bar excerpts, cross-validated with each tune's excerpts
//!   in one fold: 50% means it cannot tell them apart.
//!
//! Both are multinomial logistic regressions over the same features: the pitch classes against
//! the tonic, the melody's intervals, onset places in the bar and lengths, density, register,
//! range, voices, and bar-to-bar similarity 1, 2 and 4 bars apart. Linear on purpose: what they
//! tell apart can be read off their features, and a tune that fools them differs in nothing
//! those features hold.

use super::{melody, similarity};
use cantor::model::score::tokens::{Score, ScoreNote, TICKS_PER_QUARTER};

/// Onset places in the bar, as a share of its length.
const ONSET_BINS: usize = 12;
/// Melody note lengths in quarters: up to each bound, and longer than the last.
const LENGTH_BOUNDS: [f64; 8] = [0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 1.0, 1.5, 2.0, 3.0];
/// Features of an excerpt.
pub const FEATURES: usize = 12 + 25 + ONSET_BINS + LENGTH_BOUNDS.len() + 1 + 8;

/// Features of bars `from..to` of `score`.
pub fn features(score: &Score, from: usize, to: usize) -> Vec<f64> {
    let bar_end = |i: usize| score.bars.get(i).copied().unwrap_or(u32::MAX);
    let (start, end) = (bar_end(from), bar_end(to));
    let notes: Vec<ScoreNote> = score.notes.iter().filter(|n| n.start >= start && n.start < end).copied().collect();
    let m = melody(&notes);
    let mut f = Vec::with_capacity(FEATURES);
    // Pitch classes against the tonic, by sounding time.
    let mut pcs = [0f64; 12];
    for n in &notes {
        pcs[(n.key as usize + 12 - score.tonic as usize % 12) % 12] += n.dur as f64;
    }
    push_normalised(&mut f, &pcs);
    // Melody intervals, an octave either way (wider ones counted at the octave).
    let mut intervals = [0f64; 25];
    for w in m.windows(2) {
        intervals[((w[1].key as i32 - w[0].key as i32).clamp(-12, 12) + 12) as usize] += 1.0;
    }
    push_normalised(&mut f, &intervals);
    // Where in its bar each melody note starts, and how long it is.
    let mut onsets = [0f64; ONSET_BINS];
    let mut lengths = [0f64; LENGTH_BOUNDS.len() + 1];
    for n in &m {
        let bar = score.bars.partition_point(|&b| b <= n.start).saturating_sub(1);
        let len = bar_end(bar + 1).min(score.bars[bar] + score.bar_ticks.max(1)).saturating_sub(score.bars[bar]).max(1);
        onsets[(((n.start - score.bars[bar]) as f64 / len as f64 * ONSET_BINS as f64) as usize).min(ONSET_BINS - 1)] += 1.0;
        let q = n.dur as f64 / TICKS_PER_QUARTER as f64;
        lengths[LENGTH_BOUNDS.iter().position(|&b| q <= b + 1e-9).unwrap_or(LENGTH_BOUNDS.len())] += 1.0;
    }
    push_normalised(&mut f, &onsets);
    push_normalised(&mut f, &lengths);
    let quarters = (end.min(notes.iter().map(|n| n.start + n.dur).max().unwrap_or(start)) - start).max(1) as f64 / TICKS_PER_QUARTER as f64;
    f.push(m.len() as f64 / quarters);
    let (lo, hi) = m.iter().fold((127u8, 0u8), |(lo, hi), n| (lo.min(n.key), hi.max(n.key)));
    f.push(hi.saturating_sub(lo) as f64 / 12.0);
    f.push(m.iter().map(|n| n.key as f64).sum::<f64>() / m.len().max(1) as f64 / 12.0);
    let parts = notes.iter().map(|n| n.part).max().map_or(0, |p| p as usize + 1);
    f.push(parts as f64);
    f.push(notes.len().saturating_sub(m.len()) as f64 / notes.len().max(1) as f64);
    let sims = similarity(score, &m, from..to, &[1, 2, 4]);
    f.extend(sims);
    debug_assert_eq!(f.len(), FEATURES);
    f
}

/// What each feature of `features` is, in its order (for reports).
pub fn feature_names() -> Vec<String> {
    let mut names: Vec<String> = (0..12).map(|i| format!("time on degree {i} (semitones above the tonic)")).collect();
    names.extend((-12..=12).map(|i| format!("melodic interval {i:+}")));
    names.extend((0..ONSET_BINS).map(|i| format!("onsets in the bar's {}/{ONSET_BINS}", i + 1)));
    names.extend(LENGTH_BOUNDS.iter().map(|b| format!("melody notes up to {b:.2} quarters")).chain(["melody notes over 3 quarters".to_string()]));
    names.extend(["melody notes a quarter", "melody range", "melody register", "voices", "share of notes below the melody", "bar similarity 1 apart", "bar similarity 2 apart", "bar similarity 4 apart"].map(String::from));
    names
}

/// The features that differ most between two samples: (name, difference of the means in units of
/// their pooled standard deviation), largest first.
pub fn largest_differences(a: &[Vec<f64>], b: &[Vec<f64>], n: usize) -> Vec<(String, f64)> {
    let stats = |x: &[Vec<f64>], j: usize| {
        let m = x.iter().map(|r| r[j]).sum::<f64>() / x.len().max(1) as f64;
        (m, x.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / x.len().max(1) as f64)
    };
    let mut d: Vec<(String, f64)> = feature_names()
        .into_iter()
        .enumerate()
        .map(|(j, name)| {
            let ((ma, va), (mb, vb)) = (stats(a, j), stats(b, j));
            (name, (mb - ma) / ((va + vb) / 2.0).sqrt().max(1e-9))
        })
        .collect();
    d.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
    d.truncate(n);
    d
}

fn push_normalised(f: &mut Vec<f64>, counts: &[f64]) {
    let total: f64 = counts.iter().sum();
    f.extend(counts.iter().map(|c| if total > 0.0 { c / total } else { 0.0 }));
}

/// Multinomial logistic regression on standardised features, fitted by full-batch gradient
/// descent with a little L2 (deterministic: the same data give the same model).
pub struct Logistic {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// [classes][features + 1] (the bias last).
    weights: Vec<Vec<f64>>,
}

impl Logistic {
    pub fn fit(x: &[Vec<f64>], y: &[usize], classes: usize) -> Self {
        const STEPS: usize = 400;
        const RATE: f64 = 0.5;
        const L2: f64 = 1e-3;
        let n = x.len().max(1);
        let dims = x.first().map_or(0, |r| r.len());
        let mean: Vec<f64> = (0..dims).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
        let scale: Vec<f64> =
            (0..dims).map(|j| (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt()).map(|s| if s > 1e-9 { 1.0 / s } else { 0.0 }).collect();
        let mut model = Self { mean, scale, weights: vec![vec![0.0; dims + 1]; classes] };
        let xs: Vec<Vec<f64>> = x.iter().map(|r| model.standardise(r)).collect();
        for _ in 0..STEPS {
            let mut grad = vec![vec![0.0; dims + 1]; classes];
            for (r, &label) in xs.iter().zip(y) {
                let p = model.probabilities(r);
                for (c, g) in grad.iter_mut().enumerate() {
                    let e = p[c] - (c == label) as u8 as f64;
                    for (gj, xj) in g.iter_mut().zip(r) {
                        *gj += e * xj;
                    }
                }
            }
            for (w, g) in model.weights.iter_mut().zip(&grad) {
                for (j, (wj, gj)) in w.iter_mut().zip(g).enumerate() {
                    let decay = if j < dims { L2 * *wj } else { 0.0 };
                    *wj -= RATE * (gj / n as f64 + decay);
                }
            }
        }
        model
    }

    /// Features standardised, with a constant 1 for the bias.
    fn standardise(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.mean).zip(&self.scale).map(|((v, m), s)| (v - m) * s).chain([1.0]).collect()
    }

    fn probabilities(&self, standardised: &[f64]) -> Vec<f64> {
        let logits: Vec<f64> = self.weights.iter().map(|w| w.iter().zip(standardised).map(|(a, b)| a * b).sum()).collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = e.iter().sum();
        e.iter().map(|v| v / total).collect()
    }

    pub fn predict(&self, x: &[f64]) -> usize {
        let p = self.probabilities(&self.standardise(x));
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0)
    }
}

/// Accuracy of a real-or-generated classifier, `folds`-fold cross-validated. Each group is one
/// tune's excerpts (they stay in one fold, so a tune is never judged by a model that saw it);
/// group i of either side goes to fold i % folds.
pub fn real_or_generated_accuracy(real: &[Vec<Vec<f64>>], generated: &[Vec<Vec<f64>>], folds: usize) -> f64 {
    let rows: Vec<(usize, usize, &Vec<f64>)> = [real, generated]
        .iter()
        .enumerate()
        .flat_map(|(label, side)| side.iter().enumerate().flat_map(move |(g, tune)| tune.iter().map(move |x| (g % folds, label, x))))
        .collect();
    let (mut right, mut total) = (0usize, 0usize);
    for fold in 0..folds {
        let (train, test): (Vec<&(usize, usize, &Vec<f64>)>, Vec<_>) = rows.iter().partition(|r| r.0 != fold);
        let x: Vec<Vec<f64>> = train.iter().map(|r| r.2.clone()).collect();
        let y: Vec<usize> = train.iter().map(|r| r.1).collect();
        let model = Logistic::fit(&x, &y, 2);
        right += test.iter().filter(|r| model.predict(r.2) == r.1).count();
        total += test.len();
    }
    right as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two kinds of tune that differ in rhythm are told apart; two halves of one kind are not.
    #[test]
    fn the_classifiers_tell_what_differs_and_not_what_does_not() {
        let q = TICKS_PER_QUARTER;
        // Kind 0: quarter notes on scale steps; kind 1: eighth notes leaping by fourths.
        let tune = |kind: usize, seed: u32| {
            let step = if kind == 0 { q } else { q / 2 };
            let notes: Vec<ScoreNote> = (0..(16 * 2 * q / step))
                .map(|i| {
                    let wobble = (i * 7 + seed * 3) % 5;
                    let key = if kind == 0 { 60 + [0, 2, 4, 5, 7][wobble as usize] } else { 60 + 5 * (wobble % 3) as u8 };
                    ScoreNote { start: i * step, part: 0, key: key as u8, dur: step }
                })
                .collect();
            Score { tonic: 0, bar_ticks: 2 * q, bars: (0..16).map(|b| b * 2 * q).collect(), notes }
        };
        let excerpts = |kind: usize, seed: u32| (0..2).map(|k| features(&tune(kind, seed), 8 * k, 8 * k + 8)).collect::<Vec<_>>();
        let (a, b): (Vec<_>, Vec<_>) = ((0..10).map(|s| excerpts(0, s)).collect(), (0..10).map(|s| excerpts(1, s)).collect());
        assert!(a[0][0].len() == FEATURES && feature_names().len() == FEATURES);
        assert!(real_or_generated_accuracy(&a, &b, 5) > 0.95);
        let (a1, a2) = a.split_at(5);
        assert!(real_or_generated_accuracy(a1, a2, 5) < 0.8);
        let x: Vec<Vec<f64>> = a.iter().chain(&b).map(|t| t[0].clone()).collect();
        let y: Vec<usize> = (0..20).map(|i| i / 10).collect();
        let model = Logistic::fit(&x, &y, 2);
        assert_eq!(model.predict(&features(&tune(1, 99), 0, 16)), 1);
        assert_eq!(model.predict(&features(&tune(0, 99), 0, 16)), 0);
    }
}
