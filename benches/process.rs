//! Cost of the plugin's audio callback: `process()` per 64-frame block at 48 kHz, in real-time
//! mode, paced at real time (as a host's audio thread would call it), with the transport playing
//! and a parameter automated every block. The generator runs a counting test source, so this
//! measures the callback alone (pops, fades, gain, atomics), not the model.
//!
//! `cargo bench --bench process` (prints median and p99; BENCHMARKS.md quotes it).

use cantor::engine::test_sources::CountingSource;
use cantor::engine::FrameSource;
use cantor::plugin::{Cantor, DirectHost, SourceFactory};
use nice_plug::prelude::ProcessMode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: f32 = 48_000.0;
const BLOCK: usize = 64;
const SECONDS: f64 = 10.0;

fn main() {
    let factory: SourceFactory = Arc::new(|| Ok(Box::new(CountingSource::new(24_000, 320)) as Box<dyn FrameSource>));
    let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory)));
    assert!(host.activate(RATE, BLOCK, ProcessMode::Realtime));
    let t = host.transport_mut();
    t.playing = true;
    t.tempo = Some(120.0);
    t.pos_samples = Some(0);
    let period = Duration::from_secs_f64(BLOCK as f64 / RATE as f64);
    // Let the generator fill its look-ahead before timing.
    std::thread::sleep(Duration::from_millis(500));
    let blocks = (SECONDS * RATE as f64 / BLOCK as f64) as usize;
    let mut times = Vec::with_capacity(blocks);
    let start = Instant::now();
    for i in 0..blocks {
        host.set_param("gain", 0.4 + 0.1 * (i % 4) as f32).unwrap();
        let (elapsed, _) = host.process_with(BLOCK, |process| {
            let t0 = Instant::now();
            process();
            t0.elapsed()
        });
        times.push(elapsed.as_secs_f64() * 1e6);
        // Pace at real time: the next block is due one period after this one was.
        let due = start + period * (i as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let underruns = host.plugin.shared().underruns();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let budget_us = period.as_secs_f64() * 1e6;
    println!("process() per {BLOCK}-frame block at {RATE} Hz, real-time mode, {blocks} blocks paced at real time:");
    println!("  median {:.2} µs ({:.3}% of the block), p99 {:.2} µs ({:.3}%), max {:.1} µs; budget {:.0} µs; underruns {underruns}",
        pct(0.5), 100.0 * pct(0.5) / budget_us, pct(0.99), 100.0 * pct(0.99) / budget_us, times[times.len() - 1], budget_us);
    println!("  goal: p99 under 2% of the block ({:.1} µs): {}", 0.02 * budget_us, if pct(0.99) < 0.02 * budget_us { "met" } else { "MISSED" });
}
