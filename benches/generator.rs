//! Speed of the whole generator on one thread: prior step(s), streaming decoder, resampling to
//! 48 kHz stereo, at the shipped sizes with q8_0 weights; then the hierarchy the plugin ships
//! (score prior, performer, decoder). Random weights: the cost of a step does not depend on what
//! the model has learned (the score prior's tunes do: an untrained one writes denser bars).
//!
//! `cargo bench --bench generator` (prints the real-time factor and compute per frame;
//! BENCHMARKS.md quotes it).

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cantor::engine::neural_source::NeuralSource;
use cantor::engine::{FrameSource, KnobSnapshot};
use cantor::knobs::{KnobValues, KNOBS};
use cantor::model::codec::CodecConfig;
use cantor::model::pair::{random_model_files, ModelPair};
use cantor::model::prior::{self, Prior, PriorConfig};
use cantor::model::weights;
use cantor::plugin::neural_factory;
use cantor::plugin::render::{render, RenderSettings};
use std::sync::Arc;
use std::time::Instant;

/// The shipped configurations, random weights, stored and loaded as the shipped files are.
fn shipped_size_model() -> ModelPair {
    let (c, p) = random_model_files(&CodecConfig::default(), &PriorConfig::default(), None, Some(GgmlDType::Q8_0)).unwrap();
    println!("model files: codec {:.1} MB, prior {:.1} MB (q8_0)", c.len() as f64 / 1e6, p.len() as f64 / 1e6);
    ModelPair::from_bytes(&c, &p).unwrap()
}

