//! Residual finite scalar quantisation (FSQ, Mentzer et al. 2023, applied residually): each
//! level projects what the previous levels left over down to a few dimensions, bounds each
//! dimension with tanh, rounds it to one of a few values (8 values in each of 3 dimensions =
//! 512 codes), and projects the rounded point back up.
//!
//! Why not learned codebooks: session 2 measured vector-quantised codebooks here collapse,
//! whether updated by EMA in the 64-d latent space or on an 8-d unit sphere (the first level
//! fell to 8 of 512 codes in use). FSQ has no codebook to collapse, no commitment loss, no
//! dead-code restarts: its grid of codes is fixed, and the projections learn to use it.

use super::CodecConfig;
use crate::model::nn::Linear;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// One level: down-projection, a fixed grid of `levels[i]` values per dimension, up-projection.
pub struct FsqLevel {
    down: Linear,
    up: Linear,
}

pub struct ResidualFsq {
    levels: Vec<FsqLevel>,
    /// Values per dimension, e.g. [8, 8, 8].
    grid: Vec<usize>,
    size: usize,
}

/// What training needs from a quantiser pass.
pub struct FsqTrainOutput {
    /// Quantised latents with a straight-through gradient to the encoder.
    pub quantized: Tensor,
    /// Codes [batch, frames, levels].
    pub codes: Tensor,
}

impl ResidualFsq {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let dims = cfg.fsq_levels.len();
        let levels = (0..cfg.n_codebooks)
            .map(|i| {
                let vb = vb.pp(format!("level{i}"));
                Ok(FsqLevel { down: Linear::new(cfg.latent_dim, dims, vb.pp("down"))?, up: Linear::new(dims, cfg.latent_dim, vb.pp("up"))? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { levels, grid: cfg.fsq_levels.clone(), size: cfg.codebook_size })
    }

    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// A level's down-projection weight (it decides the codes; see `prior::codec_codes_id`).
    pub fn down_weight(&self, level: usize) -> Result<Tensor> {
        match &self.levels[level].down {
            Linear::Float(l) => Ok(l.weight().clone()),
            Linear::Quantized { .. } => candle_core::bail!("the quantiser's projections are never quantised"),
        }
    }

    /// Per dimension: (half range, offset, shift) of the bounding function, so that rounding
    /// gives exactly L integers in [-L/2, L/2 - 1] (even L) or [-(L-1)/2, (L-1)/2] (odd L).
    fn bounds(&self, device: &candle_core::Device) -> Result<(Tensor, Tensor, Tensor)> {
        let half: Vec<f32> = self.grid.iter().map(|&l| (l as f32 - 1.0) * (1.0 + 1e-3) / 2.0).collect();
        let offset: Vec<f32> = self.grid.iter().map(|&l| if l % 2 == 0 { 0.5 } else { 0.0 }).collect();
        let shift: Vec<f32> = half.iter().zip(&offset).map(|(h, o)| (o / h).atanh()).collect();
        let t = |v: Vec<f32>| Tensor::from_vec(v, (1, self.grid.len()), device);
        Ok((t(half)?, t(offset)?, t(shift)?))
    }

    /// Grid points [n, dims] (integers, as f32) → code indices [n] (mixed radix).
    fn to_index(&self, q: &Tensor) -> Result<Tensor> {
        let mut radix = 1usize;
        let mut weights = Vec::with_capacity(self.grid.len());
        let mut base = Vec::with_capacity(self.grid.len());
        for &l in &self.grid {
            weights.push(radix as f32);
            base.push((l / 2) as f32);
            radix *= l;
        }
        let d = self.grid.len();
        let digits = q.broadcast_add(&Tensor::from_vec(base, (1, d), q.device())?)?;
        digits.broadcast_mul(&Tensor::from_vec(weights, (d, 1), q.device())?.t()?)?.sum(D::Minus1)?.round()?.to_dtype(DType::U32)
    }

    /// Code indices [n] → grid points [n, dims] scaled to about [-1, 1] (the up-projection's input).
    fn from_index(&self, idx: &Tensor) -> Result<Tensor> {
        let idx: Vec<u32> = idx.to_vec1()?;
        let d = self.grid.len();
        let mut out = Vec::with_capacity(idx.len() * d);
        for mut i in idx {
            for &l in &self.grid {
                let digit = (i as usize % l) as f32;
                i /= l as u32;
                out.push((digit - (l / 2) as f32) / (l / 2) as f32);
            }
        }
        let n = out.len() / d;
        Tensor::from_vec(out, (n, d), &candle_core::Device::Cpu)
    }

    fn pass(&self, z: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (b, f, d) = z.dims3()?;
        let flat = z.reshape((b * f, d))?;
        let mut residual = if train { flat.clone() } else { flat.detach() };
        let (half, offset, shift) = self.bounds(z.device())?;
        let scale: Vec<f32> = self.grid.iter().map(|&l| 1.0 / (l / 2) as f32).collect();
        let scale = Tensor::from_vec(scale, (1, self.grid.len()), z.device())?;
        let mut total: Option<Tensor> = None;
        let mut codes = Vec::with_capacity(self.levels());
        for level in &self.levels {
            let bounded = level.down.forward(&residual)?.broadcast_add(&shift)?.tanh()?.broadcast_mul(&half)?.broadcast_sub(&offset)?;
            let rounded = bounded.detach().round()?;
            codes.push(self.to_index(&rounded)?.unsqueeze(1)?);
            // Straight-through rounding: forward uses the grid point, backward the bounded value.
            let q = if train { (&bounded + (&rounded - &bounded)?.detach())? } else { rounded };
            let contribution = level.up.forward(&q.broadcast_mul(&scale)?)?;
            residual = (residual - &contribution)?;
            total = Some(match total {
                None => contribution,
                Some(t) => (t + contribution)?,
            });
        }
        let codes = Tensor::cat(&codes, 1)?.reshape((b, f, self.levels()))?;
        Ok((total.expect("at least one level").reshape((b, f, d))?, codes))
    }

    /// Latents [batch, frames, dim] → codes [batch, frames, levels] (u32).
    pub fn encode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.pass(z, false)?.1)
    }

