//! A minimal in-process host: drives `Cantor`'s lifecycle and `process()` directly, the way a
//! DAW's wrapper would. The command line's offline render, the plugin tests and the process()
//! benchmark all go through it, so they exercise the same code path as a bounce in a DAW.

use super::Cantor;
use nice_plug::context::process::SendEventError;
use nice_plug::prelude::*;
use std::collections::VecDeque;

/// The host side of one process call: transport, queued note events, and the note events the
/// plugin sends (MIDI out), stamped with the frame since activation they fall on.
struct HostContext {
    transport: Transport,
    events: VecDeque<PluginNoteEvent<Cantor>>,
    sent: Vec<(u64, PluginNoteEvent<Cantor>)>,
    /// Frames processed since activation before this block.
    block_start: u64,
    /// The latency the plugin last reported, in samples.
    latency: std::cell::Cell<u32>,
}

/// Note events a block may send before the host's queue is full (reserved up front, so sending
/// never allocates on the audio thread), as a DAW's output event queue is bounded.
const SENT_CAPACITY: usize = 4096;

impl ProcessContext<Cantor> for HostContext {
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
    fn try_send_event(&mut self, event: PluginNoteEvent<Cantor>) -> Result<(), (PluginNoteEvent<Cantor>, SendEventError)> {
        if self.sent.len() >= SENT_CAPACITY {
            return Err((event, SendEventError::HostBufferFull));
        }
        self.sent.push((self.block_start + event.timing() as u64, event));
        Ok(())
    }
    fn set_latency_samples(&self, samples: u32) {
        self.latency.set(samples);
    }
    fn request_restart(&self) {}
    fn set_current_voice_capacity(&self, _: u32) {}
}

struct HostActivateContext;

impl ActivateContext<Cantor> for HostActivateContext {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute(&self, _: ()) {}
    fn set_latency_samples(&self, _: u32) {}
    fn set_current_voice_capacity(&self, _: u32) {}
}

pub struct DirectHost {
    pub plugin: Cantor,
    context: HostContext,
    /// Output channels, sized for the largest block of the current activation.
    out: [Vec<f32>; 2],
    sample_rate: f32,
}

impl DirectHost {
    pub fn new(plugin: Cantor) -> Self {
        // Room for the largest block a host may send before it activates us (a misbehaving host).
        let out = [vec![0.0; 8192], vec![0.0; 8192]];
        let context = HostContext { transport: Transport::new(48_000.0), events: VecDeque::new(), sent: Vec::with_capacity(SENT_CAPACITY), block_start: 0, latency: Default::default() };
        Self { plugin, context, out, sample_rate: 48_000.0 }
    }

    /// Activate (or reactivate) at `rate` for blocks of up to `max_block` frames, then reset,
    /// as hosts do. The transport starts stopped at position 0.
    pub fn activate(&mut self, rate: f32, max_block: usize, mode: ProcessMode) -> bool {
        for (_, p, _) in self.plugin.params().param_map() {
            // SAFETY: the pointers come from the plugin's own live parameter object.
            unsafe { p._internal_update_smoother(rate, true) }
        }
        let config = BufferConfig { sample_rate: rate, min_buffer_size: None, max_buffer_size: max_block as u32, process_mode: mode };
        let ok = self.plugin.activate(&Cantor::AUDIO_IO_LAYOUTS[0], &config, &mut HostActivateContext);
        self.plugin.reset();
        self.out = [vec![0.0; max_block], vec![0.0; max_block]];
        self.sample_rate = rate;
        self.context.transport = Transport::new(rate);
        self.context.block_start = 0;
        self.context.sent.clear();
        ok
    }

    pub fn deactivate(&mut self) {
        self.plugin.deactivate();
    }

    /// Set a parameter by id to a plain value (clamped to its range), as host automation does.
    pub fn set_param(&mut self, id: &str, plain: f32) -> Result<(), String> {
        let map = self.plugin.params().param_map();
        let (_, ptr, _) = map.iter().find(|(known, _, _)| known == id).ok_or_else(|| format!("no parameter with id {id:?}"))?;
        if !plain.is_finite() {
            return Err(format!("parameter {id:?}: {plain} is not a number"));
        }
        // SAFETY: as above; the normalised value is clamped to 0..1 by preview_normalized.
        unsafe {
            ptr._internal_set_normalized_value(ptr.preview_normalized(plain));
            ptr._internal_update_smoother(self.sample_rate, false);
        }
        Ok(())
    }

    /// The transport the next blocks will see (playing, tempo, position...).
    pub fn transport_mut(&mut self) -> &mut Transport {
        &mut self.context.transport
    }

    /// Queue a note event for the next block.
    pub fn push_event(&mut self, event: PluginNoteEvent<Cantor>) {
        self.context.events.push_back(event);
    }

    /// The latency the plugin last reported to the host, in samples.
    pub fn latency(&self) -> u32 {
        self.context.latency.get()
    }

    /// Move the note events the plugin has sent (MIDI out) into `out`, each with the frame since
    /// activation it falls on.
    pub fn drain_sent_events(&mut self, out: &mut Vec<(u64, PluginNoteEvent<Cantor>)>) {
        out.extend(self.context.sent.drain(..));
    }

    /// Process one block of `n` frames (at most the activation's block size) and return the
    /// output channels. `around` wraps the plugin's process() call alone (a timer, an allocation
    /// counter); buffer set-up is outside it.
    pub fn process_with<R>(&mut self, n: usize, around: impl FnOnce(&mut dyn FnMut()) -> R) -> (R, [&[f32]; 2]) {
        let n = n.min(self.out[0].len());
        let [l, r] = &mut self.out;
        let mut buffer = Buffer::default();
        // SAFETY: both slices live as long as `buffer`, which is dropped at the end of this scope.
        unsafe { buffer.set_slices(n, |s| *s = vec![&mut l[..n], &mut r[..n]]) };
        let mut aux = AuxiliaryBuffers { inputs: &mut [], outputs: &mut [] };
        let (plugin, context) = (&mut self.plugin, &mut self.context);
        let result = around(&mut || {
            plugin.process(&mut buffer, &mut aux, context);
        });
        drop(buffer);
        self.context.block_start += n as u64;
        // The host's clock moves on while it plays.
        if self.context.transport.playing {
            if let Some(pos) = &mut self.context.transport.pos_samples {
                *pos += n as i64;
            }
        }
        (result, [&self.out[0][..n], &self.out[1][..n]])
    }

    /// Process one block of `n` frames and return the output channels.
    pub fn process(&mut self, n: usize) -> [&[f32]; 2] {
        self.process_with(n, |p| p()).1
    }
}
