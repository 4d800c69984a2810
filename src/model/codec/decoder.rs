//! Vocos-style decoder: causal ConvNeXt blocks at the frame rate, a head predicting STFT
//! log-magnitude and phase, and an inverse STFT by matrix product and overlap-add.
//!
//! Everything is causal in frames, so `DecoderStream` (chunks of any size, carrying each
//! block's last `kernel - 1` inputs and the overlap-add tail) gives exactly the whole decode.

use super::{CodecConfig, PhaseMode, ResidualVq};
use crate::model::nn::{CausalDepthwise, LayerNorm, Linear};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use std::sync::OnceLock;

pub(super) struct ConvNeXtBlock {
    pub(super) dw: CausalDepthwise,
    pub(super) norm: LayerNorm,
    pub(super) up: Linear,
    pub(super) down: Linear,
    /// Layer scale: starts small so the deep stack starts near identity.
    pub(super) gamma: Tensor,
}

impl ConvNeXtBlock {
    fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.decoder_dim;
        Ok(Self {
            dw: CausalDepthwise::new(d, cfg.decoder_kernel, vb.pp("dw"))?,
            norm: LayerNorm::new(d, vb.pp("norm"))?,
            up: Linear::new(d, cfg.decoder_mlp, vb.pp("up"))?,
            down: Linear::new(cfg.decoder_mlp, d, vb.pp("down"))?,
            gamma: vb.get_with_hints(d, "gamma", candle_nn::Init::Const(0.1))?,
        })
    }

    /// `x_hist` is [batch, history + t, dim] (history = kernel - 1 frames); returns [batch, t, dim].
    fn forward_with_history(&self, x_hist: &Tensor) -> Result<Tensor> {
        let h = self.dw.kernel() - 1;
        let t = x_hist.dim(1)? - h;
        let x = x_hist.narrow(1, h, t)?;
        let y = self.dw.forward_with_history(x_hist)?;
        let y = self.down.forward(&self.up.forward(&self.norm.forward(&y)?)?.gelu()?)?;
        x + y.broadcast_mul(&self.gamma)?
    }
}

pub struct Decoder {
    pub(super) input: Linear,
    pub(super) blocks: Vec<ConvNeXtBlock>,
    pub(super) norm: LayerNorm,
    pub(super) head: Linear,
    /// [2 * bins, n_fft]: inverse real DFT times the synthesis window, made on first use: the
    /// hand-written CPU decoder (what the plugin runs) inverts with an FFT instead, and making
    /// the 1.6 M entries took about a quarter of loading the models.
    istft_basis: OnceLock<Tensor>,
    device: Device,
    pub(super) hop: usize,
    pub(super) n_fft: usize,
    pub(super) bins: usize,
    pub(super) kernel: usize,
    pub(super) phase: PhaseMode,
}

/// Outputs of the head per frame: log-magnitude and phase per bin, and with integrated phase each
/// bin's frequency deviation.
pub(super) fn head_outputs(phase: PhaseMode, bins: usize) -> usize {
    match phase {
        PhaseMode::Direct => 2 * bins,
        PhaseMode::Integrated => 3 * bins,
    }
}

/// `x` wrapped into [0, 2 pi) (the wrap carries no gradient: it only removes whole turns).
fn wrap_phase(x: &Tensor) -> Result<Tensor> {
    let tau = std::f64::consts::TAU;
    x - (x.detach().affine(1.0 / tau, 0.0)?.floor()? * tau)?
}

fn istft_basis(n_fft: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let mut basis = vec![0f32; 2 * bins * n_fft];
    let tau = 2.0 * std::f64::consts::PI;
    for k in 0..bins {
        // Inner bins appear twice in the full spectrum.
        let scale = if k == 0 || k == n_fft / 2 { 1.0 } else { 2.0 } / n_fft as f64;
        for n in 0..n_fft {
            let w = 0.5 - 0.5 * (tau * n as f64 / n_fft as f64).cos();
            let ph = tau * (k * n) as f64 / n_fft as f64;
            basis[k * n_fft + n] = (scale * w * ph.cos()) as f32;
            basis[(bins + k) * n_fft + n] = (-scale * w * ph.sin()) as f32;
        }
    }
    basis
}

