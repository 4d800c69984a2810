//! The streaming decoder written out for the CPU, one code frame at a time: what the generator
//! thread runs for every frame the prior writes.
//!
//! Same model as `decoder.rs` (its weights are copied out of the loaded `Codec`), without
//! tensors: codebook lookups, the causal ConvNeXt blocks with their history kept in place, the
//! STFT head, and the inverse STFT by a real FFT (`realfft`) instead of the 1282 x 1280 matrix
//! product the trainable decoder uses. `tests.rs` checks both give the same audio.

use super::decoder::Decoder;
use super::{PhaseMode, ResidualVq};
use crate::model::kernels::{self, gelu, Dense, Norm, Q8};
use candle_core::Result;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner};
use std::sync::Arc;

struct CpuBlock {
    /// Depthwise taps [kernel][channels]: tap k multiplies the input delayed by kernel - 1 - k.
    dw: Vec<f32>,
    dw_bias: Vec<f32>,
    norm: Norm,
    up: Dense,
    down: Dense,
    gamma: Vec<f32>,
}

/// A loaded codec's decoder and codebooks, laid out for frame-at-a-time CPU decoding.
pub struct CpuDecoder {
    /// Per level, the codebook [size * latent].
    codebooks: Vec<Vec<f32>>,
    size: usize,
    latent: usize,
    dim: usize,
    mlp: usize,
    kernel: usize,
    input: Dense,
    blocks: Vec<CpuBlock>,
    norm: Norm,
    head: Dense,
    n_fft: usize,
    hop: usize,
    bins: usize,
    phase: PhaseMode,
    /// Hann synthesis window divided by n_fft (the inverse FFT is unnormalised).
    window: Vec<f32>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    avx2: bool,
}

/// Code frames decoded side by side: each weight row is read once for the group (the weights,
/// 3.7 MB in q8_0, do not fit this CPU's L2 cache, so reading them is most of a frame's cost).
/// Two is what the neural source renders per call; a group's frames give the same bits as
/// decoding them one at a time.
const GROUP: usize = 2;

/// One frame's working buffers within a group (made once).
#[derive(Default)]
struct FrameBufs {
    z: Vec<f32>,
    x: Vec<f32>,
    y: Vec<f32>,
    h: Vec<f32>,
    hidden: Vec<f32>,
    spec: Vec<f32>,
    xq: Q8,
    spectrum: Vec<Complex<f32>>,
}

/// One stream's decoding state: each block's last `kernel - 1` inputs, the overlap-add tail,
/// the start-up samples still to drop, and working buffers (made once).
pub struct CpuDecoderState {
    /// Per block, its inputs of the last `kernel - 1` frames, oldest first, then room for a
    /// group's: [kernel - 1 + GROUP][dim].
    histories: Vec<Vec<f32>>,
    tail: Vec<f32>,
    to_drop: usize,
    /// With integrated phase, each bin's phase after the last frame (`Decoder::integrate_phase`).
    theta: Vec<f32>,
    rows: [FrameBufs; GROUP],
    frame: Vec<f32>,
    scratch: Vec<Complex<f32>>,
}

