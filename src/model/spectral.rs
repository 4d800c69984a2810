//! Spectral analysis as tensor ops (so losses can be differentiated): STFT as a strided
//! convolution with windowed DFT kernels, mel filterbanks, and the distances the codec is
//! trained and evaluated with.

use candle_core::{DType, Device, Result, Tensor};

/// Short-time Fourier transform magnitude via conv1d with Hann-windowed cos/sin kernels.
pub struct Stft {
    /// [2 * bins, 1, n_fft]: real kernels then imaginary kernels.
    kernels: Tensor,
    pub n_fft: usize,
    pub hop: usize,
    pub bins: usize,
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize, device: &Device) -> Result<Self> {
        let bins = n_fft / 2 + 1;
        let mut k = vec![0f32; 2 * bins * n_fft];
        for b in 0..bins {
            for n in 0..n_fft {
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos();
                let phase = 2.0 * std::f64::consts::PI * (b * n) as f64 / n_fft as f64;
                k[b * n_fft + n] = (w * phase.cos()) as f32;
                k[(bins + b) * n_fft + n] = (-w * phase.sin()) as f32;
            }
        }
        Ok(Self { kernels: Tensor::from_vec(k, (2 * bins, 1, n_fft), device)?, n_fft, hop, bins })
    }

    /// |STFT| of `x` [batch, samples]: [batch, bins, frames] (frames over the valid part only).
    pub fn magnitude(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.unsqueeze(1)?;
        let spec = x.conv1d(&self.kernels, 0, self.hop, 1, 1)?;
        let re = spec.narrow(1, 0, self.bins)?;
        let im = spec.narrow(1, self.bins, self.bins)?;
        ((re.sqr()? + im.sqr()?)? + 1e-8)?.sqrt()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}
fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// Triangular mel filterbank, [bins, n_mels], area-normalised (Slaney style).
pub fn mel_filterbank(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let (mlo, mhi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let pts: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(mlo + (mhi - mlo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut fb = vec![0f32; bins * n_mels];
    for b in 0..bins {
        let f = b as f64 * sample_rate as f64 / n_fft as f64;
        for m in 0..n_mels {
            let (l, c, r) = (pts[m], pts[m + 1], pts[m + 2]);
            let v = if f > l && f <= c { (f - l) / (c - l) } else if f > c && f < r { (r - f) / (r - c) } else { 0.0 };
            fb[b * n_mels + m] = (v * 2.0 / (r - l)) as f32;
        }
    }
    fb
}

/// The codec's spectral distances: multi-resolution STFT and log-mel L1.
pub struct SpectralDistances {
    stfts: Vec<Stft>,
    mel_stft: Stft,
    /// [bins, n_mels]
    mel_fb: Tensor,
}

/// STFT sizes of the multi-resolution distance (n_fft, hop), at 24 kHz 21 ms to 85 ms windows.
pub const MR_STFT: [(usize, usize); 3] = [(512, 128), (1024, 256), (2048, 512)];
/// Log-mel distance: 1024-point STFT, hop 256, 80 mel bands up to 12 kHz.
pub const MEL: (usize, usize, usize) = (1024, 256, 80);

impl SpectralDistances {
    pub fn new(sample_rate: u32, device: &Device) -> Result<Self> {
        let stfts = MR_STFT.iter().map(|&(n, h)| Stft::new(n, h, device)).collect::<Result<Vec<_>>>()?;
        let (n_fft, hop, n_mels) = MEL;
        let mel_stft = Stft::new(n_fft, hop, device)?;
        let fb = mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate as f64 / 2.0);
        let mel_fb = Tensor::from_vec(fb, (n_fft / 2 + 1, n_mels), device)?;
        Ok(Self { stfts, mel_stft, mel_fb })
    }

    /// Both distances of `y` against reference `x` ([batch, samples] each), sharing the STFT they
    /// have in common: the multi-resolution STFT distance (mean over resolutions of spectral
    /// convergence + mean |log|Y| - log|X||) and the mean absolute log-mel difference.
    pub fn both(&self, y: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut total = Tensor::zeros((), DType::F32, x.device())?;
        let mut mel = None;
        for stft in &self.stfts {
            let (my, mx) = (stft.magnitude(y)?, stft.magnitude(x)?);
            let sc = ((&my - &mx)?.sqr()?.sum_all()?.sqrt()? / (mx.sqr()?.sum_all()?.sqrt()? + 1e-6)?)?;
            let lm = (my.log()? - mx.log()?)?.abs()?.mean_all()?;
            total = (total + sc + lm)?;
            if (stft.n_fft, stft.hop) == (self.mel_stft.n_fft, self.mel_stft.hop) {
                mel = Some((self.mel_of(&my)? - self.mel_of(&mx)?)?.abs()?.mean_all()?);
            }
        }
        let mel = match mel {
            Some(m) => m,
            None => (self.log_mel(y)? - self.log_mel(x)?)?.abs()?.mean_all()?,
        };
        Ok(((total / self.stfts.len() as f64)?, mel))
    }

    /// Log-mel of a magnitude spectrogram [batch, bins, frames] → [batch, frames, n_mels].
    fn mel_of(&self, mag: &Tensor) -> Result<Tensor> {
        mag.transpose(1, 2)?.broadcast_matmul(&self.mel_fb)?.clamp(1e-5, f32::MAX)?.log()
    }

    /// Log-mel spectrogram [batch, frames, n_mels] (natural log, floor 1e-5).
    pub fn log_mel(&self, x: &Tensor) -> Result<Tensor> {
        self.mel_of(&self.mel_stft.magnitude(x)?)
    }
}

/// Scale-invariant signal-to-distortion ratio in dB of estimate `y` against reference `x`.
pub fn si_sdr(y: &[f32], x: &[f32]) -> f64 {
    let n = y.len().min(x.len());
    let (y, x) = (&y[..n], &x[..n]);
    let xx: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
    let xy: f64 = x.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum();
    let alpha = xy / (xx + 1e-12);
    let (mut s, mut e) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let t = alpha * *a as f64;
        s += t * t;
        e += (*b as f64 - t).powi(2);
    }
    10.0 * ((s + 1e-12) / (e + 1e-12)).log10()
}
