//! Residual vector quantisation with factorised, normalised codes (as DAC): each level projects
//! what the previous levels left over down to a few dimensions, normalises it to the unit
//! sphere, picks the nearest code there (cosine similarity), and projects the code back up.
//!
//! Why: with codes looked up in the full 64-d latent space, the encoder's latents drifted in
//! scale and direction faster than the codebooks followed, and the first level collapsed onto a
//! handful of codes (session 2: 8 of 512 in use). On the unit sphere of an 8-d space every code
//! stays within reach of the data. Codebooks are trained by exponential moving averages in the
//! trainer (spherical k-means), which the candle notes found far more stable than a codebook loss.

use super::CodecConfig;
use crate::model::nn::Linear;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// One level: down-projection, unit-norm codebook, up-projection.
pub struct VqLevel {
    down: Linear,
    up: Linear,
    /// [codebook_size, code_dim], rows of unit length.
    codebook: Tensor,
}

pub struct ResidualVq {
    levels: Vec<VqLevel>,
    size: usize,
}

/// What training needs from a quantiser pass.
pub struct VqTrainOutput {
    /// Quantised latents with a straight-through gradient to the encoder.
    pub quantized: Tensor,
    /// Codes [batch, frames, levels].
    pub codes: Tensor,
    /// Mean over levels of the squared distance between each level's normalised input and its
    /// code (gradient to the encoder and the down-projections only).
    pub commitment: Tensor,
    /// Each level's normalised input [batch * frames, code_dim], detached: the EMA update's data.
    pub level_inputs: Vec<Tensor>,
}

/// Rows scaled to unit length (a zero row stays near zero instead of dividing by zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&norm)
}

impl VqLevel {
    fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let codebook = vb.get_with_hints((cfg.codebook_size, cfg.code_dim), "codebook", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 })?;
        Ok(Self { down: Linear::new(cfg.latent_dim, cfg.code_dim, vb.pp("down"))?, up: Linear::new(cfg.code_dim, cfg.latent_dim, vb.pp("up"))?, codebook })
    }

    /// Normalised low-dimensional view of `residual` [n, latent_dim] → [n, code_dim].
    fn project(&self, residual: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.down.forward(residual)?)
    }

    /// Nearest code by cosine similarity for each row of `x` [n, code_dim] (unit rows).
    fn nearest(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&l2_normalize(&self.codebook)?.t()?)?.argmax(D::Minus1)
    }

    /// Code vectors for `idx` [n], as unit vectors [n, code_dim].
    fn lookup(&self, idx: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.codebook.index_select(idx, 0)?)
    }
}

impl ResidualVq {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let levels = (0..cfg.n_codebooks).map(|i| VqLevel::new(cfg, vb.pp(format!("level{i}")))).collect::<Result<Vec<_>>>()?;
        Ok(Self { levels, size: cfg.codebook_size })
    }

    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// A level's codebook [codebook_size, code_dim] (the trainer's EMA writes it).
    pub fn codebook(&self, level: usize) -> &Tensor {
        &self.levels[level].codebook
    }

    /// A level's down-projection weight (part of what decides the codes).
    pub fn down_weight(&self, level: usize) -> Result<Tensor> {
        match &self.levels[level].down {
            Linear::Float(l) => Ok(l.weight().clone()),
            Linear::Quantized { .. } => candle_core::bail!("the quantiser's projections are never quantised"),
        }
    }

    fn pass(&self, z: &Tensor, train: bool) -> Result<(Tensor, Tensor, Vec<Tensor>, Tensor)> {
        let (b, f, d) = z.dims3()?;
        let flat = z.reshape((b * f, d))?;
        let mut residual = if train { flat.clone() } else { flat.detach() };
        let mut total: Option<Tensor> = None;
        let mut codes = Vec::with_capacity(self.levels());
        let mut inputs = Vec::new();
        let mut commitment = Tensor::zeros((), DType::F32, z.device())?;
        for level in &self.levels {
            let x = level.project(&residual)?;
            let idx = level.nearest(&x.detach())?;
            let q = level.lookup(&idx)?.detach();
            let contribution = if train {
                commitment = (commitment + (&x - &q)?.sqr()?.sum(D::Minus1)?.mean_all()?)?;
                inputs.push(x.detach());
                // Straight-through: forward uses the code, backward reaches the down-projection.
                level.up.forward(&(&x + (&q - &x)?.detach())?)?
            } else {
                level.up.forward(&q)?
            };
            residual = (residual - &contribution)?;
            total = Some(match total {
                None => contribution,
                Some(t) => (t + contribution)?,
            });
            codes.push(idx.unsqueeze(1)?);
        }
        if train {
            commitment = (commitment / self.levels() as f64)?;
        }
        let codes = Tensor::cat(&codes, 1)?.reshape((b, f, self.levels()))?;
        let total = total.expect("at least one level").reshape((b, f, d))?;
        Ok((total, codes, inputs, commitment))
    }

    /// Latents [batch, frames, dim] → codes [batch, frames, levels] (u32).
    pub fn encode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.pass(z, false)?.1)
    }

    /// Codes [batch, frames, levels] → the sum of their up-projected codes [batch, frames, dim].
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (b, f, l) = codes.dims3()?;
        if l != self.levels() {
            candle_core::bail!("codes have {l} levels, the codec has {}", self.levels());
        }
        let max = codes.max_all()?.to_dtype(DType::U32)?.to_scalar::<u32>()?;
        if max as usize >= self.size {
            candle_core::bail!("code {max} is out of range for codebooks of {} entries", self.size);
        }
        let mut total: Option<Tensor> = None;
        for (k, level) in self.levels.iter().enumerate() {
            let idx = codes.narrow(2, k, 1)?.flatten_all()?;
            let q = level.up.forward(&level.lookup(&idx)?)?;
            total = Some(match total {
                None => q,
                Some(t) => (t + q)?,
            });
        }
        total.expect("at least one level").reshape((b, f, ()))
    }

    /// Training pass: straight-through quantised latents, codes, commitment loss, level inputs.
    /// The straight-through path runs through every level's projections, so the encoder, the
    /// down- and the up-projections all learn from the reconstruction.
    pub fn forward_train(&self, z: &Tensor) -> Result<VqTrainOutput> {
        let (quantized, codes, level_inputs, commitment) = self.pass(z, true)?;
        Ok(VqTrainOutput { quantized, codes, commitment, level_inputs })
    }
}
