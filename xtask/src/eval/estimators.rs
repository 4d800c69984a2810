//! `cargo xtask eval estimators`: how far the music measurements (`music`) agree with the labels
//! of real corpus clips, which says how far their verdicts on generated audio can be trusted.

use super::music::{estimate_key, tempo_adherent};
use super::prior::phrase::real_bar_similarity;
use super::real_clips::{codec_roundtrip, renderable};
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::{ClipSource, Dataset};
use anyhow::Result;
use cantor::model::codec::Codec;
use std::path::Path;

/// Tempo and key agreement of clips with their labels: (clips, tempo right, key right, key or
/// its relative major/minor right).
#[derive(Default)]
struct Agreement {
    n: usize,
    tempo: usize,
    key: usize,
    key_close: usize,
}

impl Agreement {
    fn add(&mut self, audio: &[f32], sr: u32, clip: &ClipRecipe) {
        self.n += 1;
        self.tempo += tempo_adherent(audio, sr, clip.bpm, 0.05).0 as usize;
        let got = estimate_key(audio, sr);
        let want = (clip.key_pitch_class as u32, if clip.key_mode == "minor" { 1 } else { 0 });
        // Relative major/minor (same notes) counts as close.
        let relative = if want.1 == 0 { ((want.0 + 9) % 12, 1) } else { ((want.0 + 3) % 12, 0) };
        self.key += (got == want) as usize;
        self.key_close += (got == want || got == relative) as usize;
    }

    fn pct(&self, k: usize) -> f64 {
        100.0 * k as f64 / self.n.max(1) as f64
    }
}

/// `cargo xtask eval estimators`: the tempo and key measurements on real test clips against
/// their labels (what a perfect generator would score), as rendered and after the shipped
/// codec's round trip (what a perfect prior would score), written to EVAL.md.
pub fn eval_estimators(clips: usize, codec_path: &Path) -> Result<()> {
    let ds = Dataset::build(&DatasetConfig::default())?;
    let codec = Codec::from_bytes(&std::fs::read(codec_path)?, &candle_core::Device::Cpu)?;
    let test: Vec<_> = renderable(&ds, "test").collect();
    let step = (test.len() / clips.max(1)).max(1);
    let sr = codec.cfg.sample_rate;
    let mut source = ClipSource::new(sr);
    let (mut real, mut coded) = (Agreement::default(), Agreement::default());
    for clip in test.iter().step_by(step).take(clips) {
        let audio = source.render(clip)?;
        real.add(&audio, sr, clip);
        coded.add(&codec_roundtrip(&codec, &audio)?, sr, clip);
    }
    let (phrase, _) = real_bar_similarity(&ds, 20)?;
    let row = |name: &str, k: fn(&Agreement) -> usize| format!("| {name} | {:.0}% | {:.0}% |\n", real.pct(k(&real)), coded.pct(k(&coded)));
    let body = format!(
        "## Music estimators on real clips (what a perfect generator would score)\n\n\
         Command: `cargo xtask eval estimators --clips {clips}`; {} test clips of the corpus, rendered at 24 kHz, against their labels: as rendered, and after a round trip through the codec `{}`, which bounds what the prior's music can score.\n\n\
         | measurement | agreement with the label | after the codec |\n|---|---|---|\n\
         {}{}{}\n\
         Phrase contrast of 20 real dance tunes (40 s from their start; chroma similarity of bars 4 and 8 apart minus bars 1-3 and 5-7 apart): {phrase:+.3}.\n\n\
         The prior's tempo and key adherence (`cargo xtask eval prior`) use these estimators; their targets (80% and 70%) are to be read against these rates.\n",
        real.n,
        codec_path.strip_prefix(crate::dataset::repo_root()).unwrap_or(codec_path).display(),
        row("tempo within 5% (pulse searched within a factor 1.45 of the label)", |a| a.tempo),
        row("key, tonic and mode", |a| a.key),
        row("key, or its relative major/minor", |a| a.key_close),
    );
    println!("{body}");
    super::write_section(&crate::dataset::repo_root().join("EVAL.md"), "estimators", &body)
}
