//! Cantor's transformer prior: writes the codec's codes one frame at a time, steered by the
//! knobs, forever, at constant cost per frame.
//!
//! - Input of a step: the sum of one embedding per codebook level (the previous step's codes,
//!   in the delay pattern of `pattern`) plus a projection of the frame's conditioning features
//!   (`conditioning`: style blend, instrument, key, tempo, and the beat / bar / phrase grid).
//! - A decoder-only transformer with ALiBi attention over a window of frames (`transformer`);
//!   a rolling key/value cache makes each step cost the same, past the window, forever.
//! - One linear head gives the logits of every level at once.
//! - `stream::PriorStream` runs it: two rows (conditional and unconditional) for classifier-free
//!   guidance, sampling with a seeded RNG, frames reassembled from the delay pattern.

pub mod conditioning;
pub mod cpu_step;
pub mod notes;
pub mod pattern;
pub mod sampling;
pub mod stream;
pub mod transformer;

use crate::model::nn::{LayerNorm, Linear};
use crate::model::weights::{self, WeightsError};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use conditioning::COND_DIM;
use serde::{Deserialize, Serialize};
use transformer::{Block, LayerCache};

/// Prior hyper-parameters, stored in every prior file. Defaults are the shipped prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorConfig {
    /// Codebook levels per frame and codes per level: must equal the codec's.
    pub n_levels: usize,
    pub codebook_size: usize,
    /// Frames each level lags behind the first (see `pattern`).
    pub delays: Vec<usize>,
    /// Transformer width, depth, heads and MLP width. 4 layers of 256 measured ~0.9 ms per step
    /// on one core here, the budget for 10x real time at 75 frames per second.
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub mlp: usize,
    /// Attention window in frames (also the training sequence length).
    pub window: usize,
    /// Code frames per second (the codec's frame rate), for the musical grid.
    pub frame_rate: f64,
    /// Identity of the codec whose codes this prior models (see `codec_codes_id`); a prior and
    /// a codec that disagree are refused at load time.
    pub codec_id: String,
    /// Whether each frame is also conditioned on the notes it plays (`notes::NOTE_DIM` features
    /// after the knob and grid features): a performer. Files without the field are priors that
    /// compose codes from the knobs alone.
    pub notes: bool,
}

impl Default for PriorConfig {
    fn default() -> Self {
        Self {
            n_levels: 8,
            codebook_size: 512,
            delays: vec![0, 1, 1, 1, 1, 1, 1, 1],
            d_model: 256,
            n_layers: 4,
            n_heads: 4,
            mlp: 768,
            window: 384,
            frame_rate: 75.0,
            codec_id: String::new(),
            notes: false,
        }
    }
}

impl PriorConfig {
    /// A small configuration for unit tests.
    pub fn tiny() -> Self {
        Self { n_levels: 2, codebook_size: 16, delays: vec![0, 1], d_model: 32, n_layers: 2, n_heads: 2, mlp: 64, window: 12, ..Self::default() }
    }

    /// Width of one frame's conditioning: the knob and grid features, then the note features
    /// when the prior is a performer.
    pub fn cond_dim(&self) -> usize {
        COND_DIM + if self.notes { notes::NOTE_DIM } else { 0 }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_levels == 0 || self.codebook_size < 2 || self.delays.len() != self.n_levels {
            return Err(format!("need one delay per level ({} levels, {} delays) and at least 2 codes", self.n_levels, self.delays.len()));
        }
        if self.n_heads == 0 || self.d_model % self.n_heads != 0 || self.n_layers == 0 || self.window == 0 {
            return Err("d_model must be a positive multiple of n_heads, with at least one layer and a window".into());
        }
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(format!("bad frame rate {}", self.frame_rate));
        }
        Ok(())
    }
}

/// The identity of a codec's code space: a hash of its configuration and codebooks (a
/// fingerprint: the encoder trains together with them). Retraining only the decoder keeps it;
/// training that moves the codes changes it.
pub fn codec_codes_id(codec: &crate::model::codec::Codec) -> Result<String> {
    // FNV-1a over the codebook bits: stable across runs and platforms (unlike DefaultHasher's seed).
    let mut h: u64 = 0xcbf29ce484222325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    };
    let cfg = &codec.cfg;
    feed(format!("{}:{:?}:{}:{}:{}", cfg.sample_rate, cfg.strides, cfg.latent_dim, cfg.n_codebooks, cfg.codebook_size).as_bytes());
    for level in 0..codec.quantizer.levels() {
        // Rounded to f16 so the id survives storing the weights as f16.
        for x in codec.quantizer.codebook(level).flatten_all()?.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec1::<f32>()? {
            feed(&x.to_le_bytes());
        }
    }
    Ok(format!("{h:016x}"))
}

