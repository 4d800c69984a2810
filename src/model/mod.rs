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
}