impl Decoder {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let bins = cfg.n_fft / 2 + 1;
        let blocks = (0..cfg.decoder_layers)
            .map(|i| ConvNeXtBlock::new(cfg, vb.pp(format!("block{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input: Linear::new(cfg.latent_dim, cfg.decoder_dim, vb.pp("input"))?,
            blocks,
            norm: LayerNorm::new(cfg.decoder_dim, vb.pp("norm"))?,
            head: Linear::new(cfg.decoder_dim, head_outputs(cfg.decoder_phase, bins), vb.pp("head"))?,
            istft_basis: OnceLock::new(),
            device: vb.device().clone(),
            hop: cfg.hop(),
            n_fft: cfg.n_fft,
            bins,
            kernel: cfg.decoder_kernel,
            phase: cfg.decoder_phase,
        })
    }

    /// Quantise the linear layers' weights (the decoder's cost is almost all in them).
    pub fn quantize(&mut self, dtype: GgmlDType) -> Result<()> {
        self.input.quantize(dtype)?;
        for b in &mut self.blocks {
            b.up.quantize(dtype)?;
            b.down.quantize(dtype)?;
        }
        self.head.quantize(dtype)
    }

    pub fn linear_kind(&self) -> &'static str {
        match self.head {
            Linear::Float(_) => "f32",
            Linear::Quantized { .. } => "quantized",
        }
    }