/// The model kind written in prior files.
pub const KIND: &str = "cantor-prior";

/// Weight names: `embed.level{k}.weight`, `cond.*`, `blocks.{i}.*`, `norm.*`, `head.*`.
pub struct Prior {
    pub cfg: PriorConfig,
    embeds: Vec<Embedding>,
    cond: Linear,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
    /// The same weights laid out for one-step CPU inference (`cpu_step`), made when a prior is
    /// loaded for inference; `None` while training (the weights change every step).
    fast: Option<cpu_step::CpuStep>,
}

/// Generation state of one stream: the hand-written CPU path's (`cpu_step`) or candle's tensors'.
pub struct PriorState(StateKind);

enum StateKind {
    /// One row on the CPU with the fast path on: its cache and buffers.
    Fast(cpu_step::CpuStepState),
    Tensors(TensorState),
}

/// Candle's generation state: per-layer caches, which step each slot holds, the step count.
struct TensorState {
    caches: Vec<LayerCache>,
    slot_steps: Vec<Option<u64>>,
    step: u64,
    batch: usize,
    /// ALiBi slope per head (fixed), and the per-step bias [heads, window] built from them.
    slopes: Vec<f32>,
    bias: Vec<f32>,
}

impl PriorState {
    /// Forget everything (a reset). Old cache contents stay in memory but are masked out.
    pub fn clear(&mut self) {
        match &mut self.0 {
            StateKind::Fast(f) => f.clear(),
            StateKind::Tensors(t) => {
                t.slot_steps.fill(None);
                t.step = 0;
            }
        }
    }
}

