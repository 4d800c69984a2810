//! The editor's live spectrogram, analysed on the capture thread (never the audio thread) from
//! the same output copy the capture keeps, and handed to the editor as finished columns.

use realfft::{RealFftPlanner, RealToComplex};
use std::collections::VecDeque;
use std::sync::Arc;

/// Frequency bands per column, log-spaced from `LOW_HZ` to `HIGH_HZ` (or Nyquist).
pub const BANDS: usize = 72;
/// Columns kept: at `COLUMN_S` each, about 5 s of history.
pub const COLUMNS: usize = 256;
/// Seconds between columns.
pub const COLUMN_S: f64 = 0.02;
const LOW_HZ: f64 = 40.0;
const HIGH_HZ: f64 = 16_000.0;
/// Level range shown, in dB relative to a full-scale sine.
const FLOOR_DB: f32 = -90.0;
/// FFT length at 48 kHz (scaled with the rate, to a power of two).
const FFT_AT_48K: usize = 2048;

/// The finished columns (newest last), each band 0 (floor or below) to 255 (0 dB).
#[derive(Default)]
pub struct SpectrogramColumns {
    pub columns: VecDeque<[u8; BANDS]>,
    /// Columns ever added (lets the editor skip redrawing when nothing changed).
    pub added: u64,
}

impl SpectrogramColumns {
    fn push(&mut self, column: [u8; BANDS]) {
        if self.columns.len() == COLUMNS {
            self.columns.pop_front();
        }
        self.columns.push_back(column);
        self.added += 1;
    }
}

/// Turns interleaved stereo output into spectrogram columns (mono mix, Hann window).
pub struct SpectrogramAnalyser {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    hop: usize,
    /// Mono samples not yet analysed (at most one FFT length plus a hop).
    pending: VecDeque<f32>,
    /// Bin range of each band.
    bands: Vec<(usize, usize)>,
    frame: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
    /// Power of a full-scale sine's peak bin with this window (0 dB).
    reference: f32,
}

impl SpectrogramAnalyser {
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(8_000) as f64;
        let n = (FFT_AT_48K as f64 * rate / 48_000.0).round().max(256.0) as usize;
        let n = n.next_power_of_two();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let window: Vec<f32> = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos()).collect();
        let reference = (window.iter().sum::<f32>() / 2.0).powi(2);
        let bin_hz = rate / n as f64;
        let high = HIGH_HZ.min(rate / 2.0 * 0.95);
        let edge = |b: usize| LOW_HZ * (high / LOW_HZ).powf(b as f64 / BANDS as f64);
        let bands = (0..BANDS)
            .map(|b| {
                let lo = (edge(b) / bin_hz).floor() as usize;
                let hi = ((edge(b + 1) / bin_hz).ceil() as usize).max(lo + 1).min(n / 2);
                (lo.min(hi - 1), hi)
            })
            .collect();
        Self {
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            frame: vec![0.0; n],
            fft,
            window,
            hop: (rate * COLUMN_S).round() as usize,
            pending: VecDeque::with_capacity(2 * n),
            bands,
            reference,
        }
    }

    /// Analyse new interleaved stereo samples; every finished column goes to `out`.
    pub fn feed(&mut self, interleaved: &[f32], out: &mut SpectrogramColumns) {
        let n = self.window.len();
        for pair in interleaved.chunks_exact(2) {
            self.pending.push_back(0.5 * (pair[0] + pair[1]));
            if self.pending.len() == n {
                out.push(self.column());
                self.pending.drain(..self.hop.min(n));
            }
        }
    }

    fn column(&mut self) -> [u8; BANDS] {
        for ((f, s), w) in self.frame.iter_mut().zip(&self.pending).zip(&self.window) {
            *f = s * w;
        }
        let mut column = [0u8; BANDS];
        if self.fft.process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch).is_err() {
            return column;
        }
        for (c, &(lo, hi)) in column.iter_mut().zip(&self.bands) {
            let power = self.spectrum[lo..hi].iter().map(|z| z.norm_sqr()).fold(0.0f32, f32::max);
            let db = 10.0 * (power / self.reference).max(1e-12).log10();
            *c = ((db - FLOOR_DB) / -FLOOR_DB * 255.0).clamp(0.0, 255.0) as u8;
        }
        column
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sine lights the band that holds its frequency (near 0 dB) and leaves far bands dark.
    #[test]
    fn a_sine_shows_in_its_band_at_full_scale() {
        let rate = 48_000;
        let mut analyser = SpectrogramAnalyser::new(rate);
        let mut cols = SpectrogramColumns::default();
        let hz = 1_000.0f32;
        let audio: Vec<f32> = (0..rate as usize).flat_map(|i| {
            let v = (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin();
            [v, v]
        }).collect();
        analyser.feed(&audio, &mut cols);
        assert!(cols.added >= 40, "{} columns for 1 s", cols.added);
        let last = cols.columns.back().unwrap();
        let (band, &level) = last.iter().enumerate().max_by_key(|(_, v)| **v).unwrap();
        let band_hz = LOW_HZ * (HIGH_HZ / LOW_HZ).powf((band as f64 + 0.5) / BANDS as f64);
        assert!((band_hz / hz as f64).log2().abs() < 0.15, "loudest band at {band_hz:.0} Hz");
        assert!(level > 240, "a full-scale sine shows at {level}/255");
        assert!(last[0] < 60 && last[BANDS - 1] < 60, "far bands lit: {} {}", last[0], last[BANDS - 1]);
        // Silence is dark; the history is bounded.
        analyser.feed(&vec![0.0; 2 * rate as usize * 6], &mut cols);
        assert_eq!(cols.columns.len(), COLUMNS);
        assert!(cols.columns.back().unwrap().iter().all(|&v| v == 0));
    }
}
