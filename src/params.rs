//! Cantor's parameters. Every one is automatable and saved with the project.
//!
//! **Parameter ids never change once released**: hosts store automation and presets by id.
//! Add new parameters with new ids; never rename, reuse or remove an id.
//! Ranges live in named functions so the editor and the engine use the same numbers.

use crate::model::vocab::{INSTRUMENT_FAMILIES, KEY_NAMES, MODES, STYLES};
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;
use std::sync::Arc;

/// Output gain range in dB.
pub fn gain_db_range() -> (f32, f32) {
    (-60.0, 12.0)
}
/// Free tempo range in beats per minute (the corpus and the prior cover 60-180).
pub fn tempo_range() -> (f32, f32) {
    crate::model::vocab::BPM_RANGE
}
/// Sampling temperature: 0 is greedy (argmax), above 1 gets wilder.
pub fn temperature_range() -> (f32, f32) {
    (0.0, 2.0)
}
/// Top-p (nucleus) mass: 1 disables it; small values keep only the likeliest codes.
pub fn top_p_range() -> (f32, f32) {
    (0.05, 1.0)
}
/// Stereo width: 0 is mono, 1 natural, 2 wide.
pub fn width_range() -> (f32, f32) {
    (0.0, 2.0)
}
/// Top-k: 0 disables it; otherwise only the k likeliest codes are sampled.
pub fn top_k_range() -> (i32, i32) {
    (0, 512)
}
/// Classifier-free guidance strength: 0 ignores the knobs (unconditional), 1 is plain
/// conditioning, above 1 exaggerates the requested style, key and tempo.
pub fn guidance_range() -> (f32, f32) {
    (0.0, 8.0)
}
/// Default guidance (parameter, `cantor render`): 7 since session 14. At temperature 1 over 10
/// seeds (60 takes each, EVAL.md) 7 puts the tempo within 5% in 73% of takes against 58% at 5,
/// with style and key unchanged within noise; its 10-minute take stays loud and varied and its
/// strains echo as well as at 5 (session 13). The cost, also measured: 3 dB less energy above
/// 1.5 kHz. (5 had held since session 12, 3 before it; session 6's models had chosen 3 over 1.5.)
pub const DEFAULT_GUIDANCE: f32 = 7.0;
/// How closely the second playing of each 8-bar strain follows the first: 0 lets the music
/// wander freely, 1 is the strongest echo (`model::prior::sampling::REPEAT_MAX_BIAS`).
pub fn repeat_range() -> (f32, f32) {
    (0.0, 1.0)
}
/// Default repeat (parameter, `cantor render`): the phrase contrast of generated reels nearest
/// to real ones' (EVAL.md, strain repetition). 1 since session 12: at temperature 1 the echo
/// is looser than it was at 0.9, and 0.75 fell to half of real pieces' contrast.
pub const DEFAULT_REPEAT: f32 = 1.0;
/// Default sampling temperature (parameter, `cantor render`): the model's own distribution.
/// Session 12 measured it at guidance 5 (EVAL.md): 1 followed style, tempo and key better than
/// 0.9 (the default until then) and 0.7, which drift toward a generic sustained texture.
pub const DEFAULT_TEMPERATURE: f32 = 1.0;
/// Default nucleus (top-p) mass (parameter, `cantor render`): cuts the unlikeliest 5% tail.
pub const DEFAULT_TOP_P: f32 = 0.95;
/// Default stereo width (parameter, `cantor render`): 1 is natural.
pub const DEFAULT_WIDTH: f32 = 1.0;
/// Default output gain in dB (parameter, `cantor render`): headroom for the host's mix.
pub const DEFAULT_GAIN_DB: f32 = -6.0;
/// Seconds generated ahead of playback: smaller follows knobs faster, larger survives CPU spikes.
pub fn responsiveness_range() -> (f32, f32) {
    (0.05, 2.0)
}
pub use crate::engine::shared::DEFAULT_LOOK_AHEAD_S;
/// Largest seed (seeds are shown and typed as plain numbers).
pub const MAX_SEED: i32 = 99_999;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempoMode {
    /// Follow the host's tempo.
    #[id = "host"]
    #[name = "Follow host"]
    Host,
    /// Use the free tempo knob.
    #[id = "free"]
    #[name = "Free"]
    Free,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Play while the host transport plays; starting playback restarts from (seed, position).
    #[id = "transport"]
    #[name = "Follow transport"]
    Transport,
    /// Play all the time.
    #[id = "always"]
    #[name = "Always"]
    Always,
    /// Play while at least one MIDI note is held, fading in and out.
    #[id = "note"]
    #[name = "While a note is held"]
    NoteHeld,
}

