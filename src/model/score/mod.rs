//! The score prior: a small decoder-only transformer over score tokens (`tokens`) that writes
//! tunes bar by bar, conditioned at every position on the style blend, the mode, the meter and
//! the bar's place in the phrase. The same module trains (`cargo xtask train score`) and writes
//! (`writer::ScoreWriter`, `cantor compose`).
//!
//! The transformer blocks are the codes prior's (`prior::transformer`: pre-norm, ALiBi, a
//! rolling key/value cache), so a writer runs for as long as the music plays at a constant
//! cost per token, and a model loaded for inference steps through the same hand-written CPU
//! path (`prior::cpu_step`) as the codes prior: candle's ops cost about 0.3 ms a token at this
//! size, mostly in dispatch.

pub mod accompaniment;
pub mod form;
pub mod tokens;
pub mod writer;

use crate::model::nn::{LayerNorm, Linear};
use crate::model::prior::cpu_step::{CpuStep, CpuStepState, StackParts};
use crate::model::prior::transformer::{self, Block, LayerCache};
use crate::model::vocab::STYLES;
use crate::model::weights::{self, WeightsError};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::{Deserialize, Serialize};
use tokens::{METERS, VOCAB};

/// Model files say what they hold: a score prior file is refused where a codes prior is expected.
pub const KIND: &str = "cantor-score-prior";

/// Bars in a phrase-position cycle: two 8-bar strains (A and B) of a dance tune, or two
/// chorale phrases pairs; the position is the bar's index from the first full bar, mod this.
pub const PHRASE_BARS: usize = 16;
/// Default classifier-free guidance of the score prior (`cantor compose --guidance`): a little
/// above the conditional model alone, to keep style, mode and meter without flattening the tune.
pub const DEFAULT_GUIDANCE: f32 = 1.5;

/// The phrase-position slot of a pickup bar (before the first full bar).
pub const PICKUP_SLOT: usize = PHRASE_BARS;

const STYLE_DIMS: usize = STYLES.len();
const MODE_DIMS: usize = 2;
const METER_DIMS: usize = METERS.len();
const PHRASE_DIMS: usize = PHRASE_BARS + 1;
/// Conditioning values per position: style weights, mode, meter, phrase slot (one-hot each).
pub const COND_DIM: usize = STYLE_DIMS + MODE_DIMS + METER_DIMS + PHRASE_DIMS;

/// What a piece is asked to be. `None` leaves a condition to the model (as training's
/// conditioning dropout taught it; classifier-free guidance's unconditional row has all three
/// `None`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreCond {
    /// Style blend weights (not normalised).
    pub styles: Option<[f32; STYLES.len()]>,
    /// 0 major, 1 minor.
    pub mode: Option<u8>,
    /// Index into `tokens::METERS`.
    pub meter: Option<usize>,
}

impl ScoreCond {
    /// The conditioning vector of a token in phrase slot `slot` (0..PHRASE_BARS, or PICKUP_SLOT).
    pub fn vector(&self, slot: usize) -> [f32; COND_DIM] {
        let mut v = [0f32; COND_DIM];
        if let Some(w) = self.styles {
            let sum: f32 = w.iter().filter(|x| x.is_finite() && **x > 0.0).sum();
            if sum > 0.0 {
                for (i, x) in w.iter().enumerate() {
                    v[i] = if x.is_finite() && *x > 0.0 { x / sum } else { 0.0 };
                }
            }
        }
        if let Some(m) = self.mode.filter(|m| (*m as usize) < MODE_DIMS) {
            v[STYLE_DIMS + m as usize] = 1.0;
        }
        if let Some(m) = self.meter.filter(|m| *m < METER_DIMS) {
            v[STYLE_DIMS + MODE_DIMS + m] = 1.0;
        }
        v[STYLE_DIMS + MODE_DIMS + METER_DIMS + slot.min(PICKUP_SLOT)] = 1.0;
        v
    }

    /// The same request with style, mode and meter left to the model (guidance's other row).
    pub fn unconditional() -> Self {
        Self::default()
    }
}

/// The phrase slot of bar `index` when the first full bar is `first_full`.
pub fn phrase_slot(index: usize, first_full: usize) -> usize {
    if index < first_full { PICKUP_SLOT } else { (index - first_full) % PHRASE_BARS }
}

