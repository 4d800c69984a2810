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
        Self::below(n_fft, hop, n_fft / 2 + 1, device)
    }

    /// The first `bins` bins only (a long window's low band costs a fraction of the whole).
    pub fn below(n_fft: usize, hop: usize, bins: usize, device: &Device) -> Result<Self> {
        let bins = bins.min(n_fft / 2 + 1);
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

    /// STFT of `x` [batch, samples]: [batch, 2 * bins, frames], real parts then imaginary (frames
    /// over the valid part only; each frame's phase measured from its first sample).
    pub fn complex(&self, x: &Tensor) -> Result<Tensor> {
        x.unsqueeze(1)?.conv1d(&self.kernels, 0, self.hop, 1, 1)
    }

    /// |STFT| of `x` [batch, samples]: [batch, bins, frames] (frames over the valid part only).
    pub fn magnitude(&self, x: &Tensor) -> Result<Tensor> {
        let spec = self.complex(x)?;
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
/// Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz).
fn midi_to_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// Weight of frequency `f` in a triangular filter rising from `l` to its peak at `c`, falling to `r`.
fn triangle(f: f64, l: f64, c: f64, r: f64) -> f64 {
    if f > l && f <= c {
        (f - l) / (c - l)
    } else if f > c && f < r {
        (r - f) / (r - c)
    } else {
        0.0
    }
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
            fb[b * n_mels + m] = (triangle(f, l, c, r) * 2.0 / (r - l)) as f32;
        }
    }
    fb
}

/// Triangular filters on a log-frequency axis, `per_semitone` bands a semitone from MIDI note
/// `low` to `high`, over the bins of an `n_fft`-point STFT: [bins, bands], each band's weights
/// summing to 1. A band narrower than a bin (the low notes) interpolates its two nearest bins.
pub fn pitch_filterbank(sample_rate: u32, n_fft: usize, bins: usize, low: f64, high: f64, per_semitone: usize) -> Vec<f32> {
    let bin_hz = sample_rate as f64 / n_fft as f64;
    let bands = ((high - low) * per_semitone as f64).round() as usize + 1;
    let step = 1.0 / per_semitone as f64;
    let mut fb = vec![0f32; bins * bands];
    for m in 0..bands {
        let centre = low + m as f64 * step;
        let (l, c, r) = (midi_to_hz(centre - step), midi_to_hz(centre), midi_to_hz(centre + step));
        let mut w: Vec<(usize, f64)> = (0..bins).map(|b| (b, triangle(b as f64 * bin_hz, l, c, r))).filter(|&(_, v)| v > 0.0).collect();
        if w.len() < 2 {
            let pos = c / bin_hz;
            let b = (pos.floor() as usize).min(bins - 2);
            let frac = (pos - b as f64).clamp(0.0, 1.0);
            w = vec![(b, 1.0 - frac), (b + 1, frac)];
        }
        let total: f64 = w.iter().map(|(_, v)| v).sum();
        for (b, v) in w {
            fb[b * bands + m] += (v / total) as f32;
        }
    }
    fb
}

/// The codec's spectral distances: multi-resolution STFT, log-mel L1 and a pitch-resolved
/// log-spectrogram L1.
pub struct SpectralDistances {
    stfts: Vec<Stft>,
    mel_stft: Stft,
    /// [bins, n_mels]
    mel_fb: Tensor,
    pitch_stft: Stft,
    /// [pitch_stft.bins, bands]
    pitch_fb: Tensor,
}