    /// Codes [batch, frames, levels] → the sum of their up-projected grid points [batch, frames, dim].
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
            let q = level.up.forward(&self.from_index(&idx)?.to_device(codes.device())?)?;
            total = Some(match total {
                None => q,
                Some(t) => (t + q)?,
            });
        }
        total.expect("at least one level").reshape((b, f, ()))
    }

    /// Data-dependent initialisation (as k-means initialises codebooks): for each level in turn,
    /// the down-projection's (weight, bias) rescaled and recentred so that its outputs on `z`
    /// [batch, frames, dim] have mean 0 and standard deviation `target_std` per dimension, which
    /// spreads them over the whole grid. A fresh projection on a trained encoder's latents
    /// otherwise sends almost every frame to the grid's centre.
    pub fn calibrated_projections(&self, z: &Tensor, target_std: f64) -> Result<Vec<(Tensor, Tensor)>> {
        let (b, f, d) = z.dims3()?;
        let mut residual = z.reshape((b * f, d))?.detach();
        let (half, offset, shift) = self.bounds(z.device())?;
        let scale: Vec<f32> = self.grid.iter().map(|&l| 1.0 / (l / 2) as f32).collect();
        let scale = Tensor::from_vec(scale, (1, self.grid.len()), z.device())?;
        let mut out = Vec::with_capacity(self.levels());
        for level in &self.levels {
            let Linear::Float(down) = &level.down else { candle_core::bail!("quantised projection") };
            let w = down.weight().clone();
            let x = residual.matmul(&w.t()?)?;
            let mean = x.mean_keepdim(0)?;
            let std = (x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-12)?.sqrt()?;
            let gain = (std.recip()? * target_std)?.squeeze(0)?;
            let w = w.broadcast_mul(&gain.unsqueeze(1)?)?;
            let bias = (mean.squeeze(0)? * &gain)?.neg()?;
            let bounded = residual.matmul(&w.t()?)?.broadcast_add(&bias)?.broadcast_add(&shift)?.tanh()?.broadcast_mul(&half)?.broadcast_sub(&offset)?;
            let q = bounded.round()?;
            residual = (residual - level.up.forward(&q.broadcast_mul(&scale)?)?)?;
            out.push((w, bias));
        }
        Ok(out)
    }

    /// Training pass: straight-through quantised latents and the codes.
    pub fn forward_train(&self, z: &Tensor) -> Result<FsqTrainOutput> {
        let (quantized, codes) = self.pass(z, true)?;
        Ok(FsqTrainOutput { quantized, codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn grid_points_and_indices_round_trip_and_cover_every_code() {
        let cfg = CodecConfig { fsq_levels: vec![8, 8, 8], ..CodecConfig::tiny() };
        let vm = VarMap::new();
        let q = ResidualFsq::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let (half, offset, shift) = q.bounds(&Device::Cpu).unwrap();
        // Sweep each dimension over a wide input range: rounding must hit exactly 8 values.
        let x: Vec<f32> = (0..3000).flat_map(|i| [i as f32 / 100.0 - 15.0; 3]).collect();
        let x = Tensor::from_vec(x, (3000, 3), &Device::Cpu).unwrap();
        let r = x.broadcast_add(&shift).unwrap().tanh().unwrap().broadcast_mul(&half).unwrap().broadcast_sub(&offset).unwrap().round().unwrap();
        let mut values: Vec<i32> = r.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| *v as i32).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values, (-4..=3).collect::<Vec<_>>());
        // Every index maps to a grid point and back.
        let all = Tensor::arange(0u32, 512, &Device::Cpu).unwrap();
        let points = q.from_index(&all).unwrap();
        let back = q.to_index(&(points * 4.0).unwrap()).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(back, (0..512).collect::<Vec<u32>>());
    }
}