    /// Latents [batch, t, latent] with per-block histories → the head's outputs [batch, t,
    /// head_outputs].
    fn head_outputs(&self, z: &Tensor, histories: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        let mut x = self.input.forward(z)?;
        let h = self.kernel - 1;
        let mut hist_out = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let x_hist = match &histories {
                Some(hs) => Tensor::cat(&[&hs[i], &x], 1)?,
                None => x.pad_with_zeros(1, h, 0)?,
            };
            if h > 0 {
                let n = x_hist.dim(1)?;
                hist_out.push(x_hist.narrow(1, n - h, h)?);
            }
            x = block.forward_with_history(&x_hist)?;
        }
        if let Some(hs) = histories {
            if h > 0 {
                *hs = hist_out;
            }
        }
        self.head.forward(&self.norm.forward(&x)?)
    }

    /// Each bin's magnitude from the head's outputs (log-magnitude clamped so exp cannot overflow).
    fn magnitudes(&self, spec: &Tensor) -> Result<Tensor> {
        spec.narrow(D::Minus1, 0, self.bins)?.clamp(-30.0, 8.0)?.exp()
    }

    /// Latents [batch, t, latent] with per-block histories (and, with integrated phase, each
    /// bin's phase after the last frame) → windowed frames [batch, t, n_fft], and with integrated
    /// phase the predicted frequency deviations [batch, t, bins].
    fn frames(&self, z: &Tensor, histories: Option<&mut Vec<Tensor>>, theta: Option<&mut Option<Tensor>>) -> Result<(Tensor, Option<Tensor>)> {
        let spec = self.head_outputs(z, histories)?;
        // Magnitude and phase, as in Vocos.
        let mag = self.magnitudes(&spec)?;
        let residual = spec.narrow(D::Minus1, self.bins, self.bins)?;
        let (phase, deviation) = match self.phase {
            PhaseMode::Direct => (residual, None),
            PhaseMode::Integrated => {
                let deviation = spec.narrow(D::Minus1, 2 * self.bins, self.bins)?;
                ((self.integrate_phase(&deviation, theta)? + residual)?, Some(deviation))
            }
        };
        let re = (&mag * phase.cos()?)?;
        let im = (&mag * phase.sin()?)?;
        Ok((Tensor::cat(&[re, im], D::Minus1)?.broadcast_matmul(self.istft()?)?, deviation))
    }

    /// The decoder's own magnitudes for latents [batch, t, latent] with the phases of `audio`
    /// [batch, t * hop] (the round trip's input, analysed on the decoder's STFT grid) instead of
    /// its own: how much of a round trip's loss lies in the magnitudes it predicts. A
    /// measurement (`eval codec --magnitudes`), not a way to decode.
    pub fn forward_with_phases_of(&self, z: &Tensor, audio: &Tensor) -> Result<Tensor> {
        let (b, t, _) = z.dims3()?;
        let (_, n) = audio.dims2()?;
        if n != t * self.hop {
            candle_core::bail!("{n} samples of audio for {t} frames of hop {}", self.hop);
        }
        let mag = self.magnitudes(&self.head_outputs(z, None)?)?;
        // The input on the same grid: frame f starts `delay` samples before sample f * hop, so
        // `delay` zeros on each side give exactly t frames.
        let delay = self.delay_samples();
        let stft = crate::model::spectral::Stft::new(self.n_fft, self.hop, &self.device)?;
        let input = stft.complex(&audio.pad_with_zeros(1, delay, delay)?)?.transpose(1, 2)?;
        let (re, im) = (input.narrow(D::Minus1, 0, self.bins)?, input.narrow(D::Minus1, self.bins, self.bins)?);
        let norm = ((re.sqr()? + im.sqr()?)?.sqrt()? + 1e-12)?;
        let unit = Tensor::cat(&[(re / &norm)?, (im / &norm)?], D::Minus1)?;
        let both = Tensor::cat(&[&mag, &mag], D::Minus1)?;
        let frames = (unit * both)?.broadcast_matmul(self.istft()?)?;
        let full = self.overlap_add(&frames)?;
        full.narrow(1, delay, t * self.hop)?.reshape((b, t * self.hop))
    }

    /// The inverse-STFT basis, made on first use.
    fn istft(&self) -> Result<&Tensor> {
        Ok(match self.istft_basis.get() {
            Some(basis) => basis,
            None => {
                let basis = Tensor::from_vec(istft_basis(self.n_fft), (2 * self.bins, self.n_fft), &self.device)?;
                self.istft_basis.get_or_init(|| basis)
            }
        })
    }

    /// Each bin's phase at each frame from its predicted frequency deviation [batch, t, bins]
    /// (in bins): the phase turns by 2 pi x hop x (bin + deviation) / n_fft from frame to frame,
    /// frame after frame (so chunked decoding gives the same bits), wrapped as it goes.
    fn integrate_phase(&self, deviation: &Tensor, theta: Option<&mut Option<Tensor>>) -> Result<Tensor> {
        let (b, t, bins) = deviation.dims3()?;
        let centre = Tensor::arange(0u32, bins as u32, deviation.device())?.to_dtype(DType::F32)?;
        let step = deviation.broadcast_add(&centre)?.affine(std::f64::consts::TAU * self.hop as f64 / self.n_fft as f64, 0.0)?;
        let mut now = match theta.as_ref().and_then(|s| s.as_ref()) {
            Some(last) => last.clone(),
            None => Tensor::zeros((b, 1, bins), deviation.dtype(), deviation.device())?,
        };
        let mut phases = Vec::with_capacity(t);
        for i in 0..t {
            now = wrap_phase(&(now + step.narrow(1, i, 1)?)?)?;
            phases.push(now.clone());
        }
        if let Some(state) = theta {
            *state = Some(now);
        }
        Tensor::cat(&phases, 1)
    }

    /// Overlap-add frames [batch, t, n_fft] into [batch, (t + r - 1) * hop] where r = n_fft / hop.
    fn overlap_add(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, t, _) = frames.dims3()?;
        let r = self.n_fft / self.hop;
        let parts = frames.reshape((b, t, r, self.hop))?;
        let mut out: Option<Tensor> = None;
        for k in 0..r {
            let p = parts.narrow(2, k, 1)?.squeeze(2)?.pad_with_zeros(1, k, r - 1 - k)?;
            out = Some(match out {
                None => p,
                Some(o) => (o + p)?,
            });
        }
        out.expect("r >= 1").reshape((b, (t + r - 1) * self.hop))
    }

    /// Samples of latency between a frame going in and its audio being complete (streaming).
    pub fn delay_samples(&self) -> usize {
        (self.n_fft - self.hop) / 2
    }

    /// Latents [batch, frames, latent] → audio [batch, frames * hop], aligned with the encoder's input.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_frequencies(z)?.0)
    }

    /// `forward`, and with integrated phase each frame's predicted frequency deviations
    /// [batch, frames, bins] (in bins; frame t's STFT window starts `delay_samples` before
    /// sample t * hop of the audio), which training can hold to the input's.
    pub fn forward_with_frequencies(&self, z: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let t = z.dim(1)?;
        let (frames, deviation) = self.frames(z, None, None)?;
        let full = self.overlap_add(&frames)?;
        Ok((full.narrow(1, self.delay_samples(), t * self.hop)?, deviation))
    }
}

