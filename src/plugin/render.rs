//! Offline rendering without a DAW: the plugin driven by `DirectHost` in offline mode, exactly
//! as a host's bounce drives it (`cantor render` is a thin command line over this).

use super::{Cantor, DirectHost, SourceFactory};
use crate::model::vocab::{self, INSTRUMENT_FAMILIES, STYLES};
use crate::params;
use nice_plug::prelude::ProcessMode;

/// Everything a render is steered by. Values are checked by `validate`.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub seconds: f64,
    pub sample_rate: u32,
    /// Style weights by name, e.g. [("reel", 1.0), ("jig", 0.5)].
    pub styles: Vec<(String, f32)>,
    pub instrument: String,
    /// Tempo in beats of the time signature (dotted quarters in 6/8, halves in 2/2), as the
    /// corpus counts them (`vocab::Meter`).
    pub bpm: f32,
    /// (numerator, denominator), as a host's transport reports it.
    pub time_signature: (u32, u32),
    /// Tonic name ("D", "F#", "Bb") and mode ("major" / "minor").
    pub key: String,
    pub mode: String,
    pub seed: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub guidance: f32,
    pub repeat: f32,
    pub width: f32,
    pub gain_db: f32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            seconds: 30.0,
            sample_rate: 48_000,
            styles: vec![("reel".into(), 1.0)],
            instrument: "strings".into(),
            bpm: 110.0,
            time_signature: (4, 4),
            key: "D".into(),
            mode: "major".into(),
            seed: 1,
            temperature: params::DEFAULT_TEMPERATURE,
            top_k: 0,
            top_p: params::DEFAULT_TOP_P,
            guidance: params::DEFAULT_GUIDANCE,
            repeat: params::DEFAULT_REPEAT,
            width: params::DEFAULT_WIDTH,
            gain_db: params::DEFAULT_GAIN_DB,
        }
    }
}

/// Parse "reel" or "reel=1,jig=0.5" into style weights.
pub fn parse_styles(text: &str) -> Result<Vec<(String, f32)>, String> {
    text.split(',')
        .map(|part| {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (n.trim(), w.trim().parse::<f32>().map_err(|_| format!("style weight {w:?} is not a number"))?),
                None => (part.trim(), 1.0),
            };
            Ok((name.to_string(), weight))
        })
        .collect()
}

impl RenderSettings {
    /// Every problem with the settings, in plain words (empty: fine).
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 24.0 * 3600.0) {
            errors.push(format!("--seconds must be between 0 and 86400, not {}", self.seconds));
        }
        if !(8_000..=384_000).contains(&self.sample_rate) {
            errors.push(format!("--sample-rate must be 8000-384000 Hz, not {}", self.sample_rate));
        }
        for (name, w) in &self.styles {
            if vocab::style_index(name).is_none() {
                errors.push(format!("unknown style {name:?}; styles: {}", STYLES.join(", ")));
            }
            if !(w.is_finite() && (0.0..=1.0).contains(w)) {
                errors.push(format!("style weight {w} for {name:?} must be between 0 and 1"));
            }
        }
        if vocab::instrument_index(&self.instrument).is_none() {
            errors.push(format!("unknown instrument {:?}; instruments: {}", self.instrument, INSTRUMENT_FAMILIES.map(|(n, _)| n).join(", ")));
        }
        let (lo, hi) = vocab::BPM_RANGE;
        if !(self.bpm.is_finite() && self.bpm >= lo && self.bpm <= hi) {
            errors.push(format!("--bpm must be between {lo} and {hi}, not {}", self.bpm));
        }
        let (n, d) = self.time_signature;
        if vocab::Meter::of_time_signature(n, d).is_none() {
            errors.push(format!("--time-signature {n}/{d} is not one a score writes; use e.g. 4/4, 3/4, 6/8, 2/2"));
        }
        if vocab::pitch_class(&self.key).is_none() {
            errors.push(format!("unknown key {:?}; use a note name such as C, F#, Bb", self.key));
        }
        if !vocab::MODES.contains(&self.mode.to_ascii_lowercase().as_str()) {
            errors.push(format!("unknown mode {:?}; modes: {}", self.mode, vocab::MODES.join(", ")));
        }
        let ranges = [
            ("temperature", self.temperature, params::temperature_range()),
            ("top-p", self.top_p, params::top_p_range()),
            ("guidance", self.guidance, params::guidance_range()),
            ("repeat", self.repeat, params::repeat_range()),
            ("width", self.width, params::width_range()),
            ("gain-db", self.gain_db, params::gain_db_range()),
        ];
        for (name, v, (lo, hi)) in ranges {
            if !(v.is_finite() && v >= lo && v <= hi) {
                errors.push(format!("--{name} must be between {lo} and {hi}, not {v}"));
            }
        }
        let k_hi = params::top_k_range().1;
        if self.top_k > k_hi as u32 {
            errors.push(format!("--top-k must be 0 (off) to {k_hi}, not {}", self.top_k));
        }
        if self.seed > params::MAX_SEED as u32 {
            errors.push(format!("--seed must be 0-{}, not {}", params::MAX_SEED, self.seed));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }
}

/// Render `settings` with the generator `factory` makes; `progress` is called with the fraction
/// done after every block. Returns interleaved stereo at `settings.sample_rate`.
pub fn render(settings: &RenderSettings, factory: SourceFactory, mut progress: impl FnMut(f64)) -> Result<Vec<f32>, String> {
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
    let mut set = |id: &str, v: f32| host.set_param(id, v);
    for i in 0..STYLES.len() {
        set(&format!("style_{}", i + 1), 0.0)?;
    }
    for (name, w) in &settings.styles {
        set(&format!("style_{}", vocab::style_index(name).expect("validated") + 1), *w)?;
    }
    set("instrument", vocab::instrument_index(&settings.instrument).expect("validated") as f32)?;
    set("key", vocab::pitch_class(&settings.key).expect("validated") as f32)?;
    set("mode", if settings.mode.eq_ignore_ascii_case("minor") { 1.0 } else { 0.0 })?;
    set("seed", settings.seed as f32)?;
    set("temperature", settings.temperature)?;
    set("top_k", settings.top_k as f32)?;
    set("top_p", settings.top_p)?;
    set("guidance", settings.guidance)?;
    set("repeat", settings.repeat)?;
    set("width", settings.width)?;
    set("gain", 10f32.powf(settings.gain_db / 20.0))?;
    let t = host.transport_mut();
    t.playing = true;
    // As a DAW reports it: quarter notes per minute, and the signature (the plugin turns them
    // back into the meter's beats).
    let (n, d) = settings.time_signature;
    let meter = vocab::Meter::of_time_signature(n, d).expect("validated");
    t.tempo = Some(settings.bpm as f64 * meter.beat_quarters);
    t.time_sig_numerator = Some(n as i32);
    t.time_sig_denominator = Some(d as i32);
    t.pos_samples = Some(0);
    let total = (settings.seconds * settings.sample_rate as f64).round() as usize;
    let mut out = Vec::with_capacity(total * 2);
    while out.len() < total * 2 {
        let n = BLOCK.min(total - out.len() / 2);
        let [l, r] = host.process(n);
        out.extend(l.iter().zip(r).flat_map(|(a, b)| [*a, *b]));
        progress(out.len() as f64 / (2 * total) as f64);
    }
    let shared = host.plugin.shared();
    if let Some(e) = shared.error() {
        return Err(format!("the generator stopped: {e}"));
    }
    if shared.offline_timeouts.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        return Err("the generator fell behind an offline render; the result would have gaps".into());
    }
    Ok(out)
}
