//! The phrase ablation of `eval prior` and `eval prior --repeat-sweep`: how much generated reels
//! repeat at phrase distances (4 and 8 bars) against real tunes, with phrase-position
//! conditioning and strain repetition on or off.

use super::{render_mono, SR, STYLE_TIME_SIGNATURE};
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::{ClipSource, Dataset};
use crate::eval::music::{bar_similarity, phrase_contrast};
use crate::eval::real_clips::renderable;
use anyhow::Result;
use cantor::knobs::KnobValues;
use cantor::model::vocab::STYLES;
use cantor::plugin::render::RenderSettings;
use cantor::plugin::SourceFactory;

/// Phrase contrast (see `music::phrase_contrast`) and mean bar similarities of real pieces: 40 s
/// from the start of test clips of the dance styles, with their labelled tempo and bar.
pub fn real_bar_similarity(ds: &Dataset, pieces: usize) -> Result<(f64, Vec<f64>)> {
    let mut source = ClipSource::new(SR);
    let clips: Vec<&ClipRecipe> = renderable(ds, "test").filter(|c| c.style != "chorale" && c.style != "air").collect();
    let step = (clips.len() / pieces.max(1)).max(1);
    let mut sims = Vec::new();
    for clip in clips.iter().step_by(step).take(pieces) {
        let x = source.render_span(clip, 0.0, 40.0)?;
        let beats_per_bar = (clip.bar_quarters / clip.beat_quarters).round().max(1.0) as u32;
        sims.push(bar_similarity(&x, SR, clip.bpm, beats_per_bar, BAR_DISTANCES));
    }
    let n = sims.len().max(1) as f64;
    Ok((contrasts(&sims).iter().sum::<f64>() / n, mean_similarity(&sims)))
}

/// Takes per arm of the phrase ablation. With 5 takes per arm two runs gave with/without
/// -0.038/-0.020 and -0.020/-0.063: the sign flipped, so the arms need more takes and the
/// difference its standard error.
pub(super) const PHRASE_TAKES: u32 = 16;

/// Bar similarities (`music::bar_similarity`, distances 1-8) of generated reels, 40 s each, one
/// per seed 1..=takes (the same seeds in every arm, so arms can be paired), with phrase-position
/// conditioning on or off and strain repetition `repeat`.
fn generated_bar_similarity(factory: &dyn Fn(bool) -> SourceFactory, phrase: bool, repeat: f32, takes: u32) -> Result<Vec<Vec<f64>>> {
    // In the reel's own metre (cut time), as the real pieces are measured in theirs.
    let reel = STYLES.iter().position(|s| *s == "reel").expect("a reel style");
    let time_signature = STYLE_TIME_SIGNATURE[reel];
    let beats_per_bar = cantor::model::vocab::Meter::of_time_signature(time_signature.0, time_signature.1).expect("a valid signature").beats_per_bar;
    (1..=takes)
        .map(|seed| {
            let mut styles = [0.0; STYLES.len()];
            styles[reel] = 1.0;
            let knobs = KnobValues { styles, tempo: 116.0, seed: seed as i32, repeat, ..super::eval_knobs() };
            let settings = RenderSettings { seconds: 40.0, sample_rate: SR, time_signature, knobs };
            let mono = render_mono(&settings, factory(phrase))?;
            Ok(bar_similarity(&mono, SR, 116.0, beats_per_bar, BAR_DISTANCES))
        })
        .collect()
}

/// Bar distances (1 to this) whose similarity is measured: the phrase contrast needs 4 and 8.
const BAR_DISTANCES: usize = 8;

/// Mean bar similarity at each distance over several pieces (0 where there are none).
fn mean_similarity(similarities: &[Vec<f64>]) -> Vec<f64> {
    let n = similarities.len().max(1) as f64;
    (0..BAR_DISTANCES).map(|d| similarities.iter().map(|s| s[d]).sum::<f64>() / n).collect()
}

fn contrasts(similarities: &[Vec<f64>]) -> Vec<f64> {
    similarities.iter().map(|s| phrase_contrast(s)).collect()
}

/// Paired difference of two arms over the same seeds: mean and standard error.
fn paired(a: &[f64], b: &[f64]) -> (f64, f64) {
    mean_and_error(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())
}

