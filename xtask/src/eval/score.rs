//! `cargo xtask eval score`: the score prior's tunes against held-out real tunes, per style, on
//! what a musician reads in a score: key, rhythm, melody, form and novelty.

use super::music::key_of_pitch_classes;
use super::prior::STYLE_TIME_SIGNATURE;
use crate::dataset::scores::{self, ScorePiece};
use anyhow::Result;
use cantor::model::prior::sampling::Sampling;
use cantor::model::score::tokens::{meter_index, Score, ScoreNote, METERS};
use cantor::model::score::writer::ScoreWriter;
use cantor::model::score::{ScoreCond, ScorePrior, DEFAULT_GUIDANCE};
use cantor::model::vocab::STYLES;
use super::median_p99;
use crate::dataset::repo_root;
use anyhow::Context;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use cantor::model::vocab::Meter;
use cantor::plugin::render::{render, RenderSettings};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Instant;

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
}

/// The melody: part 0, its highest note at each onset.
fn melody(notes: &[ScoreNote]) -> Vec<ScoreNote> {
    let mut m: Vec<ScoreNote> = Vec::new();
    for n in notes.iter().filter(|n| n.part == 0) {
        match m.last_mut() {
            Some(last) if last.start == n.start => {
                if n.key > last.key {
                    *last = *n;
                }
            }
            _ => m.push(*n),
        }
    }
    m
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
    // Bars as sets of (onset in bar, pitch).
    let bar_sets: Vec<HashSet<(u32, u8)>> = (0..score.bars.len())
        .map(|i| {
            let (a, b) = (score.bars[i], score.bars.get(i + 1).copied().unwrap_or(u32::MAX));
            m.iter().filter(|n| n.start >= a && n.start < b).map(|n| (n.start - a, n.key)).collect()
        })
        .collect();
    for (k, &d) in DISTANCES.iter().enumerate() {
        let sims: Vec<f64> = (0..bar_sets.len().saturating_sub(d))
            .filter(|&i| !bar_sets[i].is_empty() || !bar_sets[i + d].is_empty())
            .map(|i| bar_sets[i].intersection(&bar_sets[i + d]).count() as f64 / bar_sets[i].union(&bar_sets[i + d]).count() as f64)
            .collect();
        t.similarity[k] = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
    }
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

/// A bar's melody as one hash (onsets in the bar, pitches relative to the tonic, lengths).
fn bar_hashes(score: &Score) -> Vec<u64> {
    let m = melody(&score.notes);
    (0..score.bars.len())
        .map(|i| {
            let (a, b) = (score.bars[i], score.bars.get(i + 1).copied().unwrap_or(u32::MAX));
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for n in m.iter().filter(|n| n.start >= a && n.start < b) {
                (n.start - a, (n.key as i32 - score.tonic as i32), n.dur).hash(&mut h);
            }
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
        "| {label} | {n} | {:.0}% | {:.0}% | {:.1} | {:.0}% / {:.0}% / {:.0}% | {:.1} | {:.2} / {:.2} / {:.2} | {:.0}% |\n",
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
    )
}

/// Write `seeds` tunes of `bars` bars per style with `model` and compare them with the test
/// split's real tunes; returns the EVAL.md section.
pub fn eval(model: &ScorePrior, model_name: &str, seeds: u64, bars: usize) -> Result<String> {
    let set = scores::build()?;
    let training: Vec<Vec<u64>> = set.split("train").map(|p| bar_hashes(&p.score)).collect();
    let mut index: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
    for (t, tune) in training.iter().enumerate() {
        for (i, h) in tune.iter().enumerate() {
            index.entry(*h).or_default().push((t as u32, i as u32));
        }
    }
    let mut table = String::from(
        "| style | tunes | key finder agrees | time on the scale | melody notes a bar | steps / repeats / leaps | range (semitones) | bar similarity 1 / 4 / 8 apart | strain ends on the tonic |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut copied_runs = Vec::new();
    let (mut all_real, mut all_gen) = (Vec::new(), Vec::new());
    for (s, style) in STYLES.iter().enumerate() {
        let real: Vec<&ScorePiece> = set.split("test").filter(|p| p.style == s).collect();
        let real_stats: Vec<TuneStats> = real.iter().map(|p| stats(&p.score, p.score.tonic, p.mode == 1)).collect();
        let (n, d) = STYLE_TIME_SIGNATURE[s];
        let meter = meter_index(n, d).expect("a known meter");
        let mut gen_stats = Vec::new();
        for seed in 1..=seeds {
            let tonic = ((seed * 5 + s as u64) % 12) as u8;
            let minor = (seed + s as u64) % 3 == 0;
            let mut styles = [0.0; STYLES.len()];
            styles[s] = 1.0;
            let cond = ScoreCond { styles: Some(styles), mode: Some(minor as u8), meter: Some(meter) };
            let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: DEFAULT_GUIDANCE, repeat: 0.0 };
            let mut w = ScoreWriter::new(model, tonic, METERS[meter].1, seed)?;
            let mut score = Score { tonic, bar_ticks: METERS[meter].1, bars: Vec::new(), notes: Vec::new() };
            for _ in 0..bars {
                let b = w.write_bar(&cond, &sampling)?;
                score.bars.push(b.start);
                score.notes.extend(b.notes);
            }
            score.notes.sort();
            copied_runs.push(longest_copied_run(&bar_hashes(&score), &index, &training));
            gen_stats.push(stats(&score, tonic, minor));
        }
        table += &row(&format!("{style}, real (test split)"), real_stats.len(), &real_stats);
        table += &row(&format!("{style}, generated"), gen_stats.len(), &gen_stats);
        all_real.extend(real_stats);
        all_gen.extend(gen_stats);
    }
    table += &row("**all, real**", all_real.len(), &all_real);
    table += &row("**all, generated**", all_gen.len(), &all_gen);
    let copies = copied_runs.iter().filter(|&&r| r >= 2).count();
    let worst = copied_runs.iter().max().copied().unwrap_or(0);
    Ok(format!(
        "## Score prior: the tunes it writes\n\n\
         Command: `cargo xtask eval score --seeds {seeds} --bars {bars}` on `{model_name}`. Each style in its usual time signature, keys rotating with the seed (a third minor), temperature 1, top-p 0.95, guidance {DEFAULT_GUIDANCE}, written as the corpus notates its tunes: Repeat 0, so each strain once (in playback Repeat plays each strain twice, A A B B, which puts bars 8 apart at similarity 1 by construction). Real tunes are the test split's, in their labelled keys. The key finder is Temperley's profiles over the notes' durations; melody is part 0's highest note at each onset; bar similarity is the Jaccard index of two bars' (onset, pitch) sets.\n\n\
         {table}\n\
         Novelty: {copies} of {} generated tunes contain a run of 2 or more consecutive melody bars (onsets, pitches relative to the tonic, lengths) found in the same order in a training tune; the longest such run is {worst} bars.\n",
        copied_runs.len()
    ))
}

/// How fast one way of stepping the model writes bars: per bar (ms), and tokens per bar.
struct WriteSpeed {
    ms_per_bar: Vec<f64>,
    tokens: usize,
    bars: usize,
    /// Mean ms per bar per style, for the ratio to the generator.
    style_ms: [f64; STYLES.len()],
}

fn write_speed(model: &ScorePrior, bars: usize, runs: usize) -> Result<WriteSpeed> {
    let mut speed = WriteSpeed { ms_per_bar: Vec::new(), tokens: 0, bars: 0, style_ms: [0.0; STYLES.len()] };
    for run in 0..runs {
        for (s, style_ms) in speed.style_ms.iter_mut().enumerate() {
            let (n, d) = STYLE_TIME_SIGNATURE[s];
            let meter = meter_index(n, d).expect("a known meter");
            let mut styles = [0.0; STYLES.len()];
            styles[s] = 1.0;
            let cond = ScoreCond { styles: Some(styles), mode: Some((s % 2) as u8), meter: Some(meter) };
            let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: DEFAULT_GUIDANCE, repeat: 0.0 };
            let mut w = ScoreWriter::new(model, 2, METERS[meter].1, run as u64 + 1)?;
            for _ in 0..bars {
                let t0 = Instant::now();
                let bar = w.write_bar(&cond, &sampling)?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                speed.ms_per_bar.push(ms);
                *style_ms += ms / (bars * runs) as f64;
                speed.tokens += bar.tokens;
                speed.bars += 1;
            }
        }
    }
    Ok(speed)
}

/// `cargo xtask bench score`: the score prior writing bars on one thread, by each way of stepping
/// it, against the generator's time for the same stretch of music; writes BENCHMARKS.md's score
/// section.
pub fn bench(path: &Path, bars: usize, runs: usize) -> Result<()> {
    if std::env::var("RAYON_NUM_THREADS").ok().as_deref() != Some("1") {
        anyhow::bail!("run the benchmark on one thread: RAYON_NUM_THREADS=1 cargo xtask bench score");
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let fast = ScorePrior::from_bytes(&bytes, &Device::Cpu)?;
    let mut q8 = ScorePrior::from_bytes(&bytes, &Device::Cpu)?;
    q8.quantize(GgmlDType::Q8_0)?;
    let mut tensors = ScorePrior::from_bytes(&bytes, &Device::Cpu)?;
    tensors.set_fast_path(false)?;
    // The generator's time for a stretch of music: the plugin's offline render (prior, decoder,
    // resampling, reader) with the built-in models at the knobs' defaults. The reader waits for
    // the generator thread, so the wall time is that thread's time.
    let settings = RenderSettings { seconds: 20.0, ..RenderSettings::default() };
    let mut gen_s_per_s = Vec::new();
    for _ in 0..runs {
        let factory = cantor::plugin::embedded_factory().context("this build has no built-in codes prior and codec")?;
        let t0 = Instant::now();
        render(&settings, factory, |_| {}).map_err(anyhow::Error::msg)?;
        gen_s_per_s.push(t0.elapsed().as_secs_f64() / settings.seconds);
    }
    let (gen_med, _) = median_p99(&gen_s_per_s);
    let tempo = settings.knobs.tempo as f64;
    let mut table = String::from("| stepping | ms a bar, mean / median / p99 | tokens a bar | worst share of the generator's time |\n|---|---|---|---|\n");
    for (name, model) in [("hand-written CPU step, f32 weights (what `cantor compose` runs)", &fast), ("hand-written CPU step, q8_0 weights", &q8), ("candle tensors", &tensors)] {
        let speed = write_speed(model, bars, runs)?;
        let mean = speed.ms_per_bar.iter().sum::<f64>() / speed.bars.max(1) as f64;
        let (med, p99) = median_p99(&speed.ms_per_bar);
        // A bar lasts its beats at the tempo (the Tempo knob counts the meter's beats).
        let worst = (0..STYLES.len())
            .map(|s| {
                let (n, d) = STYLE_TIME_SIGNATURE[s];
                let m = Meter::of_time_signature(n, d).expect("a known meter");
                let bar_s = m.beats_per_bar as f64 * 60.0 / tempo;
                speed.style_ms[s] / 1e3 / (bar_s * gen_med)
            })
            .fold(0.0, f64::max);
        table += &format!("| {name} | {mean:.2} / {med:.2} / {p99:.2} | {:.1} | {:.2}% |\n", speed.tokens as f64 / speed.bars.max(1) as f64, 100.0 * worst);
    }
    let body = format!(
        "## Score prior: writing bars (one thread)\n\n\
         Command: `RAYON_NUM_THREADS=1 cargo xtask bench score --bars {bars} --runs {runs}` on `{}`; {bars} bars per style in its usual time signature, {runs} runs (seeds), guidance {DEFAULT_GUIDANCE} (two rows a token), top-p 0.95; \
         times include sampling under the grammar. The generator's time: the plugin's offline render of {} s at the knobs' defaults, median {:.1} ms per second of audio ({:.1}x real time) in the same run; \
         the share is the score writer's time per bar over the generator's time for that bar at {tempo:.0} BPM, for the style where it is largest.\n\n\
         {table}\n\
         Targets: under 1 ms a bar on average; writing ahead of playback under 5% of the generator thread's time.\n\n{}\n",
        path.strip_prefix(repo_root()).unwrap_or(path).display(),
        settings.seconds,
        gen_med * 1e3,
        1.0 / gen_med,
        super::provenance(),
    );
    println!("{body}");
    super::write_section(&repo_root().join("BENCHMARKS.md"), "score", &body)
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
