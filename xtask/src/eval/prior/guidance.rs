//! `eval prior --guidance-sweep`: the adherence table at several classifier-free guidance
//! strengths.

use super::adherence::adherence;
use super::style::real_style_classifier;
use crate::dataset::recipe::DatasetConfig;
use crate::dataset::Dataset;
use anyhow::Result;
use cantor::model::codec::Codec;
use cantor::plugin::SourceFactory;

/// `cargo xtask eval prior --guidance-sweep 0,1.5,3`: adherence and diversity at each guidance
/// strength (is guidance a knob that steers, and which default steers best?), each style in its
/// usual time signature or all in `signature`.
pub fn eval_guidance(
    factory: impl Fn() -> SourceFactory,
    codec: &Codec,
    seeds: u32,
    seconds: f64,
    strengths: &[f32],
    classifier_clips: usize,
    signature: Option<(u32, u32)>,
) -> Result<String> {
    let ds = Dataset::build(&DatasetConfig::default())?;
    let (clf, _) = real_style_classifier(&ds, classifier_clips, codec)?;
    let mut rows = String::new();
    for &g in strengths {
        let a = adherence(&factory, &clf, seeds, seconds, g, signature)?;
        println!("guidance {g}, per style (recognised, tempo, key):\n{}", a.rows);
        rows.push_str(&format!("| {g} | {:.0}% | {:.0}% | {:.0}% | {:.2} |\n", a.pct(a.style_ok), a.pct(a.tempo_ok), a.pct(a.key_ok), a.diversity));
        println!(
            "guidance {g}: style {:.0}%, tempo {:.0}%, key {:.0}%, diversity {:.2}",
            a.pct(a.style_ok),
            a.pct(a.tempo_ok),
            a.pct(a.key_ok),
            a.diversity
        );
    }
    let list: Vec<String> = strengths.iter().map(|g| g.to_string()).collect();
    let asked = match signature {
        Some((n, d)) => format!(" --time-signature {n}/{d}`; every style asked in {n}/{d}"),
        None => "`".into(),
    };
    Ok(format!(
        "## Prior: guidance strength\n\n\
         Command: `cargo xtask eval prior --seeds {seeds} --seconds {seconds} --guidance-sweep {}{asked}; the takes of the adherence table above at each classifier-free guidance strength (0 ignores the knobs, 1 is the conditional model, above 1 exaggerates the knobs; the plugin's default is {}).\n\n\
         | guidance | style recognised | tempo within 5% | key right | diversity |\n|---|---|---|---|---|\n{rows}",
        list.join(","),
        cantor::knobs::KNOBS.guidance.default
    ))
}