/// The state chunked decoding carries between chunks (owned, so a generator can keep it next
/// to the model it decodes with).
pub struct DecoderState {
    histories: Vec<Tensor>,
    /// With integrated phase, each bin's phase after the last frame decoded.
    theta: Option<Tensor>,
    /// Overlap-add tail not yet complete: (r - 1) * hop samples.
    tail: Vec<f32>,
    /// Start-up samples still to drop (the decoder's alignment delay).
    to_drop: usize,
}

impl DecoderState {
    pub fn new(decoder: &Decoder) -> Self {
        let r = decoder.n_fft / decoder.hop;
        Self { histories: Vec::new(), theta: None, tail: vec![0.0; (r - 1) * decoder.hop], to_drop: (decoder.n_fft - decoder.hop) / 2 }
    }

    /// Decode code frames [frames, levels] (u32) and return the audio completed by them.
    pub fn push_codes(&mut self, decoder: &Decoder, quantizer: &ResidualVq, codes: &Tensor) -> Result<Vec<f32>> {
        let z = quantizer.decode(&codes.unsqueeze(0)?)?;
        self.push_latents(decoder, &z)
    }

    /// Decode latents [1, frames, latent].
    pub fn push_latents(&mut self, decoder: &Decoder, z: &Tensor) -> Result<Vec<f32>> {
        let t = z.dim(1)?;
        if t == 0 {
            return Ok(Vec::new());
        }
        if self.histories.is_empty() {
            let h = decoder.kernel - 1;
            let d = decoder.input.out_dim()?;
            self.histories = (0..decoder.blocks.len()).map(|_| Tensor::zeros((1, h, d), z.dtype(), z.device())).collect::<Result<Vec<_>>>()?;
        }
        let (frames, _) = decoder.frames(z, Some(&mut self.histories), Some(&mut self.theta))?;
        let ola = decoder.overlap_add(&frames)?.squeeze(0)?.to_vec1::<f32>()?;
        let hop = decoder.hop;
        let mut out = ola;
        for (o, t) in out.iter_mut().zip(&self.tail) {
            *o += *t;
        }
        // The first t * hop samples are complete; the rest is the new tail.
        let tail_len = self.tail.len();
        self.tail.copy_from_slice(&out[t * hop..t * hop + tail_len]);
        out.truncate(t * hop);
        let drop = self.to_drop.min(out.len());
        self.to_drop -= drop;
        Ok(out.split_off(drop))
    }
}

/// Chunked decoding with carried state; output equals `Decoder::forward` on the concatenation.
pub struct DecoderStream<'a> {
    decoder: &'a Decoder,
    quantizer: &'a ResidualVq,
    state: DecoderState,
}

impl<'a> DecoderStream<'a> {
    pub fn new(decoder: &'a Decoder, quantizer: &'a ResidualVq) -> Self {
        Self { decoder, quantizer, state: DecoderState::new(decoder) }
    }

    /// Samples of latency between a frame going in and its audio being complete.
    pub fn delay_samples(&self) -> usize {
        self.decoder.delay_samples()
    }

    /// Decode code frames [frames, levels] (u32) and return the audio completed by them.
    pub fn push_codes(&mut self, codes: &Tensor) -> Result<Vec<f32>> {
        self.state.push_codes(self.decoder, self.quantizer, codes)
    }

    /// Decode latents [1, frames, latent].
    pub fn push_latents(&mut self, z: &Tensor) -> Result<Vec<f32>> {
        self.state.push_latents(self.decoder, z)
    }
}