impl Prior {
    pub fn new(cfg: &PriorConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.d_model;
        let embeds = (0..cfg.n_levels)
            .map(|k| {
                let w = vb.pp(format!("embed.level{k}")).get_with_hints((cfg.codebook_size + 1, d), "weight", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?;
                Ok(Embedding::new(w, d))
            })
            .collect::<Result<Vec<_>>>()?;
        let blocks = (0..cfg.n_layers).map(|i| Block::new(d, cfg.n_heads, cfg.mlp, vb.pp(format!("blocks.{i}")))).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            embeds,
            cond: Linear::new(cfg.cond_dim(), d, vb.pp("cond"))?,
            blocks,
            norm: LayerNorm::new(d, vb.pp("norm"))?,
            head: Linear::new(d, cfg.n_levels * cfg.codebook_size, vb.pp("head"))?,
            fast: None,
        })
    }

    /// Run single-stream steps through the hand-written CPU path (`cpu_step`) or through candle's
    /// tensors. Loading for inference turns it on; states made before a change are refused.
    pub fn set_fast_path(&mut self, on: bool) -> Result<()> {
        self.fast = if on { Some(cpu_step::CpuStep::new(self.stack_parts())?) } else { None };
        Ok(())
    }

    /// The weights the hand-written step copies.
    fn stack_parts(&self) -> cpu_step::StackParts<'_> {
        cpu_step::StackParts {
            embeds: &self.embeds,
            cond: &self.cond,
            blocks: &self.blocks,
            norm: &self.norm,
            head: &self.head,
            n_heads: self.cfg.n_heads,
            window: self.cfg.window,
        }
    }

    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Step inputs: tokens [batch, len, levels] (u32, `codebook_size` = BOS), conditioning
    /// [batch, len, cond_dim] → [batch, len, d].
    fn embed(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let mut x = self.cond.forward(cond)?;
        for (k, e) in self.embeds.iter().enumerate() {
            x = (x + e.forward(&tokens.narrow(2, k, 1)?.squeeze(2)?)?)?;
        }
        Ok(x)
    }

    /// Whole sequences (training): logits [batch, len, levels, codebook_size]. Sequences longer
    /// than the window attend to the last `window` steps, exactly as the cached stream does.
    pub fn forward(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (b, l, _) = tokens.dims3()?;
        let bias = transformer::training_bias(self.cfg.n_heads, l, self.cfg.window, tokens.device())?;
        let mut x = self.embed(tokens, cond)?;
        for block in &self.blocks {
            x = block.forward(&x, &bias)?;
        }
        self.head.forward(&self.norm.forward(&x)?)?.reshape((b, l, self.cfg.n_levels, self.cfg.codebook_size))
    }

    /// A generation state of `batch` rows. One row on the CPU with the fast path on gets a fast
    /// state; anything else runs on candle's tensors.
    pub fn new_state(&self, batch: usize, device: &Device) -> Result<PriorState> {
        if let Some(f) = self.fast.as_ref().filter(|_| batch == 1 && device.is_cpu()) {
            return Ok(PriorState(StateKind::Fast(f.new_state())));
        }
        Ok(PriorState(StateKind::Tensors(TensorState {
            caches: self.blocks.iter().map(|b| b.attn.new_cache(batch, self.cfg.window, device)).collect::<Result<Vec<_>>>()?,
            slot_steps: vec![None; self.cfg.window],
            step: 0,
            batch,
            slopes: transformer::alibi_slopes(self.cfg.n_heads),
            bias: vec![0.0; self.cfg.n_heads * self.cfg.window],
        })))
    }

    /// One step for every row of the state: tokens [batch * levels], conditioning
    /// [batch * cond_dim] → logits [batch * levels * codebook_size] (row-major).
    pub fn step(&self, state: &mut PriorState, tokens: &[u32], cond: &[f32]) -> Result<Vec<f32>> {
        let state = match &mut state.0 {
            StateKind::Fast(fs) => {
                self.fast_path()?.step(&mut [fs], &[tokens], &[cond])?;
                return Ok(fs.logits.clone());
            }
            StateKind::Tensors(t) => t,
        };
        let (b, w, h) = (state.batch, self.cfg.window, self.cfg.n_heads);
        let cond_dim = self.cfg.cond_dim();
        if tokens.len() != b * self.cfg.n_levels || cond.len() != b * cond_dim {
            candle_core::bail!("prior step: {} tokens and {} conditioning values for a batch of {b}", tokens.len(), cond.len());
        }
        let device = state.caches.first().map(|c| c.device()).unwrap_or(Device::Cpu);
        let slot = (state.step % w as u64) as usize;
        state.slot_steps[slot] = Some(state.step);
        transformer::rolling_bias(&state.slopes, &state.slot_steps, state.step, &mut state.bias);
        let bias = Tensor::from_slice(&state.bias, (1, h, 1, w), &device)?;
        let tokens = Tensor::from_slice(tokens, (b, 1, self.cfg.n_levels), &device)?;
        let cond = Tensor::from_slice(cond, (b, 1, cond_dim), &device)?;
        let mut x = self.embed(&tokens, &cond)?;
        for (block, cache) in self.blocks.iter().zip(state.caches.iter_mut()) {
            x = block.step(&x, cache, slot, &bias)?;
        }
        state.step += 1;
        self.head.forward(&self.norm.forward(&x)?)?.flatten_all()?.to_vec1::<f32>()
    }

    /// One step of two single-row states (classifier-free guidance's conditional and
    /// unconditional streams), each with its own tokens and conditioning. On the fast path both
    /// rows share one pass over the weights.
    pub fn step_pair(&self, a: &mut PriorState, b: &mut PriorState, rows: [(&[u32], &[f32]); 2]) -> Result<(Vec<f32>, Vec<f32>)> {
        if let (StateKind::Fast(fa), StateKind::Fast(fb)) = (&mut a.0, &mut b.0) {
            self.fast_path()?.step(&mut [fa, fb], &[rows[0].0, rows[1].0], &[rows[0].1, rows[1].1])?;
            return Ok((fa.logits.clone(), fb.logits.clone()));
        }
        Ok((self.step(a, rows[0].0, rows[0].1)?, self.step(b, rows[1].0, rows[1].1)?))
    }

    fn fast_path(&self) -> Result<&cpu_step::CpuStep> {
        self.fast.as_ref().ok_or_else(|| candle_core::Error::msg("a fast-path state used after the prior's fast path was turned off"))
    }

    /// Quantise the transformer's and the head's linear weights. The embeddings, norms and the
    /// conditioning projection (49 or 394 inputs, not a multiple of the 32-value blocks) stay f32.
    pub fn quantize(&mut self, dtype: GgmlDType) -> Result<()> {
        self.head.quantize(dtype)?;
        for b in &mut self.blocks {
            for l in b.linears() {
                l.quantize(dtype)?;
            }
        }
        // The fast path holds a copy of the weights: copy the quantised ones.
        if self.fast.is_some() {
            self.set_fast_path(true)?;
        }
        Ok(())
    }

    /// Which tensors a quantised prior file stores as GGML blocks.
    pub fn is_quantizable(name: &str) -> bool {
        name.ends_with(".weight") && (name.starts_with("blocks.") && !name.contains(".ln") || name.starts_with("head."))
    }

    /// Load a prior from a model file's bytes, checking every tensor (see `model::weights`).
    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Self, WeightsError> {
        let raw = weights::parse::<PriorConfig>(bytes, KIND, device)?;
        raw.config.validate().map_err(WeightsError::BadConfig)?;
        let mut prior = weights::build_checked(&raw.config, raw.tensors, device, |cfg, vb| Prior::new(cfg, vb))?;
        if let Some(q) = raw.quantized {
            prior.quantize(q)?;
        }
        if device.is_cpu() {
            prior.set_fast_path(true)?;
        }
        Ok(prior)
    }
}

#[cfg(test)]
mod tests;
