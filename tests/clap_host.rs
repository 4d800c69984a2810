//! Host-level test: loads the real `.clap` bundle with the `clack-host` crate, checks its
//! descriptor and ports, enumerates and automates parameters, sends notes, processes 10 s at
//! 48 kHz in 64-frame blocks on an audio thread, saves, restores and rejects states, then plays a
//! note with Source on "play my notes" at the pace of the audio clock and checks that it is heard
//! after the plugin's latency and nothing around it.
//! The bundle is built first with `assert_process_allocs`, so any allocation inside the real
//! wrapper's process() aborts this test.
//!
//! clack-host 0.2.0 notes (checked against its sources):
//! * No `PluginBundle` exists in 0.2.0. The type is `PluginEntry`, and its loader is
//!   `unsafe fn PluginEntry::load<P: AsRef<OsStr>>(path: P) -> Result<PluginEntry, PluginEntryError>`.
//!   This needs clack-host's default feature "libloading". On Linux, the .clap file is the .so itself.
//! * Host extensions are all OPTIONAL. The host's `get_extension` is `HostHandlers::declare_extensions`,
//!   and an extension that is not registered gives NULL to the plugin. nice-plug 0.4.2 asks for
//!   gui, latency, params, voice-info, thread-check and track-info, and handles NULL for each one.
//!   It never asks for host log, state or note-ports. Without host params, `request_flush` only
//!   triggers a nice_debug_assert_failure (GUI parameter edits), so we implement HostParams anyway.
//!   It is short. Without thread-check, nice-plug treats the thread that created the instance as
//!   the main thread. So create, query and load state on the test thread, and call process() from
//!   another thread (as below). Otherwise nice-plug runs its main-thread tasks inline inside process().
//! * BUG in clack-extensions 0.2.0: `HostNotePorts` is built as `RawExtensionImplementation::new(&&clap_host_note_ports{..})`
//!   (note the double `&`). A plugin that calls it reads a pointer as a function pointer, which
//!   is UB. Do NOT register HostNotePorts. Reading the PLUGIN side (`PluginNotePorts`) is fine.
//! * Handler callbacks take `&self` in 0.2.0 (the upstream cpal example on GitHub uses a newer `&mut self`
//!   API). So keep mutable host state in Cell and atomics.
//! * Extension handles (PluginParams, PluginState, ...) are `Copy` and have NO lifetime. They must
//!   not be used after the PluginInstance is dropped.
//! * Drop order: stop_processing -> `instance.deactivate(stopped_processor)` -> drop(instance) ->
//!   drop(entry). Each PluginInstance clones the PluginEntry, so dropping `entry` first is memory-safe.
//!   Borrowck forbids it anyway while a factory or descriptor borrowed from it is alive.
//!   If the instance is dropped while an audio processor still exists, clack LEAKS the plugin
//!   (it never calls destroy). If the processor was dropped, the instance's Drop deactivates,
//!   then destroys.
//! * Param values for nice-plug: CLAP min=0 and max=step_count (or 1 for continuous params). So the
//!   values are normalized (x step_count), not plain. get_value returns the same scale.
//! * Shortcuts: `InputEvents::empty()`, `OutputEvents::void()`, `InputAudioBuffers::empty()`, and
//!   `None` for steady_time/transport are all valid `process()` arguments.

mod bundled;

use std::cell::Cell;
use std::error::Error;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clack_host::events::event_types::{
    NoteOffEvent, NoteOnEvent, ParamValueEvent, TransportEvent, TransportFlags,
};
use clack_host::events::spaces::CoreEventSpace;
use clack_host::events::EventFlags;
use clack_host::prelude::*; // PluginEntry, PluginInstance, HostHandlers, EventBuffer, Pckn, ClapId, AudioPorts, ...
use clack_host::utils::{BeatTime, SecondsTime};

use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::log::{HostLog, HostLogImpl, LogSeverity};
use clack_extensions::note_ports::{NotePortInfoBuffer, PluginNotePorts};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamInfoBuffer,
    ParamInfoFlags, ParamRescanFlags, PluginParams,
};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};

