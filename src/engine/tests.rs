use super::test_sources::{CountingSource, KnobEchoSource};
use super::*;
use crate::knobs::KnobValues;

/// Wraps a source with random delays, so thread timing differs run to run.
struct Jittery<S> {
    inner: S,
    state: u64,
    max_us: u64,
}

impl<S: FrameSource> FrameSource for Jittery<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
    fn reset(&mut self, seed: u64, position: u64) {
        self.inner.reset(seed, position)
    }
    fn render(&mut self, knobs: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(std::time::Duration::from_micros((self.state >> 33) % (self.max_us + 1)));
        self.inner.render(knobs, out)
    }
}

/// A constant signal, to make any click visible as a step.
struct Dc {
    rate: u32,
    delay_us: u64,
}

impl FrameSource for Dc {
    fn name(&self) -> &str {
        "dc"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn reset(&mut self, _: u64, _: u64) {}
    fn render(&mut self, _: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        std::thread::sleep(std::time::Duration::from_micros(self.delay_us));
        out.extend(std::iter::repeat_n(0.5, 64));
        Ok(())
    }
}

fn block_sizes(seed: u64) -> impl Iterator<Item = usize> {
    let mut s = seed;
    std::iter::from_fn(move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Some(1 + ((s >> 33) % 700) as usize)
    })
}

fn engine_in(mode: ProcessMode, source: Box<dyn FrameSource>, host_rate: u32, ahead_s: f32) -> Engine {
    let shared = Arc::new(EngineShared::default());
    // Width 0 and unity gain: left = right = the source's samples, exactly, so counts can be checked.
    shared.publish_knobs(&KnobValues { ahead: ahead_s, width: 0.0, gain: 1.0, ..Default::default() });
    Engine::start(source, shared, GeneratorConfig { host_rate, max_ahead_s: 1.0, seed: 1, mode }).unwrap()
}

fn engine(source: Box<dyn FrameSource>, host_rate: u32, ahead_s: f32) -> Engine {
    engine_in(ProcessMode::Realtime, source, host_rate, ahead_s)
}

fn offline_engine(source: Box<dyn FrameSource>, host_rate: u32) -> Engine {
    engine_in(ProcessMode::Offline, source, host_rate, 0.02)
}

fn render_offline(e: &mut Engine, frames: usize, seed: u64) -> Vec<f32> {
    let mut out = Vec::new();
    let (mut l, mut r) = (vec![0f32; 700], vec![0f32; 700]);
    for n in block_sizes(seed) {
        if out.len() >= frames {
            break;
        }
        e.reader.process(&mut l[..n], &mut r[..n], ProcessMode::Offline, true);
        assert_eq!(l[..n], r[..n]);
        out.extend_from_slice(&l[..n]);
    }
    out.truncate(frames);
    out
}

#[test]
fn offline_stream_loses_and_duplicates_no_frame() {
    let src = Jittery { inner: CountingSource::new(48_000, 300), state: 3, max_us: 300 };
    // A small ring (10 ms ahead) so the producer wraps and waits thousands of times.
    let mut e = offline_engine(Box::new(src), 48_000);
    let out = render_offline(&mut e, 200_000, 7);
    let fade = (reader::FADE_SECONDS * 48_000.0) as usize;
    for k in fade + 1..out.len() {
        assert_eq!(out[k], out[k - 1] + 1.0, "frame {k}: {} follows {}", out[k], out[k - 1]);
    }
    assert_eq!(out[fade + 1], (fade + 1) as f32);
    assert_eq!(e.shared.underruns(), 0);
    assert_eq!(e.shared.offline_timeouts(), 0);
}

#[test]
fn two_offline_renders_are_bit_identical() {
    let make = |jitter_seed| {
        let src = Jittery { inner: CountingSource::new(24_000, 333), state: jitter_seed, max_us: 500 };
        offline_engine(Box::new(src), 44_100)
    };
    let a = render_offline(&mut make(1), 60_000, 11);
    let b = render_offline(&mut make(2), 60_000, 12);
    assert_eq!(a.len(), 60_000);
    assert!(a == b, "offline renders differ");
}

#[test]
fn resampled_stream_is_continuous() {
    // A 24 kHz counting ramp resampled to 44.1 kHz stays a ramp of slope 24000/44100.
    let mut e = offline_engine(Box::new(CountingSource::new(24_000, 100)), 44_100);
    let out = render_offline(&mut e, 40_000, 3);
    let slope = 24_000.0 / 44_100.0;
    let worst = out[5_000..39_000].windows(2).map(|w| ((w[1] - w[0]) - slope).abs()).fold(0.0, f32::max);
    assert!(worst < 0.05, "ramp slope deviates by {worst}");
}