#[derive(Params)]
pub struct CantorParams {
    /// Output gain, smoothed on the audio thread.
    #[id = "gain"]
    pub gain: FloatParam,
    /// Stereo width of the output (0 mono, 1 natural, 2 wide).
    #[id = "width"]
    pub width: FloatParam,
    /// Style blend: one weight per trained style (normalised by the engine; all zero = unconditional).
    #[nested(array, group = "Style")]
    pub styles: [StyleWeight; STYLES.len()],
    /// General MIDI instrument family the prior is asked to play.
    #[id = "instrument"]
    pub instrument: IntParam,
    #[id = "tempo_mode"]
    pub tempo_mode: EnumParam<TempoMode>,
    /// Tempo in free mode, beats per minute, counting the beats of the host's time signature as the
    /// corpus does (`vocab::Meter`: dotted quarters in 6/8, half notes in 2/2).
    #[id = "tempo"]
    pub tempo: FloatParam,
    /// Key tonic (pitch class, C = 0).
    #[id = "key"]
    pub key: IntParam,
    /// 0 major, 1 minor.
    #[id = "mode"]
    pub mode: IntParam,
    /// The last MIDI note played sets the key tonic.
    #[id = "key_midi"]
    pub key_follows_midi: BoolParam,
    #[id = "temperature"]
    pub temperature: FloatParam,
    #[id = "top_k"]
    pub top_k: IntParam,
    #[id = "top_p"]
    pub top_p: FloatParam,
    #[id = "guidance"]
    pub guidance: FloatParam,
    /// Strain repetition (long-range structure): see `repeat_range`.
    #[id = "repeat"]
    pub repeat: FloatParam,
    /// Seed of the generator's random choices: the same seed and automation give the same music.
    #[id = "seed"]
    pub seed: IntParam,
    #[id = "run_mode"]
    pub run_mode: EnumParam<RunMode>,
    /// Seconds of audio generated ahead (see `responsiveness_range`).
    #[id = "ahead"]
    pub responsiveness: FloatParam,
    /// The editor window's logical size, saved with the project so the window reopens as the
    /// user left it (written by the editor when the host resizes it).
    #[persist = "editor-size"]
    pub editor_size: Arc<std::sync::RwLock<EditorSize>>,
}

/// The editor window's size in logical points.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EditorSize {
    pub width: f32,
    pub height: f32,
}

impl EditorSize {
    pub const DEFAULT: Self = Self { width: 720.0, height: 640.0 };
    pub const MIN: Self = Self { width: 480.0, height: 400.0 };
    pub const MAX: Self = Self { width: 4096.0, height: 4096.0 };

    /// Within the editor's limits; a broken saved size (NaN, zero, huge) gives the default.
    pub fn sanitized(self) -> Self {
        if !(self.width.is_finite() && self.height.is_finite()) {
            return Self::DEFAULT;
        }
        Self { width: self.width.clamp(Self::MIN.width, Self::MAX.width), height: self.height.clamp(Self::MIN.height, Self::MAX.height) }
    }
}

/// One style's weight in the blend.
#[derive(Params)]
pub struct StyleWeight {
    #[id = "style"]
    pub weight: FloatParam,
}

fn names_formatter(names: &'static [&'static str]) -> Arc<dyn Fn(i32) -> String + Send + Sync> {
    Arc::new(move |v| names.get(v.max(0) as usize).copied().unwrap_or("?").to_string())
}

fn names_parser(names: &'static [&'static str]) -> Arc<dyn Fn(&str) -> Option<i32> + Send + Sync> {
    Arc::new(move |s| names.iter().position(|n| n.eq_ignore_ascii_case(s.trim())).map(|i| i as i32))
}

static INSTRUMENT_NAMES: [&str; INSTRUMENT_FAMILIES.len()] = {
    let mut n = [""; INSTRUMENT_FAMILIES.len()];
    let mut i = 0;
    while i < n.len() {
        n[i] = INSTRUMENT_FAMILIES[i].0;
        i += 1;
    }
    n
};

