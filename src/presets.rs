//! Factory presets: a good starting sound for each style, a few per style. Applied by setting
//! parameters (so hosts record them as ordinary parameter changes and undo works).
//! nice-plug exposes no CLAP preset-discovery or VST3 program list, so they live in the editor;
//! for VST3 hosts they are also written as standard `.vstpreset` files (`cargo xtask install`
//! puts them where hosts' preset browsers look).

use crate::model::vocab::{instrument_index, KEY_NAMES, STYLES};
use crate::knobs::KNOBS;
use crate::params::CantorParams;
use nice_plug::prelude::{ParamPtr, Params, PluginState};
use nice_plug::plugin::ParamValue;

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// (style name, weight) pairs; styles not named get weight 0.
    pub styles: &'static [(&'static str, f32)],
    pub instrument: &'static str,
    /// Free tempo (used when the tempo mode is "Free"; with "Follow host" the host decides).
    pub bpm: f32,
    pub key: &'static str,
    pub minor: bool,
    /// Every factory preset uses the knob's default: lower temperatures (0.7, 0.9) were measured
    /// following style, tempo and key less well (EVAL.md).
    pub temperature: f32,
    /// Every factory preset uses the knob's default (`knobs.rs` says how it was chosen).
    pub guidance: f32,
}

/// A factory preset at the default temperature and guidance (one that needs its own can say
/// `Preset { guidance: .., ..p(..) }`).
const fn p(name: &'static str, styles: &'static [(&'static str, f32)], instrument: &'static str, bpm: f32, key: &'static str, minor: bool) -> Preset {
    Preset { name, styles, instrument, bpm, key, minor, temperature: KNOBS.temperature.default, guidance: KNOBS.guidance.default }
}

pub const FACTORY: &[Preset] = &[
    p("Chorale: church organ", &[("chorale", 1.0)], "organ", 66.0, "G", false),
    p("Chorale: choir in minor", &[("chorale", 1.0)], "choir/pads", 60.0, "D", true),
    p("Air: slow strings", &[("air", 1.0)], "strings", 72.0, "D", false),
    p("Air: harp lament", &[("air", 1.0)], "plucked", 78.0, "E", true),
    p("Jig: flute session", &[("jig", 1.0)], "winds", 116.0, "D", false),
    p("Jig: parlour piano", &[("jig", 1.0)], "piano", 108.0, "G", false),
    p("Reel: fiddle drive", &[("reel", 1.0)], "strings", 118.0, "D", false),
    p("Reel: mallet shimmer", &[("reel", 1.0)], "mallets", 110.0, "A", true),
    p("Hornpipe: accordion", &[("hornpipe", 1.0)], "organ", 92.0, "A", false),
    p("Hornpipe: brass", &[("hornpipe", 1.0)], "brass", 88.0, "Bb", false),
    p("March: brass band", &[("march/polka", 1.0)], "brass", 112.0, "Bb", false),
    p("Polka: piano", &[("march/polka", 1.0)], "piano", 128.0, "F", false),
    p("Blend: jig into reel", &[("jig", 0.6), ("reel", 0.6)], "strings", 114.0, "E", true),
];

impl Preset {
    /// The parameter values this preset sets, as (parameter id, plain value).
    pub fn values(&self) -> Vec<(String, f32)> {
        let mut out: Vec<(String, f32)> = (0..STYLES.len())
            .map(|i| {
                let w = self.styles.iter().find(|(n, _)| *n == STYLES[i]).map_or(0.0, |(_, w)| *w);
                (format!("style_{}", i + 1), w)
            })
            .collect();
        let key = KEY_NAMES.iter().position(|k| *k == self.key).unwrap_or(0);
        out.push(("instrument".into(), instrument_index(self.instrument).unwrap_or(0) as f32));
        out.push(("tempo".into(), self.bpm));
        out.push(("key".into(), key as f32));
        out.push(("mode".into(), if self.minor { 1.0 } else { 0.0 }));
        out.push(("temperature".into(), self.temperature));
        out.push(("guidance".into(), self.guidance));
        out
    }

    /// The preset as a saved plugin state: only the parameters it sets (loading it leaves the
    /// others, like gain and seed, as they are), in the JSON form nice-plug saves and loads.
    pub fn state(&self) -> PluginState {
        let params = CantorParams::default();
        let map = params.param_map();
        let values = self
            .values()
            .into_iter()
            .filter_map(|(id, v)| {
                let value = match map.iter().find(|(i, _, _)| *i == id)?.1 {
                    ParamPtr::FloatParam(_) => ParamValue::F32(v),
                    ParamPtr::IntParam(_) | ParamPtr::EnumParam(_) => ParamValue::I32(v.round() as i32),
                    ParamPtr::BoolParam(_) => ParamValue::Bool(v >= 0.5),
                };
                Some((id, value))
            })
            .collect();
        PluginState { version: env!("CARGO_PKG_VERSION").to_string(), params: values, fields: Default::default() }
    }

    /// A VST3 preset file (`.vstpreset`, Steinberg's format): a header naming the plugin's class,
    /// the component state (`Comp` chunk: the JSON `state`), and the chunk list.
    pub fn vst3_preset_file(&self, class_id: &[u8; 16]) -> Vec<u8> {
        let state = serde_json::to_vec(&self.state()).expect("a plugin state always serialises");
        const HEADER: usize = 4 + 4 + 32 + 8;
        let mut out = Vec::with_capacity(HEADER + state.len() + 32);
        out.extend_from_slice(b"VST3");
        out.extend_from_slice(&1i32.to_le_bytes());
        // The class id as 32 hex digits, byte by byte (the SDK's FUID string on Linux and macOS).
        out.extend(class_id.iter().flat_map(|b| format!("{b:02X}").into_bytes()));
        let list_offset = (HEADER + state.len()) as i64;
        out.extend_from_slice(&list_offset.to_le_bytes());
        out.extend_from_slice(&state);
        out.extend_from_slice(b"List");
        out.extend_from_slice(&1i32.to_le_bytes());
        out.extend_from_slice(b"Comp");
        out.extend_from_slice(&(HEADER as i64).to_le_bytes());
        out.extend_from_slice(&(state.len() as i64).to_le_bytes());
        out
    }

    /// A file name for the preset: its name with characters file systems dislike replaced.
    pub fn file_stem(&self) -> String {
        self.name.replace(':', " -").chars().map(|c| if c.is_alphanumeric() || c == ' ' || c == '-' { c } else { '_' }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_names_real_labels_and_stays_in_range() {
        let params = CantorParams::default();
        let map = params.param_map();
        for preset in FACTORY {
            assert!(preset.styles.iter().all(|(s, _)| STYLES.contains(s)), "{}: unknown style", preset.name);
            assert!(instrument_index(preset.instrument).is_some(), "{}: unknown instrument", preset.name);
            assert!(KEY_NAMES.contains(&preset.key), "{}: unknown key", preset.name);
            for (id, value) in preset.values() {
                let (_, ptr, _) = map.iter().find(|(i, _, _)| *i == id).unwrap_or_else(|| panic!("{}: no parameter {id}", preset.name));
                // SAFETY: the pointer comes from `params`, alive here.
                let clamped = unsafe { ptr.preview_plain(ptr.preview_normalized(value)) };
                assert!((clamped - value).abs() < 1e-3, "{}: {id} = {value} is out of range", preset.name);
            }
        }
        // As a VST3 preset file: the JSON state sits between the header and the chunk list.
        let file = FACTORY[0].vst3_preset_file(b"CantorNeuralGen1");
        assert_eq!(&file[..4], b"VST3");
        assert_eq!(&file[8..40], b"43616E746F724E657572616C47656E31");
        let list = i64::from_le_bytes(file[40..48].try_into().unwrap()) as usize;
        assert_eq!(&file[list..list + 8], b"List\x01\x00\x00\x00");
        let state: PluginState = serde_json::from_slice(&file[48..list]).unwrap();
        assert!(matches!(state.params["instrument"], ParamValue::I32(2)), "{:?}", state.params["instrument"]);
        assert!(matches!(state.params["tempo"], ParamValue::F32(v) if v == 66.0));
        assert_eq!(FACTORY[0].file_stem(), "Chorale - church organ");
        // A few per style.
        for style in STYLES {
            assert!(FACTORY.iter().filter(|p| p.styles.iter().any(|(s, _)| *s == style)).count() >= 2, "fewer than two presets for {style}");
        }
    }
}