/// `cargo xtask eval prior --repeat-sweep 0,0.5,1`: phrase contrast and bar similarity of the
/// phrase ablation's reels at each repeat strength (does the echo give the music the
/// structure of real tunes, and where does it turn into a loop?).
pub fn eval_repeat(phrase_factory: &dyn Fn(bool) -> SourceFactory, strengths: &[f32], takes: u32) -> Result<String> {
    let ds = Dataset::build(&DatasetConfig::default())?;
    let (real, real_similarity) = real_bar_similarity(&ds, 20)?;
    let mut rows = format!("| real test pieces | {real:+.3} | - | {:.3} | {:.3} |\n", real_similarity[3], real_similarity[7]);
    let mut base: Option<Vec<f64>> = None;
    for &r in strengths {
        let sims = generated_bar_similarity(phrase_factory, true, r, takes)?;
        let c = contrasts(&sims);
        let (mean, err) = mean_and_error(&c);
        let base_c = base.get_or_insert_with(|| c.clone());
        let (gain, gain_err) = paired(&c, base_c);
        let similarity = mean_similarity(&sims);
        println!(
            "repeat {r}: contrast {mean:+.3} +- {err:.3}, paired {gain:+.3} +- {gain_err:.3}, similarity at 4 {:.3}, at 8 {:.3}",
            similarity[3], similarity[7]
        );
        rows.push_str(&format!("| {r} | {mean:+.3} ± {err:.3} | {gain:+.3} ± {gain_err:.3} | {:.3} | {:.3} |\n", similarity[3], similarity[7]));
    }
    let list: Vec<String> = strengths.iter().map(|g| g.to_string()).collect();
    Ok(format!(
        "## Prior: strain repetition\n\n\
         Command: `cargo xtask eval prior --repeat-sweep {}`; {takes} generated reels per row (40 s, 116 BPM in 2/2, seeds 1-{takes} in every row), phrase-position conditioning on, at each repeat strength (the plugin's default is {}). Phrase contrast: chroma similarity of bars 4 and 8 apart minus that of bars 1-3 and 5-7 apart; the paired change is against the first row, over the same seeds (± one standard error).\n\n\
         | repeat | phrase contrast | change | similarity 4 bars apart | 8 bars apart |\n|---|---|---|---|---|\n{rows}",
        list.join(","),
        cantor::knobs::KNOBS.repeat.default
    ))
}

/// Mean and standard error of the mean.
fn mean_and_error(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// Sources on `pair` with phrase conditioning on or off (the ablation `eval_prior` measures).
pub fn phrase_factory(pair: std::sync::Arc<cantor::model::pair::ModelPair>) -> impl Fn(bool) -> SourceFactory {
    move |phrase: bool| -> SourceFactory {
        let m = pair.clone();
        std::sync::Arc::new(move || {
            let mut s = cantor::engine::neural_source::NeuralSource::new(m.clone())?;
            s.set_phrase_conditioning(phrase);
            Ok(Box::new(s) as Box<dyn cantor::engine::FrameSource>)
        })
    }
}

/// The phrase ablation: phrase contrast (mean and standard error) of real pieces and of
/// generated reels in three arms over the same seeds, and the arms' paired differences.
pub(super) struct Ablation {
    pub real: f64,
    /// Phrase-position conditioning and strain repetition at the plugin's default.
    pub both: (f64, f64),
    /// Phrase-position conditioning only (repeat 0).
    pub conditioning_only: (f64, f64),
    /// Neither.
    pub neither: (f64, f64),
    /// Paired gain of strain repetition (both against conditioning only).
    pub repetition_gain: (f64, f64),
    /// Paired gain of phrase-position conditioning (conditioning only against neither).
    pub conditioning_gain: (f64, f64),
}

/// Run the ablation: `real_pieces` real test pieces, `takes` generated reels per arm.
pub(super) fn ablation(ds: &Dataset, phrase_factory: &dyn Fn(bool) -> SourceFactory, real_pieces: usize, takes: u32) -> Result<Ablation> {
    let (real, _) = real_bar_similarity(ds, real_pieces)?;
    let both = contrasts(&generated_bar_similarity(phrase_factory, true, cantor::knobs::KNOBS.repeat.default, takes)?);
    let with = contrasts(&generated_bar_similarity(phrase_factory, true, 0.0, takes)?);
    let without = contrasts(&generated_bar_similarity(phrase_factory, false, 0.0, takes)?);
    Ok(Ablation {
        real,
        both: mean_and_error(&both),
        conditioning_only: mean_and_error(&with),
        neither: mean_and_error(&without),
        repetition_gain: paired(&both, &with),
        conditioning_gain: paired(&with, &without),
    })
}