/// The score prior's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfig {
    /// Token vocabulary (`tokens::VOCAB`); a file with another is refused.
    pub vocab: usize,
    /// Width, depth, heads and MLP width. 128 x 4 layers is about 1 M parameters, sized to what
    /// two cores train in an hour: 2.9 s a step of 24 x 256 tokens, 2,100 tokens a second
    /// (192 x 4 with a 512 window took 7.5 s a step of 16 x 512, 1,100 tokens a second).
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_mlp: usize,
    /// Tokens attended: 256 is about 8 bars of a reel (3 tokens a note, 8 notes a bar): the
    /// strain being answered is in view.
    pub window: usize,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self { vocab: VOCAB, d_model: 128, n_layers: 4, n_heads: 4, d_mlp: 512, window: 256 }
    }
}

impl ScoreConfig {
    /// A tiny model for tests.
    pub fn tiny() -> Self {
        Self { vocab: VOCAB, d_model: 32, n_layers: 2, n_heads: 2, d_mlp: 64, window: 64 }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.vocab != VOCAB {
            return Err(format!("the model has {} tokens; this Cantor's score tokens are {VOCAB}", self.vocab));
        }
        if self.n_heads == 0 || self.d_model % self.n_heads != 0 || self.n_layers == 0 || self.window < 2 || self.d_mlp == 0 {
            return Err("d_model must be a positive multiple of n_heads, with layers, an MLP and a window of at least 2".into());
        }
        Ok(())
    }
}

/// The model.
pub struct ScorePrior {
    pub cfg: ScoreConfig,
    embed: Embedding,
    cond: Linear,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
    /// The same weights laid out for one-step CPU inference, made when a model is loaded for
    /// inference on the CPU; `None` while training (the weights change every step).
    fast: Option<CpuStep>,
}

/// One stream (a writer holds two: classifier-free guidance's conditional and unconditional
/// rows): its key/value cache, step count and last logits.
pub struct ScoreState(StateKind);

enum StateKind {
    Fast(CpuStepState),
    Tensors(TensorState),
}

/// Candle's stream state: per-layer caches, which step each slot holds, the step count.
struct TensorState {
    caches: Vec<LayerCache>,
    slot_steps: Vec<Option<u64>>,
    step: u64,
    slopes: Vec<f32>,
    bias: Vec<f32>,
    logits: Vec<f32>,
}

impl ScoreState {
    /// The next token's logits after the last token read (empty before the first).
    pub fn logits(&self) -> &[f32] {
        match &self.0 {
            StateKind::Fast(f) => &f.logits,
            StateKind::Tensors(t) => &t.logits,
        }
    }
}

