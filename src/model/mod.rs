//! Cantor's neural models, shared by inference (engine, CLI) and training (xtask): one definition,
//! no export step. Nothing here knows about the plugin, the editor or the real-time engine.

pub mod codec;
pub mod codes;
pub(crate) mod kernels;
#[cfg(any(feature = "cli", feature = "plugin"))]
pub mod embedded;
pub mod nn;
pub mod pair;
pub mod prior;
pub mod score;
pub mod spectral;
pub mod vocab;
pub mod weights;

/// The device the plugin and the command line run the models on: a GPU when the binary was
/// built with the `cuda` or `metal` feature and one is present, else the CPU. The CPU is the
/// default, the tested path, and the fastest here for one stream (the prior's hand-written CPU
/// step, `prior::cpu_step`, runs only on the CPU; on a GPU the prior runs on candle's tensors).
pub fn inference_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = candle_core::Device::new_metal(0) {
        return d;
    }
    candle_core::Device::Cpu
}

#[cfg(all(test, not(any(feature = "cuda", feature = "metal"))))]
mod tests {
    #[test]
    fn the_default_build_runs_on_the_cpu_with_the_fast_prior() {
        use super::{codec::CodecConfig, pair, prior::PriorConfig};
        assert!(super::inference_device().is_cpu());
        let (c, p) = pair::random_model_files(&CodecConfig::tiny(), &PriorConfig::tiny(), None, None).unwrap();
        let loaded = pair::ModelPair::from_bytes(&c, &p).unwrap();
        assert!(loaded.device.is_cpu() && loaded.prior.has_fast_path());
    }

    /// The built-in score prior (when this build has one) loads on the fast path and writes a
    /// reel's first strain in D major: full bars, notes inside them, on the scale or near it.
    #[test]
    fn the_built_in_score_prior_writes_a_strain_of_full_bars_in_key() {
        use super::prior::sampling::Sampling;
        use super::score::{tokens, writer::ScoreWriter, ScoreCond, ScorePrior};
        let Some(bytes) = super::embedded::SCORE else { return };
        let model = ScorePrior::from_bytes(bytes, &candle_core::Device::Cpu).unwrap();
        assert!(model.has_fast_path());
        let meter = tokens::meter_index(2, 2).unwrap();
        let bar_ticks = tokens::METERS[meter].1;
        let mut w = ScoreWriter::new(&model, 2, bar_ticks, 7).unwrap();
        let cond = ScoreCond { styles: Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), mode: Some(0), meter: Some(meter) };
        let sampling = Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: super::score::DEFAULT_GUIDANCE, repeat: 0.0 };
        let bars: Vec<_> = (0..8).map(|_| w.write_bar(&cond, &sampling).unwrap()).collect();
        let notes: Vec<_> = bars.iter().flat_map(|b| b.notes.iter()).collect();
        assert!(notes.len() >= 16, "{} notes in 8 bars of a reel", notes.len());
        assert!(bars.iter().all(|b| b.len == bar_ticks), "every bar full: {:?}", bars.iter().map(|b| b.len).collect::<Vec<_>>());
        assert!(notes.iter().all(|n| n.start < 8 * bar_ticks));
        // D major's notes.
        let on_scale = notes.iter().filter(|n| [2, 4, 6, 7, 9, 11, 1].contains(&(n.key % 12))).count();
        assert!(on_scale * 10 >= notes.len() * 8, "{on_scale} of {} notes in D major", notes.len());
    }
}
