//! Decoder-only transformer blocks with ALiBi attention and a rolling key/value cache.
//!
//! ALiBi (a linear distance penalty per head) instead of learned or rotary positions: the
//! bias depends only on how far back a key is, so a rolling cache that forgets keys older than
//! the window keeps exactly the positions seen in training, for as long as the music plays,
//! with no position counter to overflow or lose precision after hours.

use crate::model::nn::{LayerNorm, Linear};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Bias for keys that may not be attended (future, outside the window, empty cache slots).
/// Finite, so softmax and its gradient never see inf - inf.
pub const MASKED: f32 = -1e9;

/// ALiBi slope of each head: 2^(-8 (h + 1) / heads).
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    (0..heads).map(|h| 2f32.powf(-8.0 * (h + 1) as f32 / heads as f32)).collect()
}

/// Training bias [heads, len, len]: causal, banded to `window` keys, ALiBi distance penalty.
pub fn training_bias(heads: usize, len: usize, window: usize, device: &Device) -> Result<Tensor> {
    let slopes = alibi_slopes(heads);
    let mut bias = vec![MASKED; heads * len * len];
    for (h, m) in slopes.iter().enumerate() {
        for i in 0..len {
            for j in i.saturating_sub(window - 1)..=i {
                bias[(h * len + i) * len + j] = -m * (i - j) as f32;
            }
        }
    }
    Tensor::from_vec(bias, (heads, len, len), device)
}

/// A cached step's bias [heads * window]: each head's ALiBi penalty for the distance from
/// `step` back to the step each cache slot holds; empty slots masked.
pub fn rolling_bias(slopes: &[f32], slot_steps: &[Option<u64>], step: u64, out: &mut [f32]) {
    let w = slot_steps.len();
    for (hi, m) in slopes.iter().enumerate() {
        for (j, s) in slot_steps.iter().enumerate() {
            out[hi * w + j] = match s {
                Some(s) => -m * (step - s) as f32,
                None => MASKED,
            };
        }
    }
}

pub struct Attention {
    pub(super) qkv: Linear,
    pub(super) out: Linear,
    heads: usize,
    head_dim: usize,
}

/// One layer's cached keys and values: [batch, heads, window, head_dim], written in place
/// (slot = step mod window), so a step costs the same forever.
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
}

impl LayerCache {
    pub fn device(&self) -> Device {
        self.k.device().clone()
    }
}

impl Attention {
    pub fn new(d: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { qkv: Linear::new(d, 3 * d, vb.pp("qkv"))?, out: Linear::new(d, d, vb.pp("out"))?, heads, head_dim: d / heads })
    }

    /// [batch, len, d] → q, k, v as [batch, heads, len, head_dim].
    fn project(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, l, _) = x.dims3()?;
        let qkv = self.qkv.forward(x)?.reshape((b, l, 3, self.heads, self.head_dim))?;
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        Ok((part(0)?, part(1)?, part(2)?))
    }

    fn merge(&self, y: Tensor) -> Result<Tensor> {
        let (b, _, l, _) = y.dims4()?;
        self.out.forward(&y.transpose(1, 2)?.reshape((b, l, self.heads * self.head_dim))?)
    }

    /// Whole sequences (training, and the reference for the cache test). `bias` [heads, len, len].
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.project(x)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias.unsqueeze(0)?)?;
        // The unfused softmax: candle's fused one builds no backward graph.
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        self.merge(p.matmul(&v)?)
    }

    pub fn new_cache(&self, batch: usize, window: usize, device: &Device) -> Result<LayerCache> {
        let shape = (batch, self.heads, window, self.head_dim);
        Ok(LayerCache { k: Tensor::zeros(shape, DType::F32, device)?, v: Tensor::zeros(shape, DType::F32, device)? })
    }

    /// One step [batch, 1, d]: store this step's key and value in `slot`, attend over the
    /// cache with `bias` [1, heads, 1, window] (distance penalties, empty slots masked).
    pub fn step(&self, x: &Tensor, cache: &mut LayerCache, slot: usize, bias: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.project(x)?;
        cache.k.slice_set(&k, 2, slot)?;
        cache.v.slice_set(&v, 2, slot)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&cache.k.t()?)? * scale)?.broadcast_add(bias)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        self.merge(p.matmul(&cache.v)?)
    }

    fn linears(&mut self) -> [&mut Linear; 2] {
        [&mut self.qkv, &mut self.out]
    }
}

/// Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)).
pub struct Block {
    pub(super) ln1: LayerNorm,
    pub attn: Attention,
    pub(super) ln2: LayerNorm,
    pub(super) up: Linear,
    pub(super) down: Linear,
}

impl Block {
    pub fn new(d: usize, heads: usize, mlp: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln1: LayerNorm::new(d, vb.pp("ln1"))?,
            attn: Attention::new(d, heads, vb.pp("attn"))?,
            ln2: LayerNorm::new(d, vb.pp("ln2"))?,
            up: Linear::new(d, mlp, vb.pp("up"))?,
            down: Linear::new(mlp, d, vb.pp("down"))?,
        })
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        self.down.forward(&self.up.forward(&self.ln2.forward(x)?)?.gelu()?)
    }

    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, bias)?)?;
        &x + self.mlp(&x)?
    }

    pub fn step(&self, x: &Tensor, cache: &mut LayerCache, slot: usize, bias: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.step(&self.ln1.forward(x)?, cache, slot, bias)?)?;
        &x + self.mlp(&x)?
    }

    pub fn linears(&mut self) -> Vec<&mut Linear> {
        let [qkv, out] = self.attn.linears();
        vec![qkv, out, &mut self.up, &mut self.down]
    }
}