impl Default for CantorParams {
    fn default() -> Self {
        let (g_lo, g_hi) = gain_db_range();
        let (t_lo, t_hi) = tempo_range();
        let (temp_lo, temp_hi) = temperature_range();
        let (k_lo, k_hi) = top_k_range();
        let (gd_lo, gd_hi) = guidance_range();
        let (p_lo, p_hi) = top_p_range();
        let (w_lo, w_hi) = width_range();
        let (rep_lo, rep_hi) = repeat_range();
        let (r_lo, r_hi) = responsiveness_range();
        Self {
            gain: FloatParam::new(
                "Output gain",
                util::db_to_gain(DEFAULT_GAIN_DB),
                FloatRange::Skewed {
                    min: util::db_to_gain(g_lo),
                    max: util::db_to_gain(g_hi),
                    factor: FloatRange::gain_skew_factor(g_lo, g_hi),
                },
            )
            .with_smoother(SmoothingStyle::Logarithmic(50.0))
            .with_unit(" dB")
            .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
            .with_string_to_value(formatters::s2v_f32_gain_to_db()),
            width: FloatParam::new("Stereo width", DEFAULT_WIDTH, FloatRange::Linear { min: w_lo, max: w_hi })
                .with_smoother(SmoothingStyle::Linear(50.0))
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage())
                .with_unit("%"),
            styles: std::array::from_fn(|i| StyleWeight {
                weight: FloatParam::new(STYLES[i], if i == 3 { 1.0 } else { 0.0 }, FloatRange::Linear { min: 0.0, max: 1.0 })
                    .with_value_to_string(formatters::v2s_f32_percentage(0))
                    .with_string_to_value(formatters::s2v_f32_percentage())
                    .with_unit("%"),
            }),
            instrument: IntParam::new("Instrument", 0, IntRange::Linear { min: 0, max: INSTRUMENT_FAMILIES.len() as i32 - 1 })
                .with_value_to_string(names_formatter(&INSTRUMENT_NAMES))
                .with_string_to_value(names_parser(&INSTRUMENT_NAMES)),
            tempo_mode: EnumParam::new("Tempo mode", TempoMode::Host),
            tempo: FloatParam::new("Tempo", 120.0, FloatRange::Linear { min: t_lo, max: t_hi })
                .with_step_size(0.1)
                .with_unit(" BPM"),
            key: IntParam::new("Key", 2, IntRange::Linear { min: 0, max: 11 })
                .with_value_to_string(names_formatter(&KEY_NAMES))
                .with_string_to_value(names_parser(&KEY_NAMES)),
            mode: IntParam::new("Mode", 0, IntRange::Linear { min: 0, max: 1 })
                .with_value_to_string(names_formatter(&MODES))
                .with_string_to_value(names_parser(&MODES)),
            key_follows_midi: BoolParam::new("Key follows MIDI", false),
            temperature: FloatParam::new("Temperature", DEFAULT_TEMPERATURE, FloatRange::Linear { min: temp_lo, max: temp_hi })
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            top_k: IntParam::new("Top-k", 0, IntRange::Linear { min: k_lo, max: k_hi }).with_value_to_string(Arc::new(
                |v| if v == 0 { "off".to_string() } else { v.to_string() },
            )),
            top_p: FloatParam::new("Top-p", DEFAULT_TOP_P, FloatRange::Linear { min: p_lo, max: p_hi })
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            guidance: FloatParam::new("Guidance", DEFAULT_GUIDANCE, FloatRange::Linear { min: gd_lo, max: gd_hi })
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            repeat: FloatParam::new("Repeat", DEFAULT_REPEAT, FloatRange::Linear { min: rep_lo, max: rep_hi })
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage())
                .with_unit("%"),
            seed: IntParam::new("Seed", 1, IntRange::Linear { min: 0, max: MAX_SEED }),
            run_mode: EnumParam::new("Run mode", RunMode::Transport),
            responsiveness: FloatParam::new(
                "Look-ahead",
                DEFAULT_LOOK_AHEAD_S,
                FloatRange::Skewed { min: r_lo, max: r_hi, factor: FloatRange::skew_factor(-1.0) },
            )
            .with_unit(" s")
            .with_value_to_string(formatters::v2s_f32_rounded(2)),
            editor_size: Arc::new(std::sync::RwLock::new(EditorSize::DEFAULT)),
        }
    }
}

