//! Cantor's parameters as nice-plug sees them. The knobs themselves (ids, names, ranges,
//! defaults, text, help) are defined once, in `knobs.rs`, which also generates `CantorParams`;
//! this file turns a table row into a nice-plug parameter and repairs saved states.
//!
//! **Parameter ids never change once released**: hosts store automation and presets by id.

use crate::knobs::{BoolKnob, EnumKnob, FloatKnob, FloatScale, IntKnob, KnobEnum, KnobValue, DEFAULT_STYLES, STYLE_WEIGHT};
pub use crate::knobs::{CantorParams, RunMode, Source, TempoMode, MAX_SEED};
use crate::model::vocab::STYLES;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;
use std::sync::Arc;

/// A table row's nice-plug parameter, and how to read its value back.
pub trait KnobParam: crate::knobs::KnobKind {
    type Param: Param;
    fn param(&self) -> Self::Param;
    fn value(param: &Self::Param) -> Self::Value;
}

impl KnobParam for FloatKnob {
    type Param = FloatParam;
    fn param(&self) -> FloatParam {
        let (min, max) = self.plain_range();
        let range = match self.scale {
            FloatScale::Linear => FloatRange::Linear { min, max },
            FloatScale::Skewed(exponent) => FloatRange::Skewed { min, max, factor: FloatRange::skew_factor(exponent) },
            FloatScale::Gain => FloatRange::Skewed { min, max, factor: FloatRange::gain_skew_factor(self.min, self.max) },
        };
        let (format, parse) = (*self, *self);
        let p = FloatParam::new(self.name, self.default_value(), range)
            .with_unit(self.unit)
            .with_value_to_string(Arc::new(move |v| format.format(v)))
            .with_string_to_value(Arc::new(move |s| parse.parse(s)));
        match self.step {
            Some(step) => p.with_step_size(step),
            None => p,
        }
    }
    fn value(param: &FloatParam) -> f32 {
        param.value()
    }
}

impl KnobParam for IntKnob {
    type Param = IntParam;
    fn param(&self) -> IntParam {
        let (format, parse) = (*self, *self);
        IntParam::new(self.name, self.default, IntRange::Linear { min: self.min, max: self.max })
            .with_value_to_string(Arc::new(move |v| format.format(v)))
            .with_string_to_value(Arc::new(move |s| parse.parse(s)))
    }
    fn value(param: &IntParam) -> i32 {
        param.value()
    }
}

impl KnobParam for BoolKnob {
    type Param = BoolParam;
    fn param(&self) -> BoolParam {
        BoolParam::new(self.name, self.default)
    }
    fn value(param: &BoolParam) -> bool {
        param.value()
    }
}

impl<T: KnobEnum + KnobValue + Enum + PartialEq + Sync + Send> KnobParam for EnumKnob<T> {
    type Param = EnumParam<T>;
    fn param(&self) -> EnumParam<T> {
        EnumParam::new(self.name, self.default)
    }
    fn value(param: &EnumParam<T>) -> T {
        param.value()
    }
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

/// One style's weight in the blend (`style_1`..`style_6`, named after the style).
#[derive(Params)]
pub struct StyleWeight {
    #[id = "style"]
    pub weight: FloatParam,
}

impl StyleWeight {
    pub fn new(i: usize) -> Self {
        let percent = FloatKnob { default: DEFAULT_STYLES[i], ..STYLE_WEIGHT };
        let (format, parse) = (percent, percent);
        Self {
            weight: FloatParam::new(STYLES[i], DEFAULT_STYLES[i], FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_unit(percent.unit)
                .with_value_to_string(Arc::new(move |v| format.format(v)))
                .with_string_to_value(Arc::new(move |s| parse.parse(s))),
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
        PluginState { version: "0.0.1".into(), params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), fields: Default::default() }
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
    fn every_knob_has_one_default_in_the_plugin_the_engine_and_the_command_line() {
        use crate::knobs::{parameter_ids, KnobValues};
        let table = KnobValues::default();
        let params = CantorParams::default();
        let map = params.param_map();
        assert_eq!(map.len(), parameter_ids().len(), "a parameter outside the knob table");
        for id in parameter_ids() {
            let (_, ptr, _) = map.iter().find(|(i, _, _)| *i == id).unwrap_or_else(|| panic!("no parameter {id}"));
            // SAFETY: the pointer comes from `params`, alive here.
            let plugin = unsafe { ptr.preview_plain(ptr.default_normalized_value()) };
            let want = table.plain(&id).unwrap();
            assert!((plugin - want).abs() <= 1e-6 * want.abs().max(1.0), "{id}: the parameter's default {plugin} is not the table's {want}");
        }
        assert_eq!(params.values(), table, "a parameter's value is not the table's default");
        assert_eq!(crate::engine::EngineShared::default().knobs().knobs, table, "the engine starts from other knobs");
        assert_eq!(crate::plugin::render::RenderSettings::default().knobs, table, "offline renders start from other knobs");
    }

    #[test]
    fn every_value_a_host_shows_as_text_reads_back_as_that_value() {
        // As a host does: value -> text (with and without the unit) -> value, across each range.
        let params = CantorParams::default();
        for (id, ptr, _) in params.param_map() {
            let steps = unsafe { ptr.step_count() }.map_or(2000, |n| n as usize);
            for i in 0..=steps {
                let normalized = i as f32 / steps as f32;
                // SAFETY: the pointer comes from `params`, alive here.
                unsafe {
                    let plain = ptr.preview_plain(normalized);
                    for with_unit in [true, false] {
                        let text = ptr.normalized_value_to_string(normalized, with_unit);
                        let back = ptr.string_to_normalized_value(&text).unwrap_or_else(|| panic!("{id}: {text:?} does not read back"));
                        let again = ptr.normalized_value_to_string(back, with_unit);
                        assert_eq!(again, text, "{id}: {text:?} reads back as {again:?}");
                        if steps < 2000 {
                            assert_eq!(ptr.preview_plain(back), plain, "{id}: {text:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_parameter_id_is_unique_and_stable() {
        // Ids are a promise to hosts' saved projects: this list only ever grows.
        let p = CantorParams::default();
        let ids: Vec<String> = p.param_map().into_iter().map(|(id, _, _)| id).collect();
        for id in [
            "gain",
            "width",
            "instrument",
            "tempo_mode",
            "tempo",
            "key",
            "mode",
            "key_midi",
            "temperature",
            "top_k",
            "top_p",
            "guidance",
            "repeat",
            "seed",
            "run_mode",
            "ahead",
            "midi_out",
            "source",
        ] {
            assert!(ids.iter().any(|i| i == id), "parameter id {id:?} disappeared");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "duplicate ids in {ids:?}");
    }
}