/// Median and p99 milliseconds of one prior step for a configuration, q8_0: one row, or the
/// two rows of guidance (`pair`), on the hand-written path (`cpu_step`) or candle's tensors.
fn step_cost(layers: usize, d: usize, pair: bool, fast: bool) -> (f64, f64, usize) {
    let vm = VarMap::new();
    let cfg = PriorConfig { n_layers: layers, d_model: d, n_heads: d / 64, mlp: d * 3, ..PriorConfig::default() };
    Prior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let bytes = weights::to_bytes_quantized(prior::KIND, &cfg, &weights::var_tensors(&vm), Some(DType::F16), Some((&Prior::is_quantizable, GgmlDType::Q8_0))).unwrap();
    let mut prior = Prior::from_bytes(&bytes, &Device::Cpu).unwrap();
    prior.set_fast_path(fast).unwrap();
    let params: usize = vm.data().lock().unwrap().values().map(|v| v.elem_count()).sum();
    let (mut a, mut b) = (prior.new_state(1, &Device::Cpu).unwrap(), prior.new_state(1, &Device::Cpu).unwrap());
    let tokens = vec![3u32; cfg.n_levels];
    let cond = vec![0.1f32; prior::conditioning::COND_DIM];
    let mut times = Vec::new();
    for i in 0..cfg.window + 400 {
        let t0 = Instant::now();
        if pair {
            prior.step_pair(&mut a, &mut b, [(&tokens, &cond), (&tokens, &cond)]).unwrap();
        } else {
            prior.step(&mut a, &tokens, &cond).unwrap();
        }
        if i >= cfg.window {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[(times.len() - 1) * 99 / 100], params)
}

fn main() {
    // One thread, as in the plugin (set before candle starts its thread pool).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    println!("prior step alone, q8_0, full window of context (median / p99 ms; params):");
    for (layers, d) in [(4, 256), (3, 256), (6, 256), (4, 384)] {
        for pair in [false, true] {
            let rows = if pair { "guidance pair" } else { "one row" };
            let (tm, tp, params) = step_cost(layers, d, pair, false);
            let (fm, fp, _) = step_cost(layers, d, pair, true);
            println!(
                "  {layers} layers x {d} ({:.1}M params), {rows}: candle tensors {tm:.3} / {tp:.3} ms, hand-written {fm:.3} / {fp:.3} ms ({:.1}x)",
                params as f64 / 1e6,
                tm / fm
            );
        }
    }
    if std::env::args().any(|a| a == "steps") {
        return; // `cargo bench --bench generator -- steps`: the step costs only
    }
    let model = Arc::new(shipped_size_model());
    let frame_rate = model.prior.cfg.frame_rate;

    // Where a frame's time goes: the guided, sampled prior step, and the streaming decoder.
    {
        use cantor::model::codec::DecoderState;
        use cantor::model::prior::conditioning::{GridPosition, Knobs};
        use cantor::model::prior::sampling::Sampling;
        use cantor::model::prior::stream::PriorStream;
        let mut stream = PriorStream::new(&model.prior, &Device::Cpu, 1).unwrap();
        let mut decoder = DecoderState::new(&model.codec.decoder);
        let fast = model.codec.cpu_decoder.as_ref().unwrap();
        let mut fast_state = fast.new_state();
        let (mut fast_decodes, mut audio) = (Vec::new(), Vec::new());
        // The neural source's way: the frames of a render call (2) decoded side by side.
        let (mut pair_state, mut pending, mut pair_decodes, mut pair_audio) = (fast.new_state(), Vec::new(), Vec::new(), Vec::new());
        let knobs = Knobs { styles: Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), instrument: Some(1), key: Some((2, 0)), bpm: Some(110.0) };
        let sampling = Sampling { temperature: 0.9, top_k: 0, top_p: 0.95, guidance: 1.5, repeat: 0.5 };
        let (mut steps, mut decodes) = (Vec::new(), Vec::new());
        for i in 0..800 {
            let grid = GridPosition { beats: i as f64 * 0.02, beats_per_bar: 4, phrase: true };
            let t0 = Instant::now();
            let frame = stream.step(&model.prior, &knobs, &grid, &sampling).unwrap();
            steps.push(t0.elapsed().as_secs_f64() * 1e3);
            if let Some(f) = frame {
                let codes = Tensor::from_slice(&f, (1, f.len()), &Device::Cpu).unwrap();
                let t0 = Instant::now();
                decoder.push_codes(&model.codec.decoder, &model.codec.quantizer, &codes).unwrap();
                decodes.push(t0.elapsed().as_secs_f64() * 1e3);
                let t0 = Instant::now();
                fast.push_frames(&mut fast_state, &f, &mut audio).unwrap();
                fast_decodes.push(t0.elapsed().as_secs_f64() * 1e3);
                pending.extend_from_slice(&f);
                if pending.len() == 2 * f.len() {
                    let t0 = Instant::now();
                    fast.push_frames(&mut pair_state, &pending, &mut pair_audio).unwrap();
                    pair_decodes.push(t0.elapsed().as_secs_f64() * 1e3 / 2.0);
                    pending.clear();
                }
            }
        }
        assert!(audio.starts_with(&pair_audio), "frames decoded in pairs must give the same audio as one at a time");
        for v in [&mut steps, &mut decodes, &mut fast_decodes, &mut pair_decodes] {
            v.sort_by(f64::total_cmp);
        }
        let p99 = |v: &Vec<f64>| v[(v.len() - 1) * 99 / 100];
        println!("per frame: prior step (guided, sampled) median {:.3} ms, p99 {:.3} ms", steps[steps.len() / 2], p99(&steps));
        println!(
            "per frame, decoding 1 frame at a time: candle tensors median {:.3} / p99 {:.3} ms, hand-written median {:.3} / p99 {:.3} ms",
            decodes[decodes.len() / 2],
            p99(&decodes),
            fast_decodes[fast_decodes.len() / 2],
            p99(&fast_decodes)
        );
        println!("per frame, hand-written, 2 frames per call (as the neural source renders): median {:.3} / p99 {:.3} ms", pair_decodes[pair_decodes.len() / 2], p99(&pair_decodes));
    }

    // Compute per render call (2 frames) of the neural source alone.
    let knobs = KnobSnapshot { knobs: KnobValues { instrument: 1, temperature: 0.9, guidance: 1.5, repeat: 0.5, ..Default::default() }, tempo_bpm: 110.0, beats_per_bar: 4, beat_quarters: 1.0 };
    if std::env::args().any(|a| a == "notes") {
        // `cargo bench --bench generator -- notes`: the hierarchy's cost and the note latency only.
        return note_latency(hierarchy(&knobs, frame_rate));
    }
    let cost = FrameCost::measure(model.clone(), &knobs, frame_rate);
    println!("prior + decoder per frame ({:.2} ms of audio): {}", 1e3 / frame_rate, cost.line());

    // End to end through the plugin's offline path: generator thread, resampling to 48 kHz,
    // stereo widening, the audio-side reader.
    let settings = RenderSettings { seconds: 20.0, ..Default::default() };
    let t0 = Instant::now();
    let audio = render(&settings, neural_factory(model), |_| {}).unwrap();
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(audio.len(), 20 * 48_000 * 2);
    println!("end to end (cantor render, 20 s at 48 kHz stereo): {:.2} s -> {:.1}x real time (goal 20x, target 10x)", took, 20.0 / took);

    let model = hierarchy(&knobs, frame_rate);
    knob_latency(cost.median * 1e-3);
    note_latency(model);
}

