//! The plugin's process() driven directly, as a host would: real-time safety (no allocation on
//! the audio thread, counted by a global allocator), silence without a model, gating, offline
//! determinism, and bad host behaviour.

use cantor::engine::source::CountingSource;
use cantor::plugin::{Cantor, SourceFactory, NO_MODEL};
use nice_plug::context::process::SendEventError;
use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

/// Counts allocations made on threads that opted in (the "audio thread" of a test).
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                COUNT.with(|n| n.set(n.get() + 1));
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                COUNT.with(|n| n.set(n.get() + 1));
            }
        });
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct Ctx {
    transport: Transport,
    events: VecDeque<PluginNoteEvent<Cantor>>,
}

impl ProcessContext<Cantor> for Ctx {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute_background(&self, _: ()) {}
    fn execute_gui(&self, _: ()) {}
    fn transport(&self) -> &Transport {
        &self.transport
    }
    fn next_event(&mut self) -> Option<PluginNoteEvent<Cantor>> {
        self.events.pop_front()
    }
    fn try_send_event(&mut self, _: PluginNoteEvent<Cantor>) -> Result<(), (PluginNoteEvent<Cantor>, SendEventError)> {
        Ok(())
    }
    fn set_latency_samples(&self, _: u32) {}
    fn request_restart(&self) {}
    fn set_current_voice_capacity(&self, _: u32) {}
}

struct ActCtx;
impl ActivateContext<Cantor> for ActCtx {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute(&self, _: ()) {}
    fn set_latency_samples(&self, _: u32) {}
    fn set_current_voice_capacity(&self, _: u32) {}
}

fn counting_factory() -> SourceFactory {
    Arc::new(|| Ok(Box::new(CountingSource::new(24_000, 240)) as Box<dyn cantor::engine::FrameSource>))
}

fn activate(plugin: &mut Cantor, rate: f32, max_block: u32, mode: ProcessMode) {
    for (_, p, _) in plugin.params().param_map() {
        unsafe { p._internal_update_smoother(rate, true) }
    }
    let config = BufferConfig { sample_rate: rate, min_buffer_size: None, max_buffer_size: max_block, process_mode: mode };
    assert!(plugin.activate(&Cantor::AUDIO_IO_LAYOUTS[0], &config, &mut ActCtx));
    plugin.reset();
}

/// Process one block into `out` (two channels of at least `n`), counting audio-thread allocations.
fn process(plugin: &mut Cantor, out: &mut [Vec<f32>; 2], n: usize, ctx: &mut Ctx) -> u64 {
    let (l, r) = out.split_at_mut(1);
    let mut buffer = Buffer::default();
    unsafe { buffer.set_slices(n, |s| *s = vec![&mut l[0][..n], &mut r[0][..n]]) };
    let mut aux = AuxiliaryBuffers { inputs: &mut [], outputs: &mut [] };
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    plugin.process(&mut buffer, &mut aux, ctx);
    COUNTING.with(|c| c.set(false));
    COUNT.with(|c| c.get())
}

fn playing(rate: f32) -> Ctx {
    let mut transport = Transport::new(rate);
    transport.playing = true;
    transport.tempo = Some(120.0);
    transport.pos_samples = Some(0);
    Ctx { transport, events: VecDeque::new() }
}