impl ScorePrior {
    pub fn new(cfg: &ScoreConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.d_model;
        let w = vb.pp("embed").get_with_hints((cfg.vocab, d), "weight", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?;
        Ok(Self {
            cfg: cfg.clone(),
            embed: Embedding::new(w, d),
            cond: Linear::new(COND_DIM, d, vb.pp("cond"))?,
            blocks: (0..cfg.n_layers).map(|i| Block::new(d, cfg.n_heads, cfg.d_mlp, vb.pp(format!("blocks.{i}")))).collect::<Result<Vec<_>>>()?,
            norm: LayerNorm::new(d, vb.pp("norm"))?,
            head: Linear::new(d, cfg.vocab, vb.pp("head"))?,
            fast: None,
        })
    }

    /// Step through the hand-written CPU path or through candle's tensors. Loading for inference
    /// turns it on; states made before a change are refused.
    pub fn set_fast_path(&mut self, on: bool) -> Result<()> {
        self.fast = match on {
            true => Some(CpuStep::new(StackParts {
                embeds: std::slice::from_ref(&self.embed),
                cond: &self.cond,
                blocks: &self.blocks,
                norm: &self.norm,
                head: &self.head,
                n_heads: self.cfg.n_heads,
                window: self.cfg.window,
            })?),
            false => None,
        };
        Ok(())
    }

    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    fn fast_path(&self) -> Result<&CpuStep> {
        self.fast.as_ref().ok_or_else(|| candle_core::Error::msg("a fast-path score state used after the fast path was turned off"))
    }

    fn input(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        self.embed.forward(tokens)? + self.cond.forward(cond)?
    }

    /// Training: tokens [batch, len] (u32), conditioning [batch, len, COND_DIM] → logits
    /// [batch, len, vocab], each position predicting the next token.
    pub fn forward(&self, tokens: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (_, len) = tokens.dims2()?;
        let bias = transformer::training_bias(self.cfg.n_heads, len, self.cfg.window, tokens.device())?;
        let mut x = self.input(tokens, cond)?;
        for b in &self.blocks {
            x = b.forward(&x, &bias)?;
        }
        self.head.forward(&self.norm.forward(&x)?)
    }

    /// A fresh stream: on the fast path when the model has one.
    pub fn new_state(&self, device: &Device) -> Result<ScoreState> {
        if let Some(f) = self.fast.as_ref().filter(|_| device.is_cpu()) {
            return Ok(ScoreState(StateKind::Fast(f.new_state())));
        }
        Ok(ScoreState(StateKind::Tensors(TensorState {
            caches: self.blocks.iter().map(|b| b.attn.new_cache(1, self.cfg.window, device)).collect::<Result<Vec<_>>>()?,
            slot_steps: vec![None; self.cfg.window],
            step: 0,
            slopes: transformer::alibi_slopes(self.cfg.n_heads),
            bias: vec![0.0; self.cfg.n_heads * self.cfg.window],
            logits: Vec::new(),
        })))
    }

    /// Read one token with its conditioning; the next token's logits land in the state.
    pub fn step(&self, state: &mut ScoreState, token: u32, cond: &[f32; COND_DIM]) -> Result<()> {
        let state = match &mut state.0 {
            StateKind::Fast(fs) => return self.fast_path()?.step(&mut [fs], &[&[token]], &[cond]),
            StateKind::Tensors(t) => t,
        };
        let (w, h) = (self.cfg.window, self.cfg.n_heads);
        let device = state.caches.first().map(|c| c.device()).unwrap_or(Device::Cpu);
        let slot = (state.step % w as u64) as usize;
        state.slot_steps[slot] = Some(state.step);
        transformer::rolling_bias(&state.slopes, &state.slot_steps, state.step, &mut state.bias);
        let bias = Tensor::from_slice(&state.bias, (1, h, 1, w), &device)?;
        let tokens = Tensor::from_slice(&[token], (1, 1), &device)?;
        let cond = Tensor::from_slice(cond.as_slice(), (1, 1, COND_DIM), &device)?;
        let mut x = self.input(&tokens, &cond)?;
        for (block, cache) in self.blocks.iter().zip(state.caches.iter_mut()) {
            x = block.step(&x, cache, slot, &bias)?;
        }
        state.step += 1;
        state.logits = self.head.forward(&self.norm.forward(&x)?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(())
    }

    /// Read the same token into two streams (guidance's rows), each with its conditioning. On
    /// the fast path both rows share one pass over the weights.
    pub fn step_pair(&self, a: &mut ScoreState, b: &mut ScoreState, token: u32, conds: [&[f32; COND_DIM]; 2]) -> Result<()> {
        if let (StateKind::Fast(fa), StateKind::Fast(fb)) = (&mut a.0, &mut b.0) {
            return self.fast_path()?.step(&mut [fa, fb], &[&[token], &[token]], &[conds[0], conds[1]]);
        }
        self.step(a, token, conds[0])?;
        self.step(b, token, conds[1])
    }

    /// Quantise the transformer's and the head's linear weights (embeddings and norms stay f32).
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

    /// Which tensors a quantised file stores as GGML blocks.
    pub fn is_quantizable(name: &str) -> bool {
        (name.starts_with("blocks.") || name.starts_with("head.")) && name.ends_with(".weight") && !name.contains(".ln")
    }

    /// A model file (f32, f16 or q8_0), checked: kind, config, every tensor's name and shape.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Self, WeightsError> {
        let raw = weights::parse::<ScoreConfig>(bytes, KIND, device)?;
        raw.config.validate().map_err(WeightsError::BadConfig)?;
        let mut model = weights::build_checked(&raw.config, raw.tensors, device, |cfg, vb| ScorePrior::new(cfg, vb))?;
        if let Some(q) = raw.quantized {
            model.quantize(q)?;
        }
        if device.is_cpu() {
            model.set_fast_path(true)?;
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;
    use rand::{Rng, SeedableRng};

    /// Replace a model's random initial weights with seeded ones of the same mean and spread
    /// (candle's CPU initialisers cannot be seeded): a comparison between two paths then sees
    /// the same numbers in every run, not a tolerance met most of the time.
    fn reseed(vm: &VarMap, seed: u64) {
        let data = vm.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for name in names {
            let var = &data[name];
            let old = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mean = old.iter().sum::<f32>() / old.len() as f32;
            let spread = (old.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / old.len() as f32).sqrt();
            if spread == 0.0 {
                continue;
            }
            let new: Vec<f32> = (0..old.len()).map(|_| mean + spread * (rng.random::<f32>() * 2.0 - 1.0) * 3f32.sqrt()).collect();
            var.set(&Tensor::from_vec(new, var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }

    #[test]
    fn the_streaming_step_gives_the_training_forward_logits() {
        let device = Device::Cpu;
        let vm = VarMap::new();
        let cfg = ScoreConfig::tiny();
        let model = ScorePrior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device)).unwrap();
        // Longer than the window, so the rolling cache is exercised.
        let len = cfg.window + 20;
        let ids: Vec<u32> = (0..len as u32).map(|i| (i * 37 + 5) % VOCAB as u32).collect();
        let cond = ScoreCond { styles: Some([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]), mode: Some(1), meter: Some(3) };
        let conds: Vec<[f32; COND_DIM]> = (0..len).map(|i| cond.vector(i / 10 % PHRASE_BARS)).collect();
        let tokens = Tensor::from_slice(&ids, (1, len), &device).unwrap();
        let flat: Vec<f32> = conds.iter().flatten().copied().collect();
        let c = Tensor::from_slice(&flat, (1, len, COND_DIM), &device).unwrap();
        let full = model.forward(&tokens, &c).unwrap().squeeze(0).unwrap();
        let mut state = model.new_state(&device).unwrap();
        for i in 0..len {
            model.step(&mut state, ids[i], &conds[i]).unwrap();
            let step = state.logits();
            let want = full.get(i).unwrap().to_vec1::<f32>().unwrap();
            let diff = step.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "position {i}: logits differ by {diff}");
        }
    }

    /// The hand-written CPU step (what a loaded model runs) gives candle's logits, for f32 and
    /// q8_0 files, within and past the window, one row alone and two rows in one pass.
    #[test]
    fn the_fast_path_gives_the_tensor_path_logits() {
        let device = Device::Cpu;
        let vm = VarMap::new();
        let cfg = ScoreConfig::tiny();
        ScorePrior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device)).unwrap();
        reseed(&vm, 1);
        let tensors = weights::var_tensors(&vm);
        let len = cfg.window * 5 / 2;
        let ids: Vec<u32> = (0..len as u32).map(|i| (i * 37 + 5) % VOCAB as u32).collect();
        let cond = ScoreCond { styles: Some([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), mode: Some(0), meter: Some(2) };
        // The fast path keeps its key/value cache in f16 (relative rounding about 5e-4).
        for (quant, tolerance) in [(None, 1e-3f32), (Some(GgmlDType::Q8_0), 2e-2)] {
            let bytes = weights::to_bytes_quantized(KIND, &cfg, &tensors, Some(DType::F32), quant.map(|q| (&ScorePrior::is_quantizable as &dyn Fn(&str) -> bool, q))).unwrap();
            let fast = ScorePrior::from_bytes(&bytes, &device).unwrap();
            assert!(fast.has_fast_path());
            let mut slow = ScorePrior::from_bytes(&bytes, &device).unwrap();
            slow.set_fast_path(false).unwrap();
            let new = |m: &ScorePrior| (m.new_state(&device).unwrap(), m.new_state(&device).unwrap());
            let ((mut fa, mut fb), (mut sa, mut sb), (mut single, _)) = (new(&fast), new(&slow), new(&fast));
            let (mut worst, mut scale) = (0f32, 0f32);
            for (i, &t) in ids.iter().enumerate() {
                let (c, u) = (cond.vector(i / 10 % PHRASE_BARS), ScoreCond::unconditional().vector(i / 10 % PHRASE_BARS));
                fast.step_pair(&mut fa, &mut fb, t, [&c, &u]).unwrap();
                slow.step_pair(&mut sa, &mut sb, t, [&c, &u]).unwrap();
                fast.step(&mut single, t, &c).unwrap();
                assert_eq!(single.logits(), fa.logits(), "position {i}: one row alone and the same row in a pair");
                for (a, b) in fa.logits().iter().zip(sa.logits()).chain(fb.logits().iter().zip(sb.logits())) {
                    worst = worst.max((a - b).abs());
                    scale = scale.max(b.abs());
                }
            }
            assert!(scale > 0.01, "logits too small to compare ({scale})");
            assert!(worst <= tolerance * scale, "{quant:?}: fast and tensor logits differ by {worst} (largest logit {scale})");
        }
    }

    #[test]
    fn conditions_are_one_hot_and_blends_normalised() {
        let v = ScoreCond { styles: Some([0.0, 2.0, 0.0, 2.0, 0.0, 0.0]), mode: Some(0), meter: Some(5) }.vector(PICKUP_SLOT);
        assert_eq!(v.iter().sum::<f32>(), 4.0);
        assert_eq!((v[1], v[3], v[6], v[STYLE_DIMS + MODE_DIMS + 5], v[COND_DIM - 1]), (0.5, 0.5, 1.0, 1.0, 1.0));
        assert_eq!(ScoreCond::unconditional().vector(3).iter().sum::<f32>(), 1.0);
        assert_eq!(phrase_slot(0, 1), PICKUP_SLOT);
        assert_eq!(phrase_slot(17, 1), 0);
    }
}