const PLUGIN_ID: &CStr = c"org.cantor.cantor";
const SAMPLE_RATE: f64 = 48_000.0;
const BLOCK: usize = 64;
const SECONDS: usize = 10;
const TEMPO: f64 = 120.0;

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

/// `[thread-safe]` host data: must be Send + Sync.
struct HostShared {
    callback_requested: Arc<AtomicBool>,
    restart_requested: AtomicBool,
    process_requested: AtomicBool,
    flush_requested: AtomicBool,
}

impl HostShared {
    fn new(callback_requested: Arc<AtomicBool>) -> Self {
        Self {
            callback_requested,
            restart_requested: AtomicBool::new(false),
            process_requested: AtomicBool::new(false),
            flush_requested: AtomicBool::new(false),
        }
    }
}

impl<'a> SharedHandler<'a> for HostShared {
    // Optional: `fn initializing(&self, instance: InitializingPluginHandle<'a>)` may query extensions.
    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::SeqCst);
    }
    fn request_process(&self) {
        self.process_requested.store(true, Ordering::SeqCst);
    }
    fn request_callback(&self) {
        // The host must then call `instance.call_on_main_thread_callback()` on the main thread.
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

impl HostLogImpl for HostShared {
    fn log(&self, severity: LogSeverity, message: &str) {
        eprintln!("[plugin {severity}] {message}");
    }
}

impl HostParamsImplShared for HostShared {
    fn request_flush(&self) {
        // A real host would call PluginParams::flush (inactive) / flush_active, or just process().
        self.flush_requested.store(true, Ordering::SeqCst);
    }
}

/// `[main-thread]` host data (needs neither Send nor Sync). All callbacks take `&self`.
#[derive(Default)]
struct HostMainThread {
    param_rescans: Cell<u32>,
    param_clears: Cell<u32>,
    state_dirty: Cell<bool>,
}

impl<'a> MainThreadHandler<'a> for HostMainThread {
    // Optional: `fn initialized(&self, instance: InitializedPluginHandle<'a>)`.
}

impl HostParamsImplMainThread for HostMainThread {
    fn rescan(&self, _flags: ParamRescanFlags) {
        self.param_rescans.set(self.param_rescans.get() + 1);
    }
    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {
        self.param_clears.set(self.param_clears.get() + 1);
    }
}

impl HostStateImpl for HostMainThread {
    fn mark_dirty(&self) {
        self.state_dirty.set(true);
    }
}

struct CantorTestHost;

impl HostHandlers for CantorTestHost {
    type Shared<'a> = HostShared;
    type MainThread<'a> = HostMainThread;
    type AudioProcessor<'a> = (); // `impl AudioProcessorHandler<'_> for ()` is provided by clack-host

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        // All optional. Do NOT add HostNotePorts (0.2.0 bug, see notes).
        builder
            .register::<HostLog>()
            .register::<HostParams>()
            .register::<HostState>();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// TransportEvent has no constructor in 0.2.0: build it field by field (all fields are pub).
fn transport_at(sample: u64) -> TransportEvent {
    let seconds = sample as f64 / SAMPLE_RATE;
    let beats = seconds * TEMPO / 60.0;
    let bar = (beats / 4.0).floor();
    TransportEvent {
        header: EventHeader::new_core(0, EventFlags::empty()),
        flags: TransportFlags::HAS_TEMPO
            | TransportFlags::HAS_BEATS_TIMELINE
            | TransportFlags::HAS_SECONDS_TIMELINE
            | TransportFlags::HAS_TIME_SIGNATURE
            | TransportFlags::IS_PLAYING,
        song_pos_beats: BeatTime::from_float(beats),
        song_pos_seconds: SecondsTime::from_float(seconds),
        tempo: TEMPO,
        tempo_inc: 0.0,
        loop_start_beats: BeatTime::default(),
        loop_end_beats: BeatTime::default(),
        loop_start_seconds: SecondsTime::default(),
        loop_end_seconds: SecondsTime::default(),
        bar_start: BeatTime::from_float(bar * 4.0),
        bar_number: bar as i32,
        time_signature_numerator: 4,
        time_signature_denominator: 4,
    }
}

struct ParamSummary {
    id: ClapId,
    name: String,
    min: f64,
    max: f64,
    stepped: bool,
}

struct Rendered {
    processor: StoppedPluginAudioProcessor<CantorTestHost>,
    left: Vec<f32>,
    right: Vec<f32>,
    output_events: usize,
    /// The frame of each note-on the plugin sent (MIDI out).
    note_ons: Vec<u64>,
}

/// The audio thread: start processing, render n_blocks x 64 frames (0 inputs, 1 stereo f32 output)
/// with the transport playing from 0, `events` adding each block's input events, stop processing,
/// and hand the stopped processor back for deactivation on the main thread. `paced`: each block
/// waits for its time on the audio clock, as a DAW's audio thread does; otherwise as fast as it goes.
fn render(
    stopped: StoppedPluginAudioProcessor<CantorTestHost>,
    n_blocks: usize,
    paced: bool,
    mut events: impl FnMut(usize, &mut EventBuffer),
) -> Result<Rendered, PluginInstanceError> {
    // ProcessingStartError<H> -> PluginInstanceError via From, so `?` works.
    let mut processor = stopped.start_processing()?;

    let mut out_channels = vec![vec![0.0f32; BLOCK]; 2];
    let mut output_ports = AudioPorts::with_capacity(2, 1); // (total channels, ports)
    let input_audio = InputAudioBuffers::empty(); // 0 input ports
    let mut in_events = EventBuffer::with_capacity(16);
    let mut out_events = EventBuffer::with_capacity(256);

    let mut left = Vec::with_capacity(n_blocks * BLOCK);
    let mut right = Vec::with_capacity(n_blocks * BLOCK);
    let mut output_events = 0usize;
    let mut note_ons = Vec::new();
    let started = std::time::Instant::now();

    for block in 0..n_blocks {
        let start = (block * BLOCK) as u64;
        if paced {
            let due = Duration::from_secs_f64(start as f64 / SAMPLE_RATE);
            while started.elapsed() < due {
                std::thread::sleep(Duration::from_micros(200));
            }
        }

        // Input events must be sorted by time (EventBuffer::sort() exists if needed).
        in_events.clear();
        events(block, &mut in_events);
        out_events.clear();

        for ch in out_channels.iter_mut() {
            ch.fill(0.0);
        }
        let transport = transport_at(start);

        // Rebuilt every block: it borrows `output_ports` and `out_channels` mutably.
        let mut output_audio = output_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                out_channels.iter_mut().map(|ch| ch.as_mut_slice()),
            ),
        }]);

        // frames_count = min over all input/output channel lengths (= 64 here).
        let _status: ProcessStatus = processor.process(
            &input_audio,
            &mut output_audio,
            &in_events.as_input(),
            &mut out_events.as_output(),
            Some(start),      // steady_time (None -> -1)
            Some(&transport), // or None -> NULL transport
        )?;

        output_events += out_events.len() as usize;
        for e in out_events.iter() {
            if let Some(CoreEventSpace::NoteOn(_)) = e.as_core_event() {
                note_ons.push(start + e.header().time() as u64);
            }
        }
        left.extend_from_slice(&out_channels[0]);
        right.extend_from_slice(&out_channels[1]);
    }

    let processor = processor.stop_processing();
    Ok(Rendered {
        processor,
        left,
        right,
        output_events,
        note_ons,
    })
}

/// Run `render` on an audio thread while this (main) thread services the plugin's
/// request_callback(), and hand back what it rendered.
fn render_on_audio_thread(
    instance: &mut PluginInstance<CantorTestHost>,
    callback_requested: &AtomicBool,
    stopped: StoppedPluginAudioProcessor<CantorTestHost>,
    n_blocks: usize,
    paced: bool,
    events: impl FnMut(usize, &mut EventBuffer) + Send,
) -> Result<Rendered, Box<dyn Error>> {
    std::thread::scope(|s| -> Result<Rendered, Box<dyn Error>> {
        let audio = s.spawn(move || render(stopped, n_blocks, paced, events));
        while !audio.is_finished() {
            if callback_requested.swap(false, Ordering::SeqCst) {
                instance.call_on_main_thread_callback();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(audio.join().map_err(|_| "audio thread panicked")??)
    })
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn clack_host_loads_the_clap_activates_and_plays_10_s() -> Result<(), Box<dyn Error>> {
    let path = bundled::bundle().join("Cantor.clap");

    // 1. Load the entry, get the factory, find the descriptor -------------------------------
    // What a host's plugin scan does: load the library, read the factory, create an instance.
    let scan_started = std::time::Instant::now();
    let entry = unsafe { PluginEntry::load(&path)? };
    println!("loaded {} (CLAP {})", path.display(), entry.version());

    let factory = entry.get_plugin_factory().ok_or("no plugin factory")?;
    let descriptor = factory
        .plugin_descriptors()
        .find(|d| d.id() == Some(PLUGIN_ID))
        .ok_or("plugin id not found in bundle")?;
    let features: Vec<String> = descriptor
        .features()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    for feature in ["instrument", "synthesizer", "stereo"] {
        assert!(features.iter().any(|f| f == feature), "CLAP feature {feature:?} missing from {features:?}");
    }
    println!(
        "descriptor: id={:?} name={:?} vendor={:?} features={features:?}",
        descriptor.id(),
        descriptor.name(),
        descriptor.vendor()
    );

    // 2./3. Instantiate --------------------------------------------------------------------
    let host_info = HostInfo::new("cantor-test-host", "cantor", "https://cantor.invalid", "0.1.0")?;
    let callback_requested = Arc::new(AtomicBool::new(false));
    let flag = callback_requested.clone();
    let mut instance = PluginInstance::<CantorTestHost>::new(
        move |_| HostShared::new(flag),
        |_shared| HostMainThread::default(),
        &entry,
        PLUGIN_ID,
        &host_info,
    )?;
    let scan = scan_started.elapsed();
    // Scanning must not load the model (that happens on activate, on the worker): the issue's
    // goal is under 100 ms. A timed assertion would be flaky on a shared machine, so it is
    // printed here, and the bound below only catches a model load creeping into the factory.
    println!("scan: load + factory + instance in {:.1} ms", scan.as_secs_f64() * 1e3);
    assert!(scan < Duration::from_secs(2), "scanning took {scan:?}");

    // Plugin-side extensions: PluginSharedHandle::get_extension::<E>() -> Option<E>.
    let shared_handle = instance.plugin_shared_handle();
    let params: PluginParams = shared_handle.get_extension().ok_or("no params extension")?;
    let state: PluginState = shared_handle.get_extension().ok_or("no state extension")?;
    let audio_ports: Option<PluginAudioPorts> = shared_handle.get_extension();
    assert!(audio_ports.is_some(), "no audio-ports extension");
    let note_ports: Option<PluginNotePorts> = shared_handle.get_extension();

    // Port layout (main-thread calls take &PluginMainThreadHandle, which needs `&mut instance`).
    {
        let handle = instance.plugin_handle();
        if let Some(ap) = &audio_ports {
            let (n_in, n_out) = (ap.count(&handle, true), ap.count(&handle, false));
            let mut buf = AudioPortInfoBuffer::new();
            let out0 = ap.get(&handle, 0, false, &mut buf).ok_or("no output port 0")?;
            println!(
                "audio ports: {n_in} in, {n_out} out; out[0]={:?} x{}ch",
                String::from_utf8_lossy(out0.name),
                out0.channel_count
            );
            assert_eq!((n_in, n_out, out0.channel_count), (0, 1, 2));
        }
        if let Some(np) = &note_ports {
            let mut buf = NotePortInfoBuffer::new();
            let n = np.count(&handle, true);
            assert_eq!(n, 1, "an instrument takes one note input port");
            if let Some(info) = np.get(&handle, 0, true, &mut buf) {
                println!("note ports: {n} in; in[0] dialects={:?}", info.supported_dialects);
            }
        }
    }

    // 4. Enumerate parameters -----------------------------------------------------------------
    let mut all_params = Vec::new();
    {
        let handle = instance.plugin_handle();
        let mut info_buf = ParamInfoBuffer::new();
        for index in 0..params.count(&handle) {
            let Some(info) = params.get_info(&handle, index, &mut info_buf) else {
                continue;
            };
            let p = ParamSummary {
                id: info.id,
                name: String::from_utf8_lossy(info.name).into_owned(),
                min: info.min_value,
                max: info.max_value,
                stepped: info.flags.contains(ParamInfoFlags::IS_STEPPED),
            };
            let value = params.get_value(&handle, p.id);
            let mut text_buf = [0u8; 256];
            let text = match value {
                Some(v) => params
                    .value_to_text(&handle, p.id, v, &mut text_buf)
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .ok(),
                None => None,
            };
            println!(
                "param #{index}: id={} name={:?} range=[{}, {}] default={} value={value:?} text={text:?}",
                p.id, p.name, p.min, p.max, info.default_value
            );
            all_params.push(p);
        }
    }
    let target = all_params
        .iter()
        .find(|p| p.name == "Stereo width")
        .or_else(|| all_params.iter().find(|p| !p.stepped))
        .ok_or("no continuous parameter")?;
    let target_id = target.id;
    let flush_value = target.min + 0.75 * (target.max - target.min);
    let process_value = target.min + 0.25 * (target.max - target.min);

    // Optional: set a param while INACTIVE through params.flush (needs InactivePluginMainThreadHandle).
    {
        let mut in_ev = EventBuffer::new();
        in_ev.push(&ParamValueEvent::new(0, target_id, Pckn::match_all(), flush_value));
        let mut out_ev = EventBuffer::new();
        let mut inactive = instance.inactive_plugin_handle().ok_or("plugin is active")?;
        params.flush(&mut inactive, &in_ev.as_input(), &mut out_ev.as_output());
        // &InactivePluginMainThreadHandle derefs to &PluginMainThreadHandle.
        let v = params.get_value(&inactive, target_id).ok_or("get_value failed")?;
        assert!((v - flush_value).abs() < 1e-4, "flush: got {v}, want {flush_value}");
    }

    // 3. Activate, then process 10 s on an audio thread ----------------------------------------
    let config = PluginAudioConfiguration {
        sample_rate: SAMPLE_RATE,
        min_frames_count: 1,
        max_frames_count: BLOCK as u32,
    };
    let stopped = instance.activate(|_shared, _main_thread| (), config)?;

    let n_blocks = SAMPLE_RATE as usize * SECONDS / BLOCK; // 7500
    // Pckn = (port, channel, key, note_id). Literals need suffixes (u16 / u32): untyped ints are ambiguous.
    let note = Pckn::new(0u16, 0u16, 60u16, 1u32);
    let rendered = render_on_audio_thread(&mut instance, &callback_requested, stopped, n_blocks, false, |block, in_events| {
        if block == 0 {
            // Global param change: Pckn::match_all() = all -1 (any port/channel/key/note id).
            in_events.push(&ParamValueEvent::new(0, target_id, Pckn::match_all(), process_value));
            in_events.push(&NoteOnEvent::new(0, note, 0.8));
        }
        if block == n_blocks / 2 {
            in_events.push(&NoteOffEvent::new(32, note, 0.0));
        }
    })?;
    let Rendered {
        processor: mut stopped,
        left,
        right,
        output_events,
        ..
    } = rendered;

    assert_eq!(left.len(), n_blocks * BLOCK);
    assert!(left.iter().chain(&right).all(|s| s.is_finite()));
    let peak = left.iter().chain(&right).fold(0.0f32, |m, s| m.max(s.abs()));
    println!("rendered {} frames, peak {peak}, {output_events} output events", left.len());

    // The ParamValueEvent sent in process() took effect.
    let v = params
        .get_value(&instance.plugin_handle(), target_id)
        .ok_or("get_value failed")?;
    assert!((v - process_value).abs() < 1e-4, "process: got {v}, want {process_value}");

    // 5. State: save, change, load back, then garbage -------------------------------------------
    let mut saved: Vec<u8> = Vec::new();
    state.save(&instance.plugin_handle(), &mut saved)?; // Vec<u8>: Write
    assert!(!saved.is_empty());

    // Change the param while active and not processing: flush_active takes the processor's handle.
    {
        let mut in_ev = EventBuffer::new();
        in_ev.push(&ParamValueEvent::new(0, target_id, Pckn::match_all(), flush_value));
        let mut out_ev = EventBuffer::new();
        params.flush_active(&mut stopped.plugin_handle(), &in_ev.as_input(), &mut out_ev.as_output());
    }
    {
        let handle = instance.plugin_handle();
        let v = params.get_value(&handle, target_id).ok_or("get_value failed")?;
        assert!((v - flush_value).abs() < 1e-4);

        state.load(&handle, &mut saved.as_slice())?; // &[u8]: Read
        let v = params.get_value(&handle, target_id).ok_or("get_value failed")?;
        assert!((v - process_value).abs() < 1e-4, "state load: got {v}, want {process_value}");

        let body = b"{ this is not json";
        let mut framed = (body.len() as u64).to_le_bytes().to_vec(); // nice-plug frames state as u64 LE length + JSON
        framed.extend_from_slice(body);
        let garbage: [&[u8]; 4] = [&b""[..], &b"xyz"[..], &b"definitely not a cantor state \xff\xfe"[..], &framed[..]];
        for (i, bytes) in garbage.iter().enumerate() {
            let mut reader: &[u8] = bytes;
            let result = state.load(&handle, &mut reader);
            assert!(result.is_err(), "garbage #{i} was accepted");
        }
        // The failed loads did not change anything.
        let v = params.get_value(&handle, target_id).ok_or("get_value failed")?;
        assert!((v - process_value).abs() < 1e-4);
    }

    // 6. Source "play my notes", paced at the audio clock: a note from 1.0 to 1.5 s is heard after
    //    the plugin's latency (look-ahead plus about 47 ms) until 0.4 s after its release, and
    //    nothing before or after it. --------------------------------------------------------------
    {
        let id = |name: &str| all_params.iter().find(|p| p.name == name).map(|p| p.id).ok_or(format!("no parameter {name:?}"));
        let mut in_ev = EventBuffer::new();
        // Stepped parameters take their step index: "play my notes" is the Source's second.
        in_ev.push(&ParamValueEvent::new(0, id("Source")?, Pckn::match_all(), 1.0));
        in_ev.push(&ParamValueEvent::new(0, id("Stereo width")?, Pckn::match_all(), 0.0));
        let mut out_ev = EventBuffer::new();
        params.flush_active(&mut stopped.plugin_handle(), &in_ev.as_input(), &mut out_ev.as_output());
    }
    let note = Pckn::new(0u16, 0u16, 62u16, 2u32);
    let frame = |seconds: f64| (seconds * SAMPLE_RATE) as usize;
    // A note from 1.0 to 1.5 s; the peak of each 0.1 s of what the plugin played.
    let one_note = |block: usize, in_events: &mut EventBuffer| {
        let blocks = block * BLOCK..(block + 1) * BLOCK;
        if blocks.contains(&frame(1.0)) {
            in_events.push(&NoteOnEvent::new((frame(1.0) - blocks.start) as u32, note, 0.8));
        }
        if blocks.contains(&frame(1.5)) {
            in_events.push(&NoteOffEvent::new((frame(1.5) - blocks.start) as u32, note, 0.0));
        }
    };
    let tenths = |played: &[f32]| -> Vec<f32> { played.chunks(SAMPLE_RATE as usize / 10).map(|c| c.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect() };
    let follows_the_note = |tenths: &[f32], mode: &str| {
        println!("play my notes ({mode}), peak per 0.1 s: {tenths:?}");
        assert!(tenths[..10].iter().all(|v| *v == 0.0), "{mode}: sound before the note: {tenths:?}");
        assert!(tenths[12..15].iter().all(|v| *v > 0.0), "{mode}: the note is not heard: {tenths:?}");
        assert!(tenths[23..].iter().all(|v| *v == 0.0), "{mode}: sound long after the note's release: {tenths:?}");
    };
    let Rendered { processor: stopped, left: played, .. } = render_on_audio_thread(&mut instance, &callback_requested, stopped, frame(4.0) / BLOCK, true, one_note)?;
    follows_the_note(&tenths(&played), "real time");

    // 7. Offline, as a host's export sets it (the render extension takes effect at the next
    //    activation): the note is heard alike, two renders are the same bit for bit, and with
    //    Source on "continue" a phrase and a rest bring Cantor's answer (as MIDI out and sound)
    //    from the next bar line on, not before. -------------------------------------------------
    instance.deactivate(stopped);
    let render_ext: PluginRender = instance.plugin_shared_handle().get_extension().ok_or("no render extension")?;
    render_ext.set(&mut instance.plugin_handle(), RenderMode::Offline).map_err(|e| format!("render set: {e}"))?;
    let stopped = instance.activate(|_shared, _main_thread| (), config)?;
    let Rendered { processor: stopped, left: offline, .. } = render_on_audio_thread(&mut instance, &callback_requested, stopped, frame(4.0) / BLOCK, false, one_note)?;
    follows_the_note(&tenths(&offline), "offline");
    let Rendered { processor: mut stopped, left: again, .. } = render_on_audio_thread(&mut instance, &callback_requested, stopped, frame(4.0) / BLOCK, false, one_note)?;
    assert!(again == offline, "two offline renders of the same note differ");
    {
        let id = |name: &str| all_params.iter().find(|p| p.name == name).map(|p| p.id).ok_or(format!("no parameter {name:?}"));
        let mut in_ev = EventBuffer::new();
        // "continue" is the Source's third step.
        in_ev.push(&ParamValueEvent::new(0, id("Source")?, Pckn::match_all(), 2.0));
        let mut out_ev = EventBuffer::new();
        params.flush_active(&mut stopped.plugin_handle(), &in_ev.as_input(), &mut out_ev.as_output());
    }
    // 120 BPM in 4/4: four notes a beat apart from beat 1, the last released at beat 4.5; a
    // beat's rest before bar line 8 (4 s): Cantor answers from there.
    let phrase = [(0.5, 62u16), (1.0, 66), (1.5, 69), (2.0, 74)];
    let Rendered { processor: stopped, left: answered, note_ons, .. } =
        render_on_audio_thread(&mut instance, &callback_requested, stopped, frame(7.0) / BLOCK, false, |block, in_events| {
            let blocks = block * BLOCK..(block + 1) * BLOCK;
            for (i, &(at, key)) in phrase.iter().enumerate() {
                let note = Pckn::new(0u16, 0u16, key, 10 + i as u32);
                if blocks.contains(&frame(at)) {
                    in_events.push(&NoteOnEvent::new((frame(at) - blocks.start) as u32, note, 0.8));
                }
                if blocks.contains(&frame(at + 0.25)) {
                    in_events.push(&NoteOffEvent::new((frame(at + 0.25) - blocks.start) as u32, note, 0.0));
                }
            }
        })?;
    let heard = tenths(&answered);
    println!("continue (offline), peak per 0.1 s: {heard:?}; Cantor's note-ons at {note_ons:?}");
    assert!(!note_ons.is_empty(), "Cantor did not answer the phrase");
    assert!(note_ons.iter().all(|&f| f >= frame(4.0) as u64), "Cantor played before its cue: {note_ons:?}");
    assert!(heard[5..25].iter().any(|v| *v > 0.0), "the phrase is not heard: {heard:?}");

    // 8. Tear down --------------------------------------------------------------------------------
    if callback_requested.swap(false, Ordering::SeqCst) {
        instance.call_on_main_thread_callback();
    }
    instance.deactivate(stopped); // panics if the processor belongs to another instance
    assert!(!instance.is_active());

    let (rescans, dirty) = instance.access_handler(|h| (h.param_rescans.get(), h.state_dirty.get()));
    let (flush_req, restart_req) = instance.access_shared_handler(|h| {
        (
            h.flush_requested.load(Ordering::SeqCst),
            h.restart_requested.load(Ordering::SeqCst),
        )
    });
    println!("host saw: {rescans} param rescans, dirty={dirty}, flush={flush_req}, restart={restart_req}");

    drop(instance); // calls clap destroy (do not use `params` / `state` after this)
    drop(entry); // unloads the .so once the last PluginEntry handle is gone
    Ok(())
}
