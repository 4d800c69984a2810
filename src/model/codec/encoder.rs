//! Convolutional encoder: waveform → one latent vector per hop.

use super::CodecConfig;
use crate::model::nn::Conv1d;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `x + conv1x1(gelu(conv7(gelu(x))))`.
struct ResUnit {
    conv: Conv1d,
    mix: Conv1d,
}

impl ResUnit {
    fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { conv: Conv1d::same(c, c, 7, 1, vb.pp("conv"))?, mix: Conv1d::same(c, c, 1, 1, vb.pp("mix"))? })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x + self.mix.forward(&self.conv.forward(&x.gelu()?)?.gelu()?)?
    }
}

/// A residual unit then a strided convolution (kernel 2·stride) that divides the length exactly.
struct DownBlock {
    res: ResUnit,
    down: Conv1d,
}

impl DownBlock {
    fn new(in_c: usize, out_c: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let pad = (stride.div_ceil(2), stride / 2);
        Ok(Self {
            res: ResUnit::new(in_c, vb.pp("res"))?,
            down: Conv1d::new(in_c, out_c, 2 * stride, stride, 1, pad, vb.pp("down"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.down.forward(&self.res.forward(x)?.gelu()?)
    }
}

pub struct Encoder {
    input: Conv1d,
    blocks: Vec<DownBlock>,
    output: Conv1d,
    hop: usize,
}

impl Encoder {
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.encoder_channels;
        let blocks = cfg
            .strides
            .iter()
            .enumerate()
            .map(|(i, &s)| DownBlock::new(ch[i], ch[i + 1], s, vb.pp(format!("block{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input: Conv1d::same(1, ch[0], 7, 1, vb.pp("input"))?,
            blocks,
            output: Conv1d::same(*ch.last().expect("validated"), cfg.latent_dim, 3, 1, vb.pp("output"))?,
            hop: cfg.hop(),
        })
    }

    /// [batch, samples] → [batch, frames, latent_dim]; samples must be a multiple of the hop.
    pub fn forward(&self, audio: &Tensor) -> Result<Tensor> {
        let (_, n) = audio.dims2()?;
        if n % self.hop != 0 || n == 0 {
            candle_core::bail!("encoder input of {n} samples is not a positive multiple of the hop {}", self.hop);
        }
        let mut x = self.input.forward(&audio.unsqueeze(1)?)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        self.output.forward(&x.gelu()?)?.transpose(1, 2)?.contiguous()
    }
}
