//! Notices when the generated music has faded into near-silence and stays there.
//!
//! An autoregressive prior can fall into silence and never leave: once its whole attention
//! window is quiet, quiet is the likeliest continuation (the corpus has rests and piece endings).
//! A 600 s take of an earlier prior did exactly that after 205 s and stayed at -53 dBFS for 6.5 minutes.
//! The neural source asks this watch after each render and, when it fires, starts a fresh
//! context (see `NeuralSource::render`). Everything here is a pure function of the audio, so
//! an offline bounce still repeats bit for bit.

/// Level (dBFS, of the source's mono output) below which the music counts as silent. Rests in
/// the corpus's rendered pieces sit above it (release tails, other voices); the codec's silence
/// decodes to about -53 dBFS.
pub const QUIET_DBFS: f32 = -45.0;
/// How long the music may stay below `QUIET_DBFS` before the source starts afresh: longer than
/// a fermata or a rest bar at slow tempos, far shorter than a listener's patience.
pub const QUIET_SECONDS: f32 = 2.5;
/// Time constant of the level follower: long enough that a single click does not count as music.
const FOLLOW_SECONDS: f32 = 0.25;

/// A level follower and the time spent below the threshold.
#[derive(Debug, Clone)]
pub struct SilenceWatch {
    /// The follower's per-sample smoothing coefficient (from `FOLLOW_SECONDS`).
    alpha: f32,
    /// `QUIET_DBFS` as a mean square.
    threshold: f32,
    /// `QUIET_SECONDS` in samples.
    quiet_limit: u64,
    /// Smoothed mean square of the output.
    level: f32,
    /// Samples spent with the smoothed level below the threshold.
    quiet_samples: u64,
}

impl SilenceWatch {
    pub fn new(sample_rate: u32) -> Self {
        // Starts "loud": a piece's first half-second of lead-in must not count as a dropout.
        let rate = sample_rate.max(1) as f32;
        Self {
            alpha: 1.0 - (-1.0 / (FOLLOW_SECONDS * rate)).exp(),
            threshold: 10f32.powf(QUIET_DBFS / 10.0),
            quiet_limit: (QUIET_SECONDS * rate).ceil() as u64,
            level: 1.0,
            quiet_samples: 0,
        }
    }

    /// Forget the past (a new piece).
    pub fn reset(&mut self) {
        self.level = 1.0;
        self.quiet_samples = 0;
    }

    /// Feed the samples just generated; true when the music has been silent for
    /// `QUIET_SECONDS` (the watch then starts counting again).
    pub fn push(&mut self, samples: &[f32]) -> bool {
        for &v in samples {
            self.level += self.alpha * (v * v - self.level);
            if self.level < self.threshold {
                self.quiet_samples += 1;
            } else {
                self.quiet_samples = 0;
            }
        }
        let fired = self.quiet_samples >= self.quiet_limit;
        if fired {
            self.quiet_samples = 0;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|i| amp * (i as f32 * 0.05).sin()).collect()
    }

    fn feed(w: &mut SilenceWatch, audio: &[f32]) -> usize {
        audio.chunks(640).filter(|c| w.push(c)).count()
    }

    #[test]
    fn music_with_rests_never_fires() {
        let mut w = SilenceWatch::new(24_000);
        // 60 s of a -20 dBFS tone with a 1.5 s rest (-60 dBFS) every 4 s.
        let mut audio = Vec::new();
        for _ in 0..15 {
            audio.extend(tone(60_000, 0.14));
            audio.extend(tone(36_000, 0.0014));
        }
        assert_eq!(feed(&mut w, &audio), 0);
    }

    #[test]
    fn a_long_near_silence_fires_once_per_stretch() {
        let mut w = SilenceWatch::new(24_000);
        assert_eq!(feed(&mut w, &tone(48_000, 0.1)), 0);
        // 2 s of -53 dBFS: not yet (the follower needs a moment to fall, then 2.5 s count)...
        assert_eq!(feed(&mut w, &tone(48_000, 0.003)), 0);
        // ...by 6 s it has fired, once per 2.5 s of continued silence.
        assert_eq!(feed(&mut w, &tone(96_000, 0.003)), 1);
        assert_eq!(feed(&mut w, &tone(60_000, 0.003)), 1);
        // Music again, then a reset: the count starts over.
        assert_eq!(feed(&mut w, &tone(24_000, 0.1)), 0);
        w.reset();
        assert_eq!(feed(&mut w, &tone(48_000, 0.003)), 0);
    }
}
