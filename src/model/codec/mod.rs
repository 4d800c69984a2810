//! Cantor's neural audio codec: a convolutional encoder, residual vector quantisation and a
//! Vocos-style decoder (causal ConvNeXt blocks predicting STFT frames, inverted by overlap-add).
//!
//! Why this shape: the decoder runs in the plugin, on one CPU thread, in small chunks. An iSTFT
//! head was measured about 2.5x cheaper here than transposed-convolution upsampling, and causal
//! depthwise convolutions make chunked decoding exactly equal to whole decoding.

mod decoder;
mod encoder;
pub mod cpu_decoder;
mod quantizer;

pub use decoder::{Decoder, DecoderState, DecoderStream};
pub use encoder::Encoder;
pub use quantizer::ResidualVq;

use crate::model::weights::{self, WeightsError};
use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Codec hyper-parameters. Stored in every weights file; the defaults are the shipped codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodecConfig {
    /// Audio sample rate in Hz (mono).
    pub sample_rate: u32,
    /// Encoder downsampling factors; their product is the hop (samples per code frame).
    pub strides: Vec<usize>,
    /// Encoder channels: before the first downsampling, then after each.
    pub encoder_channels: Vec<usize>,
    /// Width of the latent vectors that are quantised.
    pub latent_dim: usize,
    /// Residual quantiser levels (codes per frame).
    pub n_codebooks: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Decoder width, depth and MLP width.
    pub decoder_dim: usize,
    pub decoder_layers: usize,
    pub decoder_mlp: usize,
    /// Causal depthwise kernel of each decoder block, in frames.
    pub decoder_kernel: usize,
    /// STFT size the decoder predicts (a multiple of the hop; window = n_fft).
    pub n_fft: usize,
    /// How the decoder makes each STFT frame's phase (absent in files from before it existed:
    /// `Direct`).
    #[serde(default)]
    pub decoder_phase: PhaseMode,
}

/// How the decoder's head makes phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseMode {
    /// Each frame's phase predicted on its own, as in Vocos. A steady tone needs its phase to
    /// turn by 2 pi x hop x frequency from frame to frame, which a convolution over steady
    /// latents cannot produce: held and bass notes come out as noise.
    #[default]
    Direct,
    /// The head also predicts each bin's frequency (a deviation from the bin's centre, in bins);
    /// phase is integrated over frames from it, as in a phase vocoder, plus a predicted residual.
    /// A steady tone's phase then turns coherently whatever the latents, and what the codes
    /// must carry is the pitch, not the waveform's phase.
    Integrated,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            sample_rate: 24_000,
            strides: vec![2, 4, 5, 8],
            encoder_channels: vec![16, 32, 64, 128, 256],
            latent_dim: 64,
            n_codebooks: 8,
            codebook_size: 512,
            decoder_dim: 256,
            decoder_layers: 6,
            decoder_mlp: 768,
            decoder_kernel: 7,
            n_fft: 1280,
            decoder_phase: PhaseMode::Direct,
        }
    }
}

impl CodecConfig {
    /// Samples per code frame.
    pub fn hop(&self) -> usize {
        self.strides.iter().product()
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop() as f64
    }

    /// Bits per second of the code stream.
    pub fn bitrate(&self) -> f64 {
        self.frame_rate() * self.n_codebooks as f64 * (self.codebook_size as f64).log2()
    }

    /// A small configuration for unit tests (random weights, fast).
    pub fn tiny() -> Self {
        Self {
            strides: vec![2, 4, 5, 8],
            encoder_channels: vec![4, 8, 8, 16, 16],
            // Widths are multiples of 32, the quantised block size.
            latent_dim: 32,
            n_codebooks: 2,
            codebook_size: 16,
            decoder_dim: 32,
            decoder_layers: 2,
            decoder_mlp: 64,
            ..Self::default()
        }
    }

    /// Reject configurations the model cannot be built with.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.strides.is_empty() || self.strides.contains(&0) {
            return Err("strides must be non-empty and positive".into());
        }
        if self.encoder_channels.len() != self.strides.len() + 1 {
            return Err(format!("encoder_channels needs {} entries", self.strides.len() + 1));
        }
        if self.n_fft % self.hop() != 0 || self.n_fft < self.hop() {
            return Err(format!("n_fft {} must be a multiple of the hop {}", self.n_fft, self.hop()));
        }
        if self.n_codebooks == 0 || self.codebook_size < 2 || self.decoder_kernel < 2 {
            return Err("need at least one codebook, two codes per codebook and a decoder kernel of 2 or more".into());
        }
        Ok(())
    }
}

/// The whole codec. Weight names: `encoder.*`, `quantizer.level{i}.codebook`, `decoder.*`.
pub struct Codec {
    pub cfg: CodecConfig,
    pub encoder: Encoder,
    pub quantizer: ResidualVq,
    pub decoder: Decoder,
    /// The decoder and codebooks laid out for frame-at-a-time CPU decoding (`cpu_decoder`), made when
    /// a codec is loaded for inference on the CPU; `None` in training.
    pub cpu_decoder: Option<cpu_decoder::CpuDecoder>,
}

impl Codec {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            quantizer: ResidualVq::new(cfg, vb.pp("quantizer"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            cpu_decoder: None,
        })
    }

    /// Audio [batch, samples] (samples a multiple of the hop) → codes [batch, frames, levels] (u32).
    pub fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        let z = self.encoder.forward(audio)?;
        self.quantizer.encode(&z)
    }

    /// Codes [batch, frames, levels] → audio [batch, frames * hop], decoded whole.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.decoder.forward(&self.quantizer.decode(codes)?)
    }

    /// A streaming decoder: feed code frames in chunks of any size, get the same audio.
    pub fn stream(&self) -> DecoderStream<'_> {
        DecoderStream::new(&self.decoder, &self.quantizer)
    }

    /// Load a codec from a model file's bytes, checking every tensor (see `model::weights`).
    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Self, WeightsError> {
        let raw = weights::parse::<CodecConfig>(bytes, KIND, device)?;
        raw.config.validate().map_err(WeightsError::BadConfig)?;
        let mut codec = weights::build_checked(&raw.config, raw.tensors, device, |cfg, vb| Codec::new(cfg, vb))?;
        if let Some(q) = raw.quantized {
            codec.decoder.quantize(q)?;
        }
        if device.is_cpu() {
            codec.cpu_decoder = Some(cpu_decoder::CpuDecoder::new(&codec.decoder, &codec.quantizer)?);
        }
        Ok(codec)
    }

    /// "quantized" if the decoder runs on quantised weights, else "f32" (for reports and tests).
    pub fn decoder_linear_kind(&self) -> &'static str {
        self.decoder.linear_kind()
    }

    /// Which tensors a quantised codec file stores as GGML blocks: the decoder's linear weights.
    pub fn is_quantizable(name: &str) -> bool {
        name.starts_with("decoder.") && name.ends_with(".weight") && [".input.", ".up.", ".down.", ".head."].iter().any(|p| name.contains(p))
    }
}

/// The model kind written in codec files.
pub const KIND: &str = "cantor-codec";

#[cfg(test)]
mod tests;