/// The pitch distance's STFT (n_fft, hop) and note range (MIDI, bands a semitone). Why: 80 mel
/// bands over a 1024-point STFT are about two semitones wide at 260 Hz and its bins 23 Hz, so a
/// wrong note is cheap in the log-mel: a harmonic tone on A2 moved up a semitone costs it 1.3x
/// what the same tone 6 dB quieter costs (A3 3.0x, A4 3.3x), and 3.7x (5.4x, 8.2x) in this
/// distance. 4096 points (5.9 Hz bins) resolve half-semitone bands from C2 (65 Hz) to C8
/// (4.2 kHz), where basic-pitch and listeners find the notes; only the 759 bins below C8 are
/// computed, of 2049.
pub const PITCH: (usize, usize, f64, f64, usize) = (4096, 256, 36.0, 108.0, 2);

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
        let (p_fft, p_hop, low, high, per_semitone) = PITCH;
        let top_hz = midi_to_hz(high + 1.0);
        let p_bins = (top_hz * p_fft as f64 / sample_rate as f64).ceil() as usize + 2;
        let pitch_stft = Stft::below(p_fft, p_hop, p_bins, device)?;
        let pfb = pitch_filterbank(sample_rate, p_fft, pitch_stft.bins, low, high, per_semitone);
        let bands = pfb.len() / pitch_stft.bins;
        let pitch_fb = Tensor::from_vec(pfb, (pitch_stft.bins, bands), device)?;
        Ok(Self { stfts, mel_stft, mel_fb, pitch_stft, pitch_fb })
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

    /// Mean absolute difference of the pitch-resolved log spectrograms (`PITCH`) of `y` and `x`.
    pub fn pitch(&self, y: &Tensor, x: &Tensor) -> Result<Tensor> {
        (self.log_pitch(y)? - self.log_pitch(x)?)?.abs()?.mean_all()
    }

    /// Log pitch spectrogram [batch, frames, bands] (natural log). Its floor, 0.01, is 80 dB
    /// below a band holding a note at -20 dBFS (about 100 in these units): differences in what
    /// is inaudible under the notes do not count.
    pub fn log_pitch(&self, x: &Tensor) -> Result<Tensor> {
        self.pitch_stft.magnitude(x)?.transpose(1, 2)?.broadcast_matmul(&self.pitch_fb)?.clamp(1e-2, f32::MAX)?.log()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, amp: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 24_000.0).sin() as f32).collect()
    }

    #[test]
    fn a_note_lands_in_its_own_pitch_band() {
        let sd = SpectralDistances::new(24_000, &Device::Cpu).unwrap();
        let (_, _, low, _, per_semitone) = PITCH;
        for note in [40.0, 57.0, 69.0, 88.0] {
            let x = Tensor::from_vec(sine(midi_to_hz(note), 0.1, 24_000), (1, 24_000), &Device::Cpu).unwrap();
            let bands = sd.log_pitch(&x).unwrap().mean(1).unwrap().squeeze(0).unwrap();
            let peak = bands.argmax(0).unwrap().to_scalar::<u32>().unwrap() as f64;
            assert_eq!(peak, (note - low) * per_semitone as f64, "MIDI {note}");
        }
    }

    #[test]
    fn a_wrong_semitone_weighs_on_the_pitch_distance_more_than_on_the_log_mel() {
        // A harmonic tone on A2 against the same tone a semitone up, and against it 6 dB
        // quieter (a change both distances see): measured 1.3x for the log-mel, 3.7x for pitch.
        let sd = SpectralDistances::new(24_000, &Device::Cpu).unwrap();
        let t = |v: Vec<f32>| Tensor::from_vec(v, (1, 24_000), &Device::Cpu).unwrap();
        let tone = |hz: f64, amp: f32| {
            let mut v = vec![0f32; 24_000];
            for h in 1..=8 {
                v.iter_mut().zip(sine(hz * h as f64, amp / h as f32, 24_000)).for_each(|(a, b)| *a += b);
            }
            t(v)
        };
        let x = tone(110.0, 0.1);
        let (off, quiet) = (tone(midi_to_hz(46.0), 0.1), tone(110.0, 0.05));
        let mel = |y: &Tensor| sd.both(y, &x).unwrap().1.to_scalar::<f32>().unwrap();
        let pitch = |y: &Tensor| sd.pitch(y, &x).unwrap().to_scalar::<f32>().unwrap();
        let (mel, pitch) = (mel(&off) / mel(&quiet), pitch(&off) / pitch(&quiet));
        assert!(pitch > 2.0 * mel, "semitone off against 6 dB quieter: log-mel {mel:.2}x, pitch {pitch:.2}x");
    }
}
