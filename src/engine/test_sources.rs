//! Sources that stand in for a model where what is tested is the engine, not the music
//! (feature `test-support`, which this crate's own tests and benches turn on; never in the
//! plugin).

use super::{FrameSource, KnobSnapshot};

/// A source that counts: sample i is `(position + i) as f32`, exactly representable below 2^24.
/// Lets tests check that no frame is lost, duplicated or reordered between the threads.
pub struct CountingSource {
    pub rate: u32,
    pub block: usize,
    next: u64,
}

impl CountingSource {
    pub fn new(rate: u32, block: usize) -> Self {
        Self { rate, block, next: 0 }
    }
}

impl FrameSource for CountingSource {
    fn name(&self) -> &str {
        "counting test source"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn reset(&mut self, _seed: u64, position: u64) {
        self.next = position;
    }
    fn render(&mut self, _knobs: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        out.extend((0..self.block as u64).map(|i| (self.next + i) as f32));
        self.next += self.block as u64;
        Ok(())
    }
}

/// A source that plays its temperature knob as its level, `block` samples at 24 kHz per render,
/// after working for `compute` plus a pseudo-random pause of up to `jitter_us`: shows which knob
/// value each output sample saw, and when a knob change reaches the output.
pub struct KnobEchoSource {
    pub block: usize,
    pub compute: std::time::Duration,
    pub jitter_us: u64,
    state: u64,
}

impl KnobEchoSource {
    pub fn new(block: usize, compute: std::time::Duration, jitter_us: u64, seed: u64) -> Self {
        Self { block, compute, jitter_us, state: seed }
    }
}

impl FrameSource for KnobEchoSource {
    fn name(&self) -> &str {
        "knob echo test source"
    }
    fn sample_rate(&self) -> u32 {
        24_000
    }
    fn reset(&mut self, _: u64, _: u64) {}
    fn render(&mut self, knobs: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        // Busy, as a model is (a sleep would hand the core back).
        let t0 = std::time::Instant::now();
        while t0.elapsed() < self.compute {
            std::hint::spin_loop();
        }
        if self.jitter_us > 0 {
            self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(std::time::Duration::from_micros((self.state >> 33) % self.jitter_us));
        }
        out.extend(std::iter::repeat_n(knobs.knobs.temperature, self.block));
        Ok(())
    }
}