/// Repair a saved state before it is loaded (called by the host wrapper through
/// `Plugin::filter_state`): values that are not numbers are dropped (the parameter keeps its
/// default), out-of-range values are clamped, unknown ids (from a newer or older Cantor) are
/// dropped. Returns one line per repair, for the log.
pub fn sanitize_state(state: &mut PluginState) -> Vec<String> {
    let defaults = CantorParams::default();
    let map = defaults.param_map();
    let mut repairs = Vec::new();
    state.params.retain(|id, value| {
        let Some((_, ptr, _)) = map.iter().find(|(known, _, _)| known == id) else {
            repairs.push(format!("unknown parameter id {id:?} dropped"));
            return false;
        };
        match value {
            ParamValue::F32(v) if !v.is_finite() => {
                repairs.push(format!("parameter {id:?}: {v} is not a number, default kept"));
                false
            }
            ParamValue::F32(v) => {
                // SAFETY: `ptr` points into `defaults`, alive for this whole function.
                let clamped = unsafe { ptr.preview_plain(ptr.preview_normalized(*v)) };
                if (clamped - *v).abs() > 1e-4 * v.abs().max(1.0) {
                    repairs.push(format!("parameter {id:?}: {v} is out of range, set to {clamped}"));
                    *v = clamped;
                }
                true
            }
            ParamValue::I32(v) => {
                let clamped = unsafe { ptr.preview_plain(ptr.preview_normalized(*v as f32)) }.round() as i32;
                if clamped != *v {
                    repairs.push(format!("parameter {id:?}: {v} is out of range, set to {clamped}"));
                    *v = clamped;
                }
                true
            }
            ParamValue::Bool(_) | ParamValue::String(_) => true,
        }
    });
    // Persisted fields: an editor size that does not parse is dropped (the default is used).
    state.fields.retain(|name, json| {
        let ok = name != "editor-size" || serde_json::from_str::<EditorSize>(json).is_ok();
        if !ok {
            repairs.push(format!("editor size {json:?} is unreadable, default used"));
        }
        ok
    });
    repairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(params: &[(&str, ParamValue)]) -> PluginState {
        PluginState {
            version: "0.0.1".into(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            fields: Default::default(),
        }
    }

    #[test]
    fn absurd_saved_values_are_repaired_and_unknown_ids_dropped() {
        let mut s = state(&[
            ("gain", ParamValue::F32(f32::NAN)),
            ("width", ParamValue::F32(1e9)),
            ("tempo", ParamValue::F32(100.0)),
            ("top_k", ParamValue::I32(-5)),
            ("seed", ParamValue::I32(i32::MAX)),
            ("removed_in_2025", ParamValue::F32(0.3)),
            ("run_mode", ParamValue::String("note".into())),
        ]);
        let repairs = sanitize_state(&mut s);
        assert_eq!(repairs.len(), 5, "{repairs:?}");
        assert!(!s.params.contains_key("gain") && !s.params.contains_key("removed_in_2025"));
        assert!(matches!(s.params["width"], ParamValue::F32(v) if v == 2.0));
        assert!(matches!(s.params["tempo"], ParamValue::F32(v) if v == 100.0));
        assert!(matches!(s.params["top_k"], ParamValue::I32(0)));
        assert!(matches!(s.params["seed"], ParamValue::I32(MAX_SEED)));
        assert!(matches!(s.params["run_mode"], ParamValue::String(_)));
    }

    #[test]
    fn the_editor_size_is_saved_and_a_broken_one_repaired() {
        // Saved and restored through the persisted-field mechanism the wrappers use.
        let p = CantorParams::default();
        *p.editor_size.write().unwrap() = EditorSize { width: 900.0, height: 700.0 };
        let saved = p.serialize_fields();
        let q = CantorParams::default();
        q.deserialize_fields(&saved);
        assert_eq!(*q.editor_size.read().unwrap(), EditorSize { width: 900.0, height: 700.0 });
        // An unreadable size is dropped before loading; an absurd one is clamped when used.
        let mut s = state(&[]);
        s.fields.insert("editor-size".into(), "{not json".into());
        assert_eq!(sanitize_state(&mut s).len(), 1);
        assert!(s.fields.is_empty());
        assert_eq!(EditorSize { width: f32::NAN, height: 10.0 }.sanitized(), EditorSize::DEFAULT);
        assert_eq!(EditorSize { width: 1e9, height: 10.0 }.sanitized(), EditorSize { width: EditorSize::MAX.width, height: EditorSize::MIN.height });
    }

    #[test]
    fn every_parameter_id_is_unique_and_stable() {
        // Ids are a promise to hosts' saved projects: this list only ever grows.
        let p = CantorParams::default();
        let ids: Vec<String> = p.param_map().into_iter().map(|(id, _, _)| id).collect();
        for id in ["gain", "width", "instrument", "tempo_mode", "tempo", "key", "mode", "key_midi", "temperature", "top_k", "top_p", "guidance", "repeat", "seed", "run_mode", "ahead"] {
            assert!(ids.iter().any(|i| i == id), "parameter id {id:?} disappeared");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "duplicate ids in {ids:?}");
    }
}
