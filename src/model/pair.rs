//! A codec and the prior that writes its codes, loaded and checked together: a prior trained on
//! another codec's codes would play noise, so the pair is refused with a reason instead. When
//! the prior is a performer, the score prior that writes its notes comes with them.

use super::codec::{self, Codec, CodecConfig};
use super::prior::{self, codec_codes_id, Prior, PriorConfig};
use super::score::ScorePrior;
use super::weights::{self, var_tensors, WeightsError};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

pub struct ModelPair {
    pub codec: Codec,
    /// The codes prior: a performer (`PriorConfig::notes`) when `score` is there.
    pub prior: Prior,
    /// The score prior writing the notes the performer plays (`with_score`).
    pub score: Option<std::sync::Arc<ScorePrior>>,
    /// For the editor: "Cantor prior 4x256 + codec 5.4 kbit/s".
    pub name: String,
    /// Where both run (`model::inference_device`).
    pub device: Device,
}

impl ModelPair {
    /// Load both from model-file bytes and check that they belong together.
    pub fn from_bytes(codec: &[u8], prior: &[u8]) -> Result<Self, String> {
        let device = super::inference_device();
        let codec = Codec::from_bytes(codec, &device).map_err(|e| format!("The codec model file is unusable: {e}"))?;
        let prior = Prior::from_bytes(prior, &device).map_err(|e| format!("The prior model file is unusable: {e}"))?;
        let (c, p) = (&codec.cfg, &prior.cfg);
        if c.n_codebooks != p.n_levels || c.codebook_size != p.codebook_size {
            return Err(format!(
                "The prior writes {} levels of {} codes but the codec reads {} levels of {}: they were not trained together.",
                p.n_levels, p.codebook_size, c.n_codebooks, c.codebook_size
            ));
        }
        if (c.frame_rate() - p.frame_rate).abs() > 1e-6 {
            return Err(format!("The prior runs at {} frames/s but the codec at {}.", p.frame_rate, c.frame_rate()));
        }
        let id = codec_codes_id(&codec).map_err(|e| e.to_string())?;
        if p.codec_id != id {
            return Err(format!("The prior was trained on the codes of codec {} but this codec is {id}: they do not belong together.", p.codec_id));
        }
        let name = format!("Cantor prior {}x{} + codec {:.1} kbit/s{}", p.n_layers, p.d_model, c.bitrate() / 1000.0, if device.is_cpu() { "" } else { " (GPU)" });
        Ok(Self { codec, prior, score: None, name, device })
    }

    /// Add the score prior that writes the notes: the hierarchy. Refused unless the prior is a
    /// performer (a prior that takes no notes would ignore the tune).
    pub fn with_score(mut self, score: &[u8]) -> Result<Self, String> {
        if !self.prior.cfg.notes {
            return Err("A score prior needs a performer (a prior trained with notes) to play its tunes; this prior takes no notes.".into());
        }
        let score = ScorePrior::from_bytes(score, &candle_core::Device::Cpu).map_err(|e| format!("The score prior model file is unusable: {e}"))?;
        let (p, c) = (&self.prior.cfg, &self.codec.cfg);
        self.name = format!("Cantor score prior + performer {}x{} + codec {:.1} kbit/s{}", p.n_layers, p.d_model, c.bitrate() / 1000.0, if self.device.is_cpu() { "" } else { " (GPU)" });
        self.score = Some(std::sync::Arc::new(score));
        Ok(self)
    }

    /// The models built into this binary: the score prior and the performer when both ship,
    /// else the knobs-only prior, if one has been trained.
    #[cfg(any(feature = "cli", feature = "plugin"))]
    pub fn embedded() -> Result<Self, String> {
        use super::embedded::{CODEC, PERFORMER, PRIOR, SCORE};
        match (SCORE, PERFORMER, PRIOR) {
            (Some(score), Some(performer), _) => Self::from_bytes(CODEC, performer)?.with_score(score),
            (_, _, Some(prior)) => Self::from_bytes(CODEC, prior),
            _ => Err("No prior is built into this binary (none has been trained yet).".to_string()),
        }
    }

    /// Whether this binary has models to play (`embedded` would load some).
    pub fn has_embedded() -> bool {
        use super::embedded::{PERFORMER, PRIOR, SCORE};
        PRIOR.is_some() || (SCORE.is_some() && PERFORMER.is_some())
    }
}

/// Model files (codec, prior) with random weights, stored as the shipped ones are (f16, and the
/// large linear layers as `quantize` blocks if given): for tests and speed benchmarks, where
/// what the model has learned does not matter. The prior names this codec's code space, or
/// `codec_id` when given (to test a mismatched pair).
pub fn random_model_files(codec_cfg: &CodecConfig, prior_cfg: &PriorConfig, codec_id: Option<&str>, quantize: Option<GgmlDType>) -> Result<(Vec<u8>, Vec<u8>), WeightsError> {
    let (cvm, pvm) = (VarMap::new(), VarMap::new());
    let codec = Codec::new(codec_cfg, VarBuilder::from_varmap(&cvm, DType::F32, &Device::Cpu))?;
    let prior_cfg = PriorConfig { codec_id: match codec_id {
        Some(id) => id.to_string(),
        None => codec_codes_id(&codec)?,
    }, ..prior_cfg.clone() };
    Prior::new(&prior_cfg, VarBuilder::from_varmap(&pvm, DType::F32, &Device::Cpu))?;
    let c = weights::to_bytes_quantized(codec::KIND, codec_cfg, &var_tensors(&cvm), Some(DType::F16), quantize.map(|q| (&Codec::is_quantizable as &dyn Fn(&str) -> bool, q)))?;
    let p = weights::to_bytes_quantized(prior::KIND, &prior_cfg, &var_tensors(&pvm), Some(DType::F16), quantize.map(|q| (&Prior::is_quantizable as &dyn Fn(&str) -> bool, q)))?;
    Ok((c, p))
}
