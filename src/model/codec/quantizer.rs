//! Residual vector quantisation: each level quantises what the previous levels left over.
//!
//! Codebooks are plain tensors here; training updates them by exponential moving averages
//! (see xtask's trainer), which the candle notes showed to be far more stable than a codebook loss.

use super::CodecConfig;
use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

pub struct ResidualVq {
    /// One [codebook_size, latent_dim] tensor per level.
    codebooks: Vec<Tensor>,
    size: usize,
}

/// What training needs from a quantiser pass.
pub struct VqTrainOutput {
    /// Quantised latents with a straight-through gradient to the encoder.
    pub quantized: Tensor,
    /// Codes [batch, frames, levels].
    pub codes: Tensor,
    /// Mean squared distance between each level's input and its chosen code (no gradient to codes).
    pub commitment: Tensor,
    /// Each level's input [batch * frames, latent_dim], detached: the EMA update's data.
    pub level_inputs: Vec<Tensor>,
}

impl ResidualVq {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let codebooks = (0..cfg.n_codebooks)
            .map(|i| {
                vb.pp(format!("level{i}")).get_with_hints(
                    (cfg.codebook_size, cfg.latent_dim),
                    "codebook",
                    candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { codebooks, size: cfg.codebook_size })
    }

    pub fn levels(&self) -> usize {
        self.codebooks.len()
    }

    pub fn codebook(&self, level: usize) -> &Tensor {
        &self.codebooks[level]
    }

    /// Index of the nearest codebook entry for each row of `r` [n, dim].
    fn nearest(&self, level: usize, r: &Tensor) -> Result<Tensor> {
        let cb = &self.codebooks[level];
        // |r - c|² = |r|² - 2 r·c + |c|²; |r|² does not change the argmin.
        let dots = r.matmul(&cb.t()?)?;
        let c2 = cb.sqr()?.sum(D::Minus1)?.unsqueeze(0)?;
        c2.broadcast_sub(&(dots * 2.0)?)?.argmin(D::Minus1)
    }

    fn pass(&self, z: &Tensor, train: bool) -> Result<(Tensor, Tensor, Vec<Tensor>, Tensor)> {
        let (b, f, d) = z.dims3()?;
        let flat = z.reshape((b * f, d))?;
        let mut residual = flat.detach();
        let mut total = Tensor::zeros((b * f, d), z.dtype(), z.device())?;
        let mut codes = Vec::with_capacity(self.levels());
        let mut inputs = Vec::new();
        let mut commitment = Tensor::zeros((), DType::F32, z.device())?;
        for level in 0..self.levels() {
            let idx = self.nearest(level, &residual)?;
            let q = self.codebooks[level].index_select(&idx, 0)?;
            if train {
                inputs.push(residual.clone());
            }
            residual = (residual - &q)?;
            total = (total + &q)?;
            codes.push(idx.unsqueeze(1)?);
        }
        if train {
            // Commitment of the whole latent to the sum of its codes (gradient to the encoder only).
            commitment = (&flat - total.detach())?.sqr()?.mean_all()?;
        }
        let codes = Tensor::cat(&codes, 1)?.reshape((b, f, self.levels()))?;
        Ok((total.reshape((b, f, d))?, codes, inputs, commitment))
    }

    /// Latents [batch, frames, dim] → codes [batch, frames, levels] (u32).
    pub fn encode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.pass(z, false)?.1)
    }

    /// Codes [batch, frames, levels] → the sum of their codebook vectors [batch, frames, dim].
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
        for level in 0..l {
            let idx = codes.narrow(2, level, 1)?.flatten_all()?;
            let q = self.codebooks[level].index_select(&idx, 0)?;
            total = Some(match total {
                None => q,
                Some(t) => (t + q)?,
            });
        }
        total.expect("at least one level").reshape((b, f, ()))
    }

    /// Training pass: straight-through quantised latents, codes, commitment loss, level inputs.
    pub fn forward_train(&self, z: &Tensor) -> Result<VqTrainOutput> {
        let (total, codes, level_inputs, commitment) = self.pass(z, true)?;
        // Straight-through: forward uses the codes, backward passes the gradient to z unchanged.
        let quantized = (z + (total - z)?.detach())?;
        Ok(VqTrainOutput { quantized, codes, commitment, level_inputs })
    }
}