#[test]
fn process_never_allocates_for_any_block_size_or_sample_rate() {
    for rate in [22_050.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0] {
        let mut plugin = Cantor::with_source_factory(Some(counting_factory()));
        activate(&mut plugin, rate, 8192, ProcessMode::Realtime);
        let mut out = [vec![0f32; 8192], vec![0f32; 8192]];
        let mut ctx = playing(rate);
        let sizes = [1usize, 7, 64, 512, 4096, 8192, 3, 100, 2048, 1, 333];
        for (i, &n) in sizes.iter().cycle().take(60).enumerate() {
            ctx.transport.playing = i % 20 != 19; // stop and restart the transport now and then
            let allocs = process(&mut plugin, &mut out, n, &mut ctx);
            assert_eq!(allocs, 0, "{n}-frame block at {rate} Hz allocated {allocs} times");
            if i % 10 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5)); // let the generator run
            }
        }
        assert!(out[0].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn without_a_model_the_plugin_is_silent_and_says_why() {
    let mut plugin = Cantor::default();
    // Processing before activation is tolerated.
    let mut out = [vec![1f32; 256], vec![1f32; 256]];
    let mut ctx = playing(48_000.0);
    process(&mut plugin, &mut out, 256, &mut ctx);
    assert!(out.iter().all(|c| c.iter().all(|&v| v == 0.0)));
    activate(&mut plugin, 48_000.0, 512, ProcessMode::Realtime);
    out = [vec![1f32; 256], vec![1f32; 256]];
    process(&mut plugin, &mut out, 256, &mut ctx);
    assert!(out.iter().all(|c| c.iter().all(|&v| v == 0.0)));
    assert_eq!(plugin.shared().error().as_deref(), Some(NO_MODEL));
    // Zero-length blocks and absurd rates do not panic.
    process(&mut plugin, &mut out, 0, &mut ctx);
    activate(&mut plugin, f32::NAN, 512, ProcessMode::Realtime);
    process(&mut plugin, &mut out, 64, &mut ctx);
    assert!(plugin.shared().error().unwrap().contains("sample rate"));
}

fn offline_render(blocks: usize) -> Vec<f32> {
    let mut plugin = Cantor::with_source_factory(Some(counting_factory()));
    activate(&mut plugin, 44_100.0, 1024, ProcessMode::Offline);
    let mut ctx = playing(44_100.0);
    let mut out = [vec![0f32; 1024], vec![0f32; 1024]];
    let mut all = Vec::new();
    for i in 0..blocks {
        let n = [1024, 17, 512, 999][i % 4];
        ctx.transport.pos_samples = Some(all.len() as i64);
        process(&mut plugin, &mut out, n, &mut ctx);
        all.extend_from_slice(&out[0][..n]);
    }
    all
}

#[test]
fn offline_bounces_are_bit_identical_and_gapless() {
    let a = offline_render(40);
    let b = offline_render(40);
    assert!(a == b, "two offline bounces differ");
    // The counting source resampled to 44.1 kHz rises steadily once faded in: no gap anywhere.
    let settled = &a[2_000..];
    assert!(settled.windows(2).all(|w| w[1] > w[0]), "the bounce has a gap or a repeat");
}

#[test]
fn while_note_held_mode_gates_the_output() {
    let mut plugin = Cantor::with_source_factory(Some(counting_factory()));
    let map = plugin.params().param_map();
    let (_, ptr, _) = map.iter().find(|(id, _, _)| id == "run_mode").expect("run_mode parameter");
    // RunMode::NoteHeld is the last variant: normalised value 1.
    unsafe { ptr._internal_set_normalized_value(1.0) };
    activate(&mut plugin, 48_000.0, 512, ProcessMode::Offline);
    let mut ctx = playing(48_000.0);
    let mut out = [vec![0f32; 512], vec![0f32; 512]];
    process(&mut plugin, &mut out, 512, &mut ctx);
    assert!(out[0].iter().all(|&v| v == 0.0), "sound without a note");
    ctx.events.push_back(NoteEvent::NoteOn {
        timing: 0,
        voice_id: VoiceID::Wildcard,
        channel: Channel::Number(0),
        key: Key::Number(62),
        velocity: 1.0,
    });
    for _ in 0..4 {
        process(&mut plugin, &mut out, 512, &mut ctx);
    }
    assert!(out[0].iter().any(|&v| v != 0.0), "silence while a note is held");
}

#[test]
fn the_allocation_counter_sees_allocations() {
    // Guards the no-allocation test above against a counter that counts nothing.
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let v = std::hint::black_box(vec![1u8; 100]);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(COUNT.with(|c| c.get()) >= 1);
}
