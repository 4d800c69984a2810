//! The CLAP/VST3 shell: lifecycle, parameter sync, transport and MIDI handling.
//! Thin on purpose: audio comes from `engine`, which gets it from a `FrameSource`.

mod direct_host;
pub mod render;

pub use direct_host::DirectHost;

use crate::editor::CantorEditor;
use crate::engine::neural_source::NeuralSource;
use crate::engine::{Engine, EngineShared, FrameSource, GeneratorConfig, ProcessMode as EngineMode};
use crate::model::pair::ModelPair;
use crate::model::vocab::Meter;
use crate::knobs::MAX_AHEAD_S;
use crate::engine::score_stage::LiveEvent;
use crate::params::{CantorParams, EditorSize, RunMode, Source, TempoMode};
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::prelude::*;
use nice_plug_egui::{create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings, RepaintNotifier};
use std::sync::{Arc, OnceLock};

/// Makes the generator's source when the plugin activates (on the main thread, never the audio
/// thread). `None` means no model is available: the plugin stays silent and says so.
pub type SourceFactory = Arc<dyn Fn() -> Result<Box<dyn FrameSource>, String> + Send + Sync>;

/// Why a build without a trained prior is silent (see build.rs).
pub const NO_MODEL: &str = "No model loaded: this build of Cantor has no trained generator (transformer prior) built in, so it plays silence.";

/// A factory for the neural generator on `model` (shared: every activation reuses it).
pub fn neural_factory(model: Arc<ModelPair>) -> SourceFactory {
    Arc::new(move || Ok(Box::new(NeuralSource::new(model.clone())?) as Box<dyn FrameSource>))
}

/// The shipped generator: the models built into the binary, loaded on the first activation
/// (never while a host scans plugins) and kept for later ones. `None` if no prior is built in.
pub fn embedded_factory() -> Option<SourceFactory> {
    if !ModelPair::has_embedded() {
        return None;
    }
    let model: Arc<OnceLock<Result<Arc<ModelPair>, String>>> = Arc::new(OnceLock::new());
    Some(Arc::new(move || {
        let m = model.get_or_init(|| ModelPair::embedded().map(Arc::new)).clone()?;
        Ok(Box::new(NeuralSource::new(m)?) as Box<dyn FrameSource>)
    }))
}

pub struct Cantor {
    params: Arc<CantorParams>,
    /// Atomics shared with the generator thread and the editor; outlives engine restarts.
    shared: Arc<EngineShared>,
    engine: Option<Engine>,
    source_factory: Option<SourceFactory>,
    mode: EngineMode,
    sample_rate: f32,
    was_playing: bool,
    notes_held: u32,
    /// The host's last time signature, counted as the prior counts beats (4/4 until it says).
    meter: Meter,
    /// Pitch class of the last MIDI note played while "Key follows MIDI" was on.
    midi_key: Option<i32>,
    /// The latency last reported to the host, in samples (playing the player's notes: the
    /// generator's input latency; composing: none).
    reported_latency: u32,
    repaint: RepaintNotifier,
}

impl Default for Cantor {
    fn default() -> Self {
        Self::with_source_factory(embedded_factory())
    }
}

impl Cantor {
    /// A plugin whose generator uses `factory` (tests plug deterministic sources in here).
    pub fn with_source_factory(factory: Option<SourceFactory>) -> Self {
        let shared = Arc::new(EngineShared::default());
        if factory.is_none() {
            shared.set_error(NO_MODEL);
        }
        Self {
            params: Arc::new(CantorParams::default()),
            shared,
            engine: None,
            source_factory: factory,
            mode: EngineMode::Realtime,
            sample_rate: 48_000.0,
            was_playing: false,
            notes_held: 0,
            meter: Meter::COMMON_TIME,
            midi_key: None,
            reported_latency: 0,
            repaint: RepaintNotifier::new(),
        }
    }

    pub fn shared(&self) -> &Arc<EngineShared> {
        &self.shared
    }

    /// Publish the knobs to the engine (audio thread: atomic stores only). The one place the
    /// engine's key is written: the knob's, or the last MIDI note's when the key follows MIDI.
    fn publish_knobs(&self) {
        let mut values = self.params.values();
        if values.key_follows_midi {
            values.key = self.midi_key.unwrap_or(values.key);
        }
        self.shared.publish_knobs(&values);
    }

    fn seed(&self) -> u64 {
        self.params.seed.value().max(0) as u64
    }
}

