//! Small layers written out by hand because candle's fused versions build no backward graph
//! (layer_norm, softmax_last_dim) or are slow on CPU (grouped conv for depthwise convolution).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Layer normalisation over the last dimension, in plain ops so gradients flow in training.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
            eps: 1e-5,
        })
    }

    /// Weight, bias and epsilon (for the hand-written inference paths, `model::kernels`).
    pub fn parts(&self) -> (&Tensor, &Tensor, f64) {
        (&self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Inference (nothing tracked for gradients): candle's fused kernel, several times fewer
        // ops per call. Training needs the unfused form: the fused one builds no backward graph.
        if !x.track_op() && !self.weight.track_op() && x.is_contiguous() {
            return candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// A linear layer (`y = x W^T + b`) over the last dimension, in f32 (training, reference) or
/// with a quantised weight (int8 / 4-bit GGML blocks) for fast CPU inference.
#[derive(Debug, Clone)]
pub enum Linear {
    Float(candle_nn::Linear),
    Quantized { weight: QMatMul, bias: Tensor },
}

impl Linear {
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self::Float(candle_nn::linear(in_dim, out_dim, vb)?))
    }

    /// Replace the f32 weight by a quantised copy (no-op if already quantised).
    pub fn quantize(&mut self, dtype: GgmlDType) -> Result<()> {
        if let Self::Float(l) = self {
            let q = QTensor::quantize(l.weight(), dtype)?;
            let bias = l.bias().cloned().ok_or_else(|| candle_core::Error::msg("linear without bias"))?;
            *self = Self::Quantized { weight: QMatMul::from_qtensor(q)?, bias };
        }
        Ok(())
    }

    /// Output width.
    pub fn out_dim(&self) -> Result<usize> {
        match self {
            Self::Float(l) => l.weight().dim(0),
            Self::Quantized { bias, .. } => bias.dim(0),
        }
    }

    /// The weight as stored (q8_0 kept as blocks, other formats widened to f32) and the bias.
    pub fn export(&self) -> Result<(LinearWeight, Tensor)> {
        let (weight, bias) = match self {
            Self::Float(l) => {
                let bias = l.bias().cloned().ok_or_else(|| candle_core::Error::msg("linear without bias"))?;
                (LinearWeight::F32(l.weight().to_dtype(DType::F32)?), bias)
            }
            Self::Quantized { weight, bias } => {
                let w = match weight {
                    QMatMul::QTensor(q) if q.dtype() == GgmlDType::Q8_0 => {
                        LinearWeight::Q8_0 { bytes: q.data()?.into_owned(), inputs: q.shape().dims2()?.1 }
                    }
                    QMatMul::QTensor(q) => LinearWeight::F32(q.dequantize(&Device::Cpu)?),
                    QMatMul::Tensor(t) | QMatMul::TensorF16(t) => LinearWeight::F32(t.to_dtype(DType::F32)?),
                };
                (w, bias.clone())
            }
        };
        Ok((weight, bias.to_dtype(DType::F32)?))
    }
}

/// A linear layer's weight as stored, for code that multiplies it itself.
pub enum LinearWeight {
    /// [out, in], f32 (also what any other quantisation is widened to).
    F32(Tensor),
    /// GGML q8_0 blocks, raw bytes: per output row, `inputs / 32` blocks of an f16 scale
    /// and 32 int8 values.
    Q8_0 { bytes: Vec<u8>, inputs: usize },
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Float(l) => l.forward(x),
            Self::Quantized { weight, bias } => weight.forward(x)?.broadcast_add(bias),
        }
    }
}

/// A 1-D convolution on [batch, channels, time] that pads explicitly (candle's padded conv1d
/// backward falls back to a slow path): `left`/`right` zeros, then a valid convolution.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    dilation: usize,
    left: usize,
    right: usize,
}

impl Conv1d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        (left, right): (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        // He initialisation (variance 2 / fan-in): keeps activations at scale through the GELU
        // stack. The PyTorch default (1/3 of that) shrank the encoder's output to 1e-4.
        let bound = (6.0 / (in_c * kernel) as f64).sqrt();
        let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
        Ok(Self {
            weight: vb.get_with_hints((out_c, in_c, kernel), "weight", init)?,
            // Zero bias: with audio-level inputs (RMS ~0.1) random biases drown the signal and
            // every frame of the encoder's output starts out the same.
            bias: vb.get_with_hints(out_c, "bias", candle_nn::Init::Const(0.0))?,
            stride,
            dilation,
            left,
            right,
        })
    }

    /// A convolution whose output has the input's length (odd kernel, centred).
    pub fn same(in_c: usize, out_c: usize, kernel: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let pad = dilation * (kernel - 1) / 2;
        Self::new(in_c, out_c, kernel, 1, dilation, (pad, pad), vb)
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.left + self.right > 0 { x.pad_with_zeros(D::Minus1, self.left, self.right)? } else { x.clone() };
        let y = x.conv1d(&self.weight, 0, self.stride, self.dilation, 1)?;
        y.broadcast_add(&self.bias.reshape((1, (), 1))?)
    }
}

/// Causal depthwise convolution over time on [batch, time, channels], written as `kernel`
/// shifted multiplies (measured faster than grouped conv1d here). Output at t sees inputs t-k+1..=t.
#[derive(Debug, Clone)]
pub struct CausalDepthwise {
    /// [kernel, channels]; row k multiplies the input delayed by (kernel - 1 - k) frames.
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
}

impl CausalDepthwise {
    pub fn new(channels: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / (kernel as f64).sqrt();
        let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
        Ok(Self {
            weight: vb.get_with_hints((kernel, channels), "weight", init)?,
            bias: vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            kernel,
        })
    }

    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// Taps [kernel, channels] and bias (for the decoder's hand-written inference path).
    pub fn parts(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    /// `x` is [batch, history + time, channels] where the first `kernel - 1` frames are history
    /// (zeros at a stream start, the previous chunk's tail when streaming); returns [batch, time, channels].
    pub fn forward_with_history(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(1)? + 1 - self.kernel;
        let mut acc = self.bias.reshape((1, 1, ()))?.broadcast_as((x.dim(0)?, t, x.dim(2)?))?.contiguous()?;
        for k in 0..self.kernel {
            let w = self.weight.get(k)?.reshape((1, 1, ()))?;
            acc = (acc + x.narrow(1, k, t)?.broadcast_mul(&w)?)?;
        }
        Ok(acc)
    }
}

impl Module for CausalDepthwise {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with_history(&x.pad_with_zeros(1, self.kernel - 1, 0)?)
    }
}
