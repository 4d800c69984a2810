//! The stability check of `eval prior`: one long take at the plugin's defaults, cut into 5 s
//! windows, must never be silent, never hold a NaN and never repeat a window exactly.

use super::{render_mono, SR};
use anyhow::Result;
use cantor::engine::silence_watch::QUIET_DBFS;
use cantor::plugin::render::RenderSettings;
use cantor::plugin::SourceFactory;

/// What the long take did.
pub(super) struct Stability {
    /// Every sample finite.
    pub finite: bool,
    /// Level of the quietest 5 s window, dBFS.
    pub quietest: f64,
    /// Consecutive 5 s windows that are identical, sample for sample.
    pub repeats: usize,
    /// Longest stretch and total time below `QUIET_DBFS`, seconds (`quiet_stretches`).
    pub longest_quiet: f64,
    pub total_quiet: f64,
}

/// Render `seconds` at the plugin's defaults from `source` and measure it.
pub(super) fn long_take(source: SourceFactory, seconds: f64) -> Result<Stability> {
    let mono = render_mono(&RenderSettings { seconds, sample_rate: SR, knobs: super::eval_knobs(), ..Default::default() }, source)?;
    let win = (5 * SR) as usize;
    let windows: Vec<&[f32]> = mono.chunks(win).filter(|w| w.len() == win).collect();
    let (longest_quiet, total_quiet) = quiet_stretches(&mono, SR, QUIET_DBFS);
    Ok(Stability {
        finite: mono.iter().all(|v| v.is_finite()),
        quietest: windows.iter().map(|w| window_dbfs(w)).fold(f64::INFINITY, f64::min),
        repeats: windows.windows(2).filter(|p| p[0] == p[1]).count(),
        longest_quiet,
        total_quiet,
    })
}

/// Level of a window of samples, dBFS (mean square; -120 for digital silence).
fn window_dbfs(w: &[f32]) -> f64 {
    10.0 * ((w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32) as f64 + 1e-12).log10()
}

/// The longest stretch and the total time (seconds) that `x` spends below `dbfs`, measured in
/// half-second windows: what a listener hears as the music dropping out.
fn quiet_stretches(x: &[f32], sample_rate: u32, dbfs: f32) -> (f64, f64) {
    let win = (sample_rate / 2).max(1) as usize;
    let quiet: Vec<bool> = x.chunks(win).filter(|w| w.len() == win).map(|w| window_dbfs(w) < dbfs as f64).collect();
    let (mut longest, mut run) = (0usize, 0usize);
    for &q in &quiet {
        run = if q { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let total = quiet.iter().filter(|&&q| q).count();
    (longest as f64 * 0.5, total as f64 * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_stretches_are_measured_in_half_seconds() {
        // 2 s loud, 3 s at -60 dBFS, 1 s loud, 1 s silent (at 1 kHz).
        let mut x = vec![0.1f32; 2000];
        x.extend(vec![0.001f32; 3000]);
        x.extend(vec![0.1f32; 1000]);
        x.extend(vec![0.0f32; 1000]);
        assert_eq!(quiet_stretches(&x, 1000, -45.0), (3.0, 4.0));
    }
}
