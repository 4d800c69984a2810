//! Offline rendering without a DAW: the plugin driven by `DirectHost` in offline mode, exactly
//! as a host's bounce drives it (`cantor render` is a thin command line over this).

use super::{Cantor, DirectHost, SourceFactory};
use crate::knobs::{self, KnobValues, KNOBS};
use crate::midi::PlayedEvent;
use crate::model::vocab::{self, STYLES};
use nice_plug::prelude::ProcessMode;

/// Everything a render is steered by: the knobs (as the plugin's parameters hold them), how
/// long, at what rate, in which time signature. Values are checked by `validate`.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub seconds: f64,
    pub sample_rate: u32,
    /// (numerator, denominator), as a host's transport reports it. The Tempo knob counts this
    /// signature's beats (dotted quarters in 6/8, halves in 2/2), as the corpus does (`vocab::Meter`).
    pub time_signature: (u32, u32),
    pub knobs: KnobValues,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self { seconds: 30.0, sample_rate: 48_000, time_signature: (4, 4), knobs: KnobValues::default() }
    }
}

/// Parse "reel" or "reel=1,jig=0.5" into style weights (styles not named weigh 0).
pub fn parse_styles(text: &str) -> Result<[f32; STYLES.len()], String> {
    let mut weights = [0.0; STYLES.len()];
    let mut errors = Vec::new();
    for part in text.split(',') {
        let (name, weight) = match part.split_once('=') {
            Some((n, w)) => (n.trim(), w.trim().parse::<f32>().map_err(|_| format!("style weight {w:?} is not a number"))),
            None => (part.trim(), Ok(1.0)),
        };
        match (vocab::style_index(name), weight) {
            (None, _) => errors.push(format!("unknown style {name:?}; styles: {}", STYLES.join(", "))),
            (_, Err(e)) => errors.push(e),
            (Some(_), Ok(w)) if !(w.is_finite() && (0.0..=1.0).contains(&w)) => errors.push(format!("style weight {w} for {name:?} must be between 0 and 1")),
            (Some(i), Ok(w)) => weights[i] = w,
        }
    }
    if errors.is_empty() { Ok(weights) } else { Err(errors.join("\n")) }
}

impl RenderSettings {
    /// Every problem with the settings, in plain words.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 24.0 * 3600.0) {
            errors.push(format!("--seconds must be between 0 and 86400, not {}", self.seconds));
        }
        if !(8_000..=384_000).contains(&self.sample_rate) {
            errors.push(format!("--sample-rate must be 8000-384000 Hz, not {}", self.sample_rate));
        }
        let (n, d) = self.time_signature;
        if vocab::Meter::of_time_signature(n, d).is_none() {
            errors.push(format!("--time-signature {n}/{d} is not one a score writes; use e.g. 4/4, 3/4, 6/8, 2/2"));
        }
        for knob in KNOBS.all() {
            let plain = self.knobs.plain(knob.id()).expect("every knob has a value");
            if let Err(e) = knob.check_plain(plain) {
                errors.push(e);
            }
        }
        if self.knobs.styles.iter().any(|w| !(w.is_finite() && (0.0..=1.0).contains(w))) {
            errors.push(format!("style weights must be between 0 and 1, not {:?}", self.knobs.styles));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }
}

/// Render `settings` with the generator `factory` makes; `progress` is called with the fraction
/// done after every block. Returns interleaved stereo at `settings.sample_rate`.
pub fn render(settings: &RenderSettings, factory: SourceFactory, progress: impl FnMut(f64)) -> Result<Vec<f32>, String> {
    Ok(render_with_notes(settings, factory, progress)?.0)
}

/// `render`, and the note events the plugin sent (MIDI out) in order, on the frames of the
/// audio (0 is its first sample).
pub fn render_with_notes(settings: &RenderSettings, factory: SourceFactory, mut progress: impl FnMut(f64)) -> Result<(Vec<f32>, Vec<PlayedEvent>), String> {
    use nice_plug::prelude::NoteEvent;
    settings.validate()?;
    const BLOCK: usize = 1024;
    let rate = settings.sample_rate as f32;
    let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory)));
    if !host.activate(rate, BLOCK, ProcessMode::Offline) {
        return Err("the plugin refused to activate".into());
    }
    if let Some(e) = host.plugin.shared().error() {
        return Err(e);
    }
    for id in knobs::parameter_ids() {
        host.set_param(&id, settings.knobs.plain(&id).expect("every parameter has a value"))?;
    }
    let t = host.transport_mut();
    t.playing = true;
    // As a DAW reports it: quarter notes per minute, and the signature (the plugin turns them
    // back into the meter's beats).
    let (n, d) = settings.time_signature;
    let meter = vocab::Meter::of_time_signature(n, d).expect("validated");
    t.tempo = Some(settings.knobs.tempo as f64 * meter.beat_quarters);
    t.time_sig_numerator = Some(n as i32);
    t.time_sig_denominator = Some(d as i32);
    t.pos_samples = Some(0);
    let total = (settings.seconds * settings.sample_rate as f64).round() as usize;
    let mut out = Vec::with_capacity(total * 2);
    let (mut sent, mut notes) = (Vec::new(), Vec::new());
    while out.len() < total * 2 {
        let n = BLOCK.min(total - out.len() / 2);
        let [l, r] = host.process(n);
        out.extend(l.iter().zip(r).flat_map(|(a, b)| [*a, *b]));
        host.drain_sent_events(&mut sent);
        for (frame, event) in sent.drain(..) {
            match event {
                NoteEvent::NoteOn { channel, key, velocity, .. } => {
                    notes.push(PlayedEvent { frame, channel: channel.number().unwrap_or(0), key: key.number_or_middle_c(), velocity: (velocity * 127.0).round().clamp(1.0, 127.0) as u8 })
                }
                NoteEvent::NoteOff { channel, key, .. } => notes.push(PlayedEvent { frame, channel: channel.number().unwrap_or(0), key: key.number_or_middle_c(), velocity: 0 }),
                _ => {}
            }
        }
        progress(out.len() as f64 / (2 * total) as f64);
    }
    let shared = host.plugin.shared();
    if let Some(e) = shared.error() {
        return Err(format!("the generator stopped: {e}"));
    }
    if shared.offline_timeouts() > 0 {
        return Err("the generator fell behind an offline render; the result would have gaps".into());
    }
    Ok((out, notes))
}