impl CpuDecoder {
    pub fn new(decoder: &Decoder, quantizer: &ResidualVq) -> Result<Self> {
        let codebooks = (0..quantizer.levels()).map(|l| quantizer.codebook(l).flatten_all()?.to_vec1::<f32>()).collect::<Result<Vec<_>>>()?;
        let (size, latent) = quantizer.codebook(0).dims2()?;
        let blocks = decoder
            .blocks
            .iter()
            .map(|b| {
                let (w, bias) = b.dw.parts();
                Ok(CpuBlock {
                    dw: w.flatten_all()?.to_vec1()?,
                    dw_bias: bias.to_vec1()?,
                    norm: Norm::new(&b.norm)?,
                    up: Dense::new(&b.up)?,
                    down: Dense::new(&b.down)?,
                    gamma: b.gamma.to_vec1()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let input = Dense::new(&decoder.input)?;
        let dim = input.bias.len();
        let mlp = blocks.first().map(|b| b.up.bias.len()).unwrap_or(0);
        let (n_fft, hop) = (decoder.n_fft, decoder.hop);
        if input.inputs != latent || n_fft % hop != 0 || decoder.kernel == 0 {
            candle_core::bail!("fast decoder: latent {latent} vs input {}, n_fft {n_fft}, hop {hop}", input.inputs);
        }
        let tau = 2.0 * std::f64::consts::PI;
        let window = (0..n_fft).map(|n| ((0.5 - 0.5 * (tau * n as f64 / n_fft as f64).cos()) / n_fft as f64) as f32).collect();
        Ok(Self {
            codebooks,
            size,
            latent,
            dim,
            mlp,
            kernel: decoder.kernel,
            input,
            blocks,
            norm: Norm::new(&decoder.norm)?,
            head: Dense::new(&decoder.head)?,
            n_fft,
            hop,
            bins: decoder.bins,
            phase: decoder.phase,
            window,
            inverse: RealFftPlanner::<f32>::new().plan_fft_inverse(n_fft),
            avx2: kernels::has_avx2_fma(),
        })
    }

    pub fn new_state(&self) -> CpuDecoderState {
        let r = self.n_fft / self.hop;
        let row = || FrameBufs {
            z: vec![0.0; self.latent],
            x: vec![0.0; self.dim],
            y: vec![0.0; self.dim],
            h: vec![0.0; self.dim],
            hidden: vec![0.0; self.mlp],
            spec: vec![0.0; super::decoder::head_outputs(self.phase, self.bins)],
            xq: Q8::zeros(self.dim.max(self.mlp).max(self.latent)),
            spectrum: self.inverse.make_input_vec(),
        };
        CpuDecoderState {
            histories: vec![vec![0.0; (self.kernel - 1 + GROUP) * self.dim]; self.blocks.len()],
            tail: vec![0.0; (r - 1) * self.hop],
            to_drop: (self.n_fft - self.hop) / 2,
            theta: vec![0.0; self.bins],
            rows: std::array::from_fn(|_| row()),
            frame: self.inverse.make_output_vec(),
            scratch: self.inverse.make_scratch_vec(),
        }
    }

    /// Decode code frames (`levels` codes each, frame after frame) and append the audio they
    /// complete to `out`.
    pub fn push_frames(&self, state: &mut CpuDecoderState, codes: &[u32], out: &mut Vec<f32>) -> Result<()> {
        let levels = self.codebooks.len();
        if levels == 0 || codes.len() % levels != 0 {
            candle_core::bail!("{} codes are not whole frames of {levels} levels", codes.len());
        }
        if let Some(bad) = codes.iter().find(|&&c| c as usize >= self.size) {
            candle_core::bail!("code {bad} is out of range for codebooks of {} entries", self.size);
        }
        for group in codes.chunks(levels * GROUP) {
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                // SAFETY: AVX2 and FMA were detected in `new`.
                unsafe { self.group_avx2(state, group) };
            } else {
                self.group_body::<false>(state, group);
            }
            #[cfg(not(target_arch = "x86_64"))]
            self.group_body::<false>(state, group);
            for r in 0..group.len() / levels {
                self.emit(state, r, out);
            }
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group_avx2(&self, st: &mut CpuDecoderState, codes: &[u32]) {
        self.group_body::<true>(st, codes)
    }

    /// One to `GROUP` code frames through the network, side by side, each into its row's
    /// spectrum. Every frame's arithmetic is the same, in the same order, as alone.
    #[inline(always)]
    fn group_body<const AVX2: bool>(&self, st: &mut CpuDecoderState, codes: &[u32]) {
        let (d, hist) = (self.dim, self.kernel - 1);
        let n = codes.len() / self.codebooks.len();
        let CpuDecoderState { histories, rows, theta, .. } = st;
        let mut rows_buf = rows.each_mut();
        let rows = &mut rows_buf[..n];
        for (row, frame) in rows.iter_mut().zip(codes.chunks_exact(self.codebooks.len())) {
            row.z.fill(0.0);
            for (book, &c) in self.codebooks.iter().zip(frame) {
                let e = &book[c as usize * self.latent..(c as usize + 1) * self.latent];
                for (z, v) in row.z.iter_mut().zip(e) {
                    *z += v;
                }
            }
        }
        self.input.apply_rows::<FrameBufs, AVX2>(rows, |r| &r.z, |r| &mut r.xq, |r| &mut r.x);
        for (b, history) in self.blocks.iter().zip(histories.iter_mut()) {
            // Depthwise causal convolution: frame r sees the history and the frames before it
            // in the group, then itself.
            for (r, row) in rows.iter().enumerate() {
                history[(hist + r) * d..(hist + r + 1) * d].copy_from_slice(&row.x);
            }
            for (r, row) in rows.iter_mut().enumerate() {
                row.y.copy_from_slice(&b.dw_bias);
                for k in 0..self.kernel {
                    let tap = &b.dw[k * d..(k + 1) * d];
                    let input = &history[(r + k) * d..(r + k + 1) * d];
                    for c in 0..d {
                        row.y[c] += input[c] * tap[c];
                    }
                }
            }
            history.copy_within(n * d..(hist + n) * d, 0);
            for row in rows.iter_mut() {
                b.norm.apply(&row.y, &mut row.h);
            }
            b.up.apply_rows::<FrameBufs, AVX2>(rows, |r| &r.h, |r| &mut r.xq, |r| &mut r.hidden);
            for row in rows.iter_mut() {
                gelu(&mut row.hidden);
            }
            b.down.apply_rows::<FrameBufs, AVX2>(rows, |r| &r.hidden, |r| &mut r.xq, |r| &mut r.y);
            for row in rows.iter_mut() {
                for c in 0..d {
                    row.x[c] += row.y[c] * b.gamma[c];
                }
            }
        }
        for row in rows.iter_mut() {
            self.norm.apply(&row.x, &mut row.h);
        }
        self.head.apply_rows::<FrameBufs, AVX2>(rows, |r| &r.h, |r| &mut r.xq, |r| &mut r.spec);
        let tau = std::f64::consts::TAU;
        // The tensor decoder's arithmetic, in its order (f32 constants as candle's affine makes them).
        let (turn, per_turn, step) = (tau as f32, (1.0 / tau) as f32, (tau * self.hop as f64 / self.n_fft as f64) as f32);
        for row in rows.iter_mut() {
            if self.phase == PhaseMode::Integrated {
                // Frames in order: each turns the phase the previous one left.
                for (k, th) in theta.iter_mut().enumerate() {
                    let now = *th + (row.spec[2 * self.bins + k] + k as f32) * step;
                    *th = now - (now * per_turn).floor() * turn;
                    row.spec[self.bins + k] += *th;
                }
            }
            // Log-magnitude (clamped as in training) and phase → spectrum; the DC and Nyquist
            // bins' imaginary parts do not reach a real signal (the matrix form multiplies
            // them by 0).
            for k in 0..self.bins {
                let mag = row.spec[k].clamp(-30.0, 8.0).exp();
                let (sin, cos) = row.spec[self.bins + k].sin_cos();
                row.spectrum[k] = Complex::new(mag * cos, mag * sin);
            }
            row.spectrum[0].im = 0.0;
            row.spectrum[self.bins - 1].im = 0.0;
        }
    }

    /// Inverse FFT of row `r`'s spectrum, window, overlap-add: append the hop of audio this
    /// frame completes.
    fn emit(&self, st: &mut CpuDecoderState, r: usize, out: &mut Vec<f32>) {
        // Cannot fail: the buffers come from the plan and the edge bins are real.
        let _ = self.inverse.process_with_scratch(&mut st.rows[r].spectrum, &mut st.frame, &mut st.scratch);
        let hop = self.hop;
        for (f, w) in st.frame.iter_mut().zip(&self.window) {
            *f *= w;
        }
        let tail_len = st.tail.len();
        // The first hop samples are complete; the rest is the new tail.
        let start = st.to_drop.min(hop);
        st.to_drop -= start;
        if tail_len == 0 {
            out.extend_from_slice(&st.frame[start..hop]);
            return;
        }
        out.extend(st.tail[start..hop.min(tail_len)].iter().zip(&st.frame[start..hop]).map(|(t, f)| t + f));
        st.tail.copy_within(hop.min(tail_len).., 0);
        let keep = tail_len - hop.min(tail_len);
        for (t, f) in st.tail[..keep].iter_mut().zip(&st.frame[hop..]) {
            *t += f;
        }
        st.tail[keep..].copy_from_slice(&st.frame[hop + keep..self.n_fft]);
    }
}