#[test]
fn underrun_fades_out_and_recovery_fades_in_without_clicks() {
    // The source is slower than real time, so the reader keeps running dry.
    let mut e = engine(Box::new(Dc { rate: 48_000, delay_us: 2_500 }), 48_000, 0.02);
    let (mut l, mut r) = (vec![0f32; 64], vec![0f32; 64]);
    let mut out = Vec::new();
    for _ in 0..3000 {
        e.reader.process(&mut l, &mut r, ProcessMode::Realtime, true);
        out.extend_from_slice(&l);
        std::thread::sleep(std::time::Duration::from_micros(400));
    }
    let underruns = e.shared.underruns();
    assert!(underruns >= 2, "the test should provoke underruns, got {underruns}");
    assert!(out.iter().any(|&v| v > 0.49), "audio never came through");
    // A hard cut of the 0.5 DC would be a 0.5 step; fades keep steps far below that.
    let worst = out.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    assert!(worst < 0.01, "largest step between samples {worst}");
}

#[test]
fn reset_restarts_from_the_requested_position_after_a_fade() {
    let mut e = offline_engine(Box::new(CountingSource::new(48_000, 256)), 48_000);
    let _ = render_offline(&mut e, 10_000, 1);
    e.reader.request_reset(9, 1_000_000);
    let out = render_offline(&mut e, 20_000, 2);
    // After the fade-out of the old audio and the fade-in of the new, the count resumes at 1e6.
    let k = out.iter().position(|&v| v >= 1_000_000.0 - 0.5 && v < 1_100_000.0).expect("new audio arrives");
    let fade = (reader::FADE_SECONDS * 48_000.0) as usize;
    let settled = k + fade + 1;
    assert_eq!(out[settled] - out[settled - 1], 1.0);
    assert!(out[settled] > 1_000_000.0 && out[settled] < 1_000_000.0 + 2.0 * fade as f32 + 2.0, "{}", out[settled]);
}

#[test]
fn offline_renders_with_automation_are_bit_identical() {
    // The knob changes every block, as automation would; thread timing differs between runs.
    let render = |jitter| {
        let mut e = offline_engine(Box::new(KnobEchoSource::new(320, std::time::Duration::ZERO, 300, jitter)), 48_000);
        let (mut l, mut r) = (vec![0f32; 256], vec![0f32; 256]);
        let mut out = Vec::new();
        for (block, n) in block_sizes(5).take(400).enumerate() {
            let n = n.min(256);
            e.shared.publish_knobs(&KnobValues { temperature: 0.1 + (block % 17) as f32 * 0.05, ahead: 0.02, width: 0.0, gain: 1.0, ..Default::default() });
            e.reader.process(&mut l[..n], &mut r[..n], ProcessMode::Offline, true);
            out.extend_from_slice(&l[..n]);
        }
        (out, e.shared.offline_timeouts())
    };
    let (a, timeouts) = render(1);
    let (b, _) = render(99);
    assert_eq!(timeouts, 0);
    assert!(a == b, "automated offline renders differ");
    // The automation is heard: many distinct levels (not one value read ahead of time).
    let mut levels: Vec<u32> = a.iter().map(|v| (v * 1000.0).round() as u32).collect();
    levels.sort_unstable();
    levels.dedup();
    assert!(levels.len() > 10, "only {} distinct levels", levels.len());
}

#[test]
fn a_failing_source_leaves_the_engine_silent_with_a_reason() {
    struct Failing;
    impl FrameSource for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn sample_rate(&self) -> u32 {
            48_000
        }
        fn reset(&mut self, _: u64, _: u64) {}
        fn render(&mut self, _: &KnobSnapshot, _: &mut Vec<f32>) -> Result<(), String> {
            panic!("model exploded")
        }
    }
    let mut e = engine(Box::new(Failing), 48_000, 0.02);
    let t0 = std::time::Instant::now();
    while e.shared.error().is_none() && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (mut l, mut r) = (vec![1f32; 64], vec![1f32; 64]);
    e.reader.process(&mut l, &mut r, ProcessMode::Realtime, true);
    assert!(l.iter().all(|&v| v == 0.0));
    assert!(e.shared.error().unwrap().contains("crashed"));
}