/// Compute per frame of a neural source's render calls, over 600 calls (1,200 frames = 16 s,
/// more than three attention windows), and the note events it played meanwhile.
struct FrameCost {
    median: f64,
    p99: f64,
    max: f64,
    budget: f64,
    notes: usize,
}

impl FrameCost {
    fn measure(model: Arc<ModelPair>, knobs: &KnobSnapshot, frame_rate: f64) -> Self {
        let mut source = NeuralSource::new(model).unwrap();
        source.reset(1, 0);
        let (mut out, mut per_frame, mut notes) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..600 {
            out.clear();
            let t0 = Instant::now();
            source.render(knobs, &mut out).unwrap();
            let frames = out.len() as f64 / 320.0;
            if frames > 0.0 {
                per_frame.push(t0.elapsed().as_secs_f64() * 1e3 / frames);
            }
            source.take_notes(&mut notes);
        }
        per_frame.sort_by(f64::total_cmp);
        let q = |p: f64| per_frame[((per_frame.len() - 1) as f64 * p).round() as usize];
        Self { median: q(0.5), p99: q(0.99), max: per_frame[per_frame.len() - 1], budget: 1e3 / frame_rate, notes: notes.len() }
    }

    fn line(&self) -> String {
        format!("median {:.3} ms, p99 {:.3} ms, max {:.3} ms -> {:.1}x real time at the median", self.median, self.p99, self.max, self.budget / self.median)
    }
}

/// The shipped hierarchy's cost: score prior, performer (the prior with the note features) and
/// decoder per frame in the neural source, then end to end through the plugin's offline path.
fn hierarchy(knobs: &KnobSnapshot, frame_rate: f64) -> Arc<ModelPair> {
    use cantor::model::score::{ScoreConfig, ScorePrior};
    let (c, p) = random_model_files(&CodecConfig::default(), &PriorConfig { notes: true, ..PriorConfig::default() }, None, Some(GgmlDType::Q8_0)).unwrap();
    let vm = VarMap::new();
    let cfg = ScoreConfig::default();
    ScorePrior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let score = weights::to_bytes_quantized(cantor::model::score::KIND, &cfg, &weights::var_tensors(&vm), Some(DType::F16), Some((&ScorePrior::is_quantizable, GgmlDType::Q8_0))).unwrap();
    let model = Arc::new(ModelPair::from_bytes(&c, &p).unwrap().with_score(&score).unwrap());
    let cost = FrameCost::measure(model.clone(), knobs, frame_rate);
    println!("hierarchy: score prior + performer + decoder per frame: {} ({} note events in 16 s)", cost.line(), cost.notes);
    let settings = RenderSettings { seconds: 20.0, ..Default::default() };
    let t0 = Instant::now();
    render(&settings, neural_factory(model.clone()), |_| {}).unwrap();
    let took = t0.elapsed().as_secs_f64();
    println!("hierarchy end to end (cantor render, 20 s at 48 kHz stereo): {:.2} s -> {:.1}x real time (target 20x, goal 40x)", took, 20.0 / took);
    model
}