impl Plugin for Cantor {
    const NAME: &'static str = "Cantor";
    const VENDOR: &'static str = "Cantor";
    const URL: &'static str = env!("CARGO_PKG_HOMEPAGE");
    const EMAIL: &'static str = "cantor@invalid.example";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[AudioIOLayout {
        main_input_channels: None,
        main_output_channels: NonZeroU32::new(2),
        ..AudioIOLayout::const_default()
    }];
    /// Notes, and the controllers the player's notes need (the sustain pedal, all-notes-off).
    const MIDI_INPUT: MidiConfig = MidiConfig::MidiCCs;
    /// The notes Cantor plays go out as note events (the MIDI out knob).
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;
    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = EguiEditor<CantorEditor>;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        // The window opens at the size saved with the project (or the default).
        let size = self.params.editor_size.read().map(|s| s.sanitized()).unwrap_or(EditorSize::DEFAULT);
        create_egui_editor(
            EguiEditorState::from_size(LogicalSize::new(size.width, size.height), 1.0),
            self.repaint.clone(),
            EguiNiceSettings::new().with_tile("Cantor").with_resize_hint(ResizeHint::resizable().with_min_max_logical_size(
                Some(LogicalSize::new(EditorSize::MIN.width, EditorSize::MIN.height)),
                Some(LogicalSize::new(EditorSize::MAX.width, EditorSize::MAX.height)),
            )),
            CantorEditor::new(self.params.clone(), self.shared.clone()),
        )
    }

    fn filter_state(state: &mut PluginState) {
        for repair in crate::params::sanitize_state(state) {
            nice_log!("Cantor: saved state (version {:?}): {repair}", state.version);
        }
    }

    fn activate(&mut self, _layout: &AudioIOLayout, config: &BufferConfig, _ctx: &mut impl ActivateContext<Self>) -> bool {
        // Stop the previous generator first (joins its thread; we are on the main thread here).
        self.engine = None;
        self.sample_rate = config.sample_rate;
        self.mode = if config.process_mode == ProcessMode::Offline { EngineMode::Offline } else { EngineMode::Realtime };
        let rate = config.sample_rate.round();
        if !(rate.is_finite() && (8_000.0..=768_000.0).contains(&rate)) {
            nice_log!("Cantor: refusing absurd sample rate {}", config.sample_rate);
            self.shared.set_error(format!("The host asked for an unusable sample rate ({} Hz).", config.sample_rate));
            return true; // stay loaded and silent
        }
        let Some(factory) = &self.source_factory else {
            return true;
        };
        self.publish_knobs();
        // A bug in model loading must not take the host down: a panic becomes an error message.
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory()))
            .unwrap_or_else(|_| Err("Loading the model crashed (a bug in Cantor); the plugin stays silent.".to_string()));
        match made {
            Ok(source) => {
                self.shared.set_model_name(source.name());
                let config = GeneratorConfig { host_rate: rate as u32, max_ahead_s: MAX_AHEAD_S as f64, seed: self.seed(), mode: self.mode };
                match Engine::start(source, self.shared.clone(), config) {
                    Ok(mut engine) => {
                        engine.reader.close_gate();
                        self.engine = Some(engine);
                    }
                    Err(e) => {
                        nice_log!("Cantor: cannot start the generator thread: {e}");
                        self.shared.set_error(format!("The generator thread could not start: {e}"));
                    }
                }
            }
            Err(e) => {
                nice_log!("Cantor: model unavailable: {e}");
                self.shared.set_error(e);
            }
        }
        true
    }

    fn reset(&mut self) {
        self.was_playing = false;
        self.notes_held = 0;
        if let Some(engine) = &mut self.engine {
            engine.reader.close_gate();
        }
    }

    fn deactivate(&mut self) {
        self.engine = None;
    }

    fn process(&mut self, buffer: &mut Buffer, _aux: &mut AuxiliaryBuffers, context: &mut impl ProcessContext<Self>) -> ProcessStatus {
        let n = buffer.samples();
        let out = buffer.as_slice();
        if n == 0 || out.len() < 2 {
            return ProcessStatus::KeepAlive;
        }
        // MIDI: held-note count for the gate, last note for the key, the notes for the piano
        // roll, and with Source on "play my notes" or "continue" the notes themselves, on their
        // way to the generator.
        let play = self.params.source.value() != Source::Compose;
        while let Some(event) = context.next_event() {
            let timing = event.timing().min(n as u32 - 1);
            let live = match event {
                NoteEvent::NoteOn { key, velocity, .. } => {
                    self.notes_held += 1;
                    if self.params.key_follows_midi.value() {
                        self.midi_key = Some((key.number_or_middle_c() % 12) as i32);
                    }
                    let velocity = if velocity.is_finite() { (velocity * 127.0).round().clamp(1.0, 127.0) as u8 } else { 64 };
                    Some(match key.number() {
                        Some(key) => LiveEvent::On { key: key.min(127), velocity },
                        None => LiveEvent::AllOff,
                    })
                }
                NoteEvent::NoteOff { key, .. } => {
                    self.notes_held = self.notes_held.saturating_sub(1);
                    Some(key.number().map_or(LiveEvent::AllOff, |key| LiveEvent::Off { key: key.min(127) }))
                }
                NoteEvent::MidiCC { cc: 64, value, .. } => Some(LiveEvent::Pedal(value >= 0.5)),
                // All sound off, reset all controllers, all notes off (and the mode messages that imply it).
                NoteEvent::MidiCC { cc: 120..=127, .. } => Some(LiveEvent::AllOff),
                _ => None,
            };
            if let (Some(live), Some(engine)) = (live, &mut self.engine) {
                // The piano roll shows what you play whatever the Source knob.
                engine.reader.show_input(timing, live);
                if play {
                    engine.reader.push_input(timing, live);
                }
            }
        }
        // Playing the player's notes, the host is told their latency, so a clip lines up with
        // the other tracks after its delay compensation.
        let latency = if play { self.shared.input_latency() } else { 0 };
        if latency != self.reported_latency {
            self.reported_latency = latency;
            context.set_latency_samples(latency);
        }
        self.publish_knobs();
        let transport = context.transport();
        let playing = transport.playing;
        if let Some(n) = transport.time_sig_numerator {
            let d = transport.time_sig_denominator.unwrap_or(4);
            if let Some(m) = Meter::of_time_signature(n.max(0) as u32, d.max(0) as u32) {
                self.meter = m;
            }
        }
        // Hosts count quarter notes; the prior counts the meter's beats (`Meter`). A host that
        // gives no usable tempo keeps the last one.
        let (last_tempo, _) = self.shared.time();
        let tempo = match self.params.tempo_mode.value() {
            TempoMode::Host => transport.tempo.filter(|t| t.is_finite() && *t > 0.0).map_or(last_tempo, |t| (t / self.meter.beat_quarters) as f32),
            TempoMode::Free => self.params.tempo.value(),
        };
        self.shared.set_time(tempo, self.meter);
        let run_mode = self.params.run_mode.value();
        let gate_open = match run_mode {
            RunMode::Transport => playing,
            RunMode::Always => true,
            RunMode::NoteHeld => self.notes_held > 0,
        };
        let (left, rest) = out.split_at_mut(1);
        let (left, right) = (&mut left[0][..n], &mut rest[0][..n]);
        let Some(engine) = &mut self.engine else {
            left.fill(0.0);
            right.fill(0.0);
            return ProcessStatus::KeepAlive;
        };
        if playing && !self.was_playing {
            // Starting playback restarts generation deterministically from (seed, position).
            if run_mode == RunMode::Transport {
                let pos = transport.pos_samples().unwrap_or(0).max(0) as u64;
                engine.reader.request_reset(self.params.seed.value().max(0) as u64, pos);
            }
            engine.capture_tap.mark_start();
        }
        self.was_playing = playing;
        let timeouts = self.shared.offline_timeouts();
        // The notes of the audio this block outputs, sample-aligned with it.
        let midi_out = self.params.midi_out.value();
        engine.reader.process_with_notes(left, right, self.mode, gate_open, &mut |timing, note| {
            if midi_out || note.velocity == 0 {
                let (voice_id, channel, key) = (nice_plug::midi::VoiceID::Wildcard, nice_plug::midi::Channel::Number(note.channel), nice_plug::midi::Key::Number(note.key));
                let event = if note.velocity > 0 {
                    NoteEvent::NoteOn { timing, voice_id, channel, key, velocity: note.velocity as f32 / 127.0 }
                } else {
                    NoteEvent::NoteOff { timing, voice_id, channel, key, velocity: 0.0 }
                };
                // A full host queue drops the event: the audio thread never waits or logs.
                let _ = context.try_send_event(event);
            }
        });
        if self.mode == EngineMode::Offline && self.shared.offline_timeouts() != timeouts {
            // Offline only: the host waits for us anyway, so logging here is harmless.
            nice_log!(
                "Cantor: the generator did not deliver within {} s during an offline render; the bounce has a gap",
                crate::engine::reader::OFFLINE_WAIT_LIMIT.as_secs()
            );
        }
        engine.capture_tap.push(left, right);
        ProcessStatus::KeepAlive
    }
}

/// Cantor's VST3 class id (also written into its `.vstpreset` files); never changes.
pub const VST3_CLASS_ID: [u8; 16] = *b"CantorNeuralGen1";

impl ClapPlugin for Cantor {
    const CLAP_ID: &'static str = "org.cantor.cantor";
    const CLAP_DESCRIPTION: Option<&'static str> = Some("Real-time neural music generator");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[ClapFeature::Instrument, ClapFeature::Synthesizer, ClapFeature::Stereo];
}

impl Vst3Plugin for Cantor {
    const VST3_CLASS_ID: [u8; 16] = VST3_CLASS_ID;
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[Vst3SubCategory::Instrument, Vst3SubCategory::Synth, Vst3SubCategory::Stereo];
}

nice_export_clap!(Cantor);
nice_export_vst3!(Cantor);
