//! `cargo xtask bench score`: how fast the score prior writes bars, by each way of stepping it,
//! against the generator's time for the same music.

use super::super::{median_p99, provenance, write_section};
use crate::dataset::repo_root;
use crate::eval::prior::STYLE_TIME_SIGNATURE;
use anyhow::{Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use cantor::model::prior::sampling::Sampling;
use cantor::model::score::tokens::{meter_index, METERS};
use cantor::model::score::writer::ScoreWriter;
use cantor::model::score::{ScoreCond, ScorePrior, DEFAULT_GUIDANCE};
use cantor::model::vocab::{Meter, STYLES};
use cantor::plugin::render::{render, RenderSettings};
use std::path::Path;
use std::time::Instant;

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
    for (name, model) in [("hand-written CPU step, f32 weights", &fast), ("hand-written CPU step, q8_0 weights (what `cantor compose` runs)", &q8), ("candle tensors", &tensors)] {
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
        provenance(),
    );
    println!("{body}");
    write_section(&repo_root().join("BENCHMARKS.md"), "score", &body)
}