/// Source "play my notes" at the lowest look-ahead, in real time through the plugin (a host
/// calling `process` every 256 frames at 48 kHz, paced by the clock): a note every 1.5 s, held
/// 0.2 s; the latency is from the note-on's frame to the first sample of its sound (the output
/// is silent between notes).
fn note_latency(model: Arc<ModelPair>) {
    use cantor::plugin::{Cantor, DirectHost};
    use nice_plug::midi::{Channel, Key, VoiceID};
    use nice_plug::prelude::{NoteEvent, ProcessMode};
    let mut host = DirectHost::new(Cantor::with_source_factory(Some(neural_factory(model))));
    let (rate, block) = (48_000usize, 256usize);
    assert!(host.activate(rate as f32, block, ProcessMode::Realtime));
    let (lowest, _) = KNOBS.ahead.plain_range();
    for (id, v) in [("ahead", lowest), ("source", 1.0), ("width", 0.0), ("gain", 1.0)] {
        host.set_param(id, v).unwrap();
    }
    let t = host.transport_mut();
    (t.playing, t.tempo, t.pos_samples) = (true, Some(120.0), Some(0));
    let event = |on: bool, timing: u32, key: u8| {
        let (voice_id, channel, key) = (VoiceID::Wildcard, Channel::Number(0), Key::Number(key));
        if on { NoteEvent::NoteOn { timing, voice_id, channel, key, velocity: 0.8 } } else { NoteEvent::NoteOff { timing, voice_id, channel, key, velocity: 0.0 } }
    };
    let start = Instant::now();
    let (mut pressed, mut latencies, mut key) = (None::<usize>, Vec::new(), 60u8);
    for i in 0..rate * 20 / block {
        let due = std::time::Duration::from_secs_f64((i * block) as f64 / rate as f64);
        while start.elapsed() < due {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let frame = i * block;
        let phase = frame % (rate * 3 / 2);
        if frame >= rate && phase < block {
            key = 60 + (frame / (rate * 3 / 2) % 12) as u8;
            host.push_event(event(true, 17, key));
            pressed = Some(frame + 17);
        } else if frame >= rate && (rate / 5..rate / 5 + block).contains(&phase) {
            host.push_event(event(false, 0, key));
        }
        let out = host.process(block);
        if let Some(at) = pressed {
            if let Some(j) = out[0].iter().position(|v| *v != 0.0) {
                latencies.push((frame + j).saturating_sub(at) as f64 * 1e3 / rate as f64);
                pressed = None;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "note latency (play my notes) at the lowest look-ahead ({:.0} ms), {} notes: median {:.0} ms, max {:.0} ms (reported to the host: {:.0} ms; target 50 ms); underruns {}",
        lowest * 1e3,
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        host.latency() as f64 * 1e3 / rate as f64,
        host.plugin.shared().underruns()
    );
}

/// Knob latency in real time at the default look-ahead: the host calls `process` every 256
/// frames at 48 kHz, paced by the clock; the knob flips every 0.5 s; the latency is the audio
/// between the flip and the first sample at the new level, plus the prior's one-frame delay
/// pattern (which an echo source does not have).
fn knob_latency(compute_per_frame_s: f64) {
    use cantor::engine::neural_source::FRAMES_PER_RENDER;
    use cantor::engine::{Engine, EngineShared, GeneratorConfig, ProcessMode};
    let hop = cantor::model::codec::CodecConfig::default().hop();
    let compute = std::time::Duration::from_secs_f64(compute_per_frame_s * FRAMES_PER_RENDER as f64);
    // The neural source's render steps, spending its measured compute per step.
    let source = cantor::engine::test_sources::KnobEchoSource::new(FRAMES_PER_RENDER * hop, compute, 0, 1);
    let shared = Arc::new(EngineShared::default());
    let knobs = |level| KnobValues { width: 0.0, gain: 1.0, temperature: level, ..Default::default() };
    shared.publish_knobs(&knobs(0.25));
    let mut engine = Engine::start(Box::new(source), shared.clone(), GeneratorConfig { host_rate: 48_000, max_ahead_s: 2.0, seed: 1, mode: ProcessMode::Realtime }).unwrap();
    let block = 256;
    let (mut l, mut r) = (vec![0f32; block], vec![0f32; block]);
    let start = Instant::now();
    let (mut level, mut flipped_at, mut latencies) = (0.25f32, None::<usize>, Vec::new());
    for i in 0..48_000 * 12 / block {
        let due = std::time::Duration::from_secs_f64((i * block) as f64 / 48_000.0);
        while start.elapsed() < due {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        // A flip every 0.5 s after a 1 s warm-up (only once the last one was heard).
        if i * block >= 48_000 && (i * block) % 24_000 < block && flipped_at.is_none() {
            level = if level == 0.25 { 0.75 } else { 0.25 };
            shared.publish_knobs(&knobs(level));
            flipped_at = Some(i * block);
        }
        engine.reader.process(&mut l, &mut r, ProcessMode::Realtime, true);
        if let Some(at) = flipped_at {
            if let Some(j) = l.iter().position(|&v| (v - level).abs() < 0.1) {
                latencies.push((i * block + j - at) as f64 / 48.0);
                flipped_at = None;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let frame_ms = 1e3 * hop as f64 / 24_000.0;
    println!(
        "knob latency at the default look-ahead ({:.0} ms), {} changes: median {:.0} ms, max {:.0} ms (each + {frame_ms:.1} ms delay pattern = {:.0} / {:.0} ms; target 150 ms); underruns {}",
        KNOBS.ahead.default * 1e3,
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies[latencies.len() / 2] + frame_ms,
        latencies[latencies.len() - 1] + frame_ms,
        shared.underruns()
    );
}
