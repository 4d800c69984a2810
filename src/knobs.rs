//! Every knob, defined once.
//!
//! One row of the table at the bottom of this file holds a knob's stable id, display name,
//! range, default, text formatting and help. From that row come:
//! - the nice-plug parameter (`params::CantorParams`, with the id hosts save automation under),
//! - the plain values the engine reads (`KnobValues`, published through `EngineShared` atomics),
//! - the command line's option (`cantor render --<cli name>`, parsed by the same text reader a
//!   host uses, so `--top-k off` and `--gain-db -6` mean what the editor shows),
//! - the defaults of presets and of offline renders.
//!
//! Adding a knob is one row here plus the code that uses its value. Style weights are the one
//! exception: six parameters (`style_1`..`style_6`) in a nested array, blended by the `--style`
//! option's own syntax (`reel=1,jig=0.5`).

use crate::model::vocab::{pitch_class, BPM_RANGE, INSTRUMENT_FAMILIES, KEY_NAMES, MODES, STYLES};
use std::sync::atomic::{AtomicU32, Ordering};
// The derives below name these traits as in scope.
#[cfg(feature = "plugin")]
use nice_plug::prelude::{Enum, Params};

/// Number of style weights (the model vocabulary's styles).
pub const N_STYLES: usize = STYLES.len();

/// The style blend a new instance starts with: a reel.
pub const DEFAULT_STYLES: [f32; N_STYLES] = {
    let mut w = [0.0; N_STYLES];
    w[3] = 1.0;
    w
};

/// Each style's weight in the blend (parameters `style_1`..`style_6`, named after the style;
/// `DEFAULT_STYLES` gives each one's default).
pub const STYLE_WEIGHT: FloatKnob = FloatKnob::new(
    "style",
    "Style weight",
    (0.0, 1.0),
    0.0,
    "How much of this style to play; several at once blend them. All at zero lets the model choose.",
)
.text(FloatText::Percent, "%")
.cli(None);

/// Largest seed (seeds are shown and typed as plain numbers).
pub const MAX_SEED: i32 = 99_999;

/// Longest look-ahead (the ring buffer is sized for it).
pub const MAX_AHEAD_S: f32 = 2.0;

/// Decibels to linear gain, the formula nice-plug's parameters use (`util::db_to_gain`), so the
/// engine's default gain is the parameter's to the bit.
pub fn db_to_gain(db: f32) -> f32 {
    if db > -100.0 {
        10f32.powf(db * 0.05)
    } else {
        0.0
    }
}

/// Linear gain to decibels (nice-plug's `util::gain_to_db`).
pub fn gain_to_db(gain: f32) -> f32 {
    f32::max(gain, 1e-5).log10() * 20.0
}

/// A knob's value as the engine stores it in one atomic word and as a host sees it (a plain
/// `f32`: the parameter's own unit, indices for choices, 0/1 for switches).
pub trait KnobValue: Copy {
    fn to_bits(self) -> u32;
    fn from_bits(bits: u32) -> Self;
    fn to_plain(self) -> f32;
    fn from_plain(plain: f32) -> Self;
}

impl KnobValue for f32 {
    fn to_bits(self) -> u32 {
        f32::to_bits(self)
    }
    fn from_bits(bits: u32) -> Self {
        f32::from_bits(bits)
    }
    fn to_plain(self) -> f32 {
        self
    }
    fn from_plain(plain: f32) -> Self {
        plain
    }
}

impl KnobValue for i32 {
    fn to_bits(self) -> u32 {
        self as u32
    }
    fn from_bits(bits: u32) -> Self {
        bits as i32
    }
    fn to_plain(self) -> f32 {
        self as f32
    }
    fn from_plain(plain: f32) -> Self {
        plain.round() as i32
    }
}

impl KnobValue for bool {
    fn to_bits(self) -> u32 {
        self as u32
    }
    fn from_bits(bits: u32) -> Self {
        bits != 0
    }
    fn to_plain(self) -> f32 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    fn from_plain(plain: f32) -> Self {
        plain >= 0.5
    }
}

/// How a float knob reads as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FloatText {
    /// The value with this many decimals, then the unit.
    Decimals(usize),
    /// 0-1 shown as 0-100 %.
    Percent,
    /// A linear gain shown in dB (the table's range and default are in dB).
    Decibels,
}

/// How a float knob's slider moves across its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FloatScale {
    Linear,
    /// nice-plug's `FloatRange::Skewed` with `skew_factor(exponent)`: negative exponents give
    /// the low end more of the slider.
    Skewed(f32),
    /// A gain in dB laid out as the dB scale (`gain_skew_factor`).
    Gain,
}

/// A continuous knob.
#[derive(Debug, Clone, Copy)]
pub struct FloatKnob {
    pub id: &'static str,
    pub name: &'static str,
    /// Range and default, in the units the user reads (dB for `FloatText::Decibels`).
    pub min: f32,
    pub max: f32,
    pub default: f32,
    pub scale: FloatScale,
    pub text: FloatText,
    /// Shown after the value ("%", " BPM").
    pub unit: &'static str,
    /// Smallest step a host may set (tempo in tenths of a BPM), if any.
    pub step: Option<f32>,
    /// The `cantor render` option, if the command line takes this knob.
    pub cli: Option<&'static str>,
    pub help: &'static str,
}

impl FloatKnob {
    const fn new(id: &'static str, name: &'static str, (min, max): (f32, f32), default: f32, help: &'static str) -> Self {
        Self { id, name, min, max, default, scale: FloatScale::Linear, text: FloatText::Decimals(2), unit: "", step: None, cli: Some(id), help }
    }
    const fn text(self, text: FloatText, unit: &'static str) -> Self {
        Self { text, unit, ..self }
    }
    const fn scale(self, scale: FloatScale) -> Self {
        Self { scale, ..self }
    }
    const fn step(self, step: f32) -> Self {
        Self { step: Some(step), ..self }
    }
    const fn cli(self, cli: Option<&'static str>) -> Self {
        Self { cli, ..self }
    }

    /// Plain range (linear gain for a gain knob).
    pub fn plain_range(&self) -> (f32, f32) {
        match self.text {
            FloatText::Decibels => (db_to_gain(self.min), db_to_gain(self.max)),
            _ => (self.min, self.max),
        }
    }

    pub fn default_value(&self) -> f32 {
        match self.text {
            FloatText::Decibels => db_to_gain(self.default),
            _ => self.default,
        }
    }

    /// The value as text, without the unit (the host adds it).
    pub fn format(&self, plain: f32) -> String {
        // "-0.00" reads as a bug: values that round to zero print as zero.
        let fixed = |v: f32, digits: usize| {
            let m = 10f32.powi(digits as i32);
            if (v * m).round() == 0.0 {
                format!("{:.digits$}", 0.0)
            } else {
                format!("{v:.digits$}")
            }
        };
        match self.text {
            FloatText::Decimals(d) => fixed(plain, d),
            FloatText::Percent => fixed(plain * 100.0, 0),
            FloatText::Decibels => fixed(gain_to_db(plain), 1),
        }
    }

    /// Text (with or without the unit) to a plain value; `None` if it is not a number. Not
    /// clamped: callers say whether out of range is an error (command line) or clamps (hosts).
    pub fn parse(&self, text: &str) -> Option<f32> {
        let t = text.trim();
        let t = t.strip_suffix(self.unit.trim()).unwrap_or(t).trim();
        let v: f32 = match self.text {
            FloatText::Decimals(_) => t.parse().ok()?,
            FloatText::Percent => t.trim_end_matches('%').trim().parse::<f32>().ok()? / 100.0,
            FloatText::Decibels => {
                let t = t.strip_suffix("dB").or_else(|| t.strip_suffix("db")).unwrap_or(t).trim();
                if t.eq_ignore_ascii_case("-inf") {
                    0.0
                } else {
                    db_to_gain(t.parse().ok()?)
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

/// What an integer knob's values are called.
#[derive(Debug, Clone, Copy)]
pub enum IntText {
    Number,
    /// 0 reads as "off" (top-k).
    NumberOrOff,
    /// Value i is `names[i]`.
    Names(&'static [&'static str]),
    /// A pitch class shown as `KEY_NAMES` spells it, read in any spelling `vocab::pitch_class`
    /// knows ("Db", "c#", "E-").
    PitchClass,
}

/// A stepped knob: a number or a choice among names.
#[derive(Debug, Clone, Copy)]
pub struct IntKnob {
    pub id: &'static str,
    pub name: &'static str,
    pub min: i32,
    pub max: i32,
    pub default: i32,
    pub text: IntText,
    pub cli: Option<&'static str>,
    pub help: &'static str,
}

impl IntKnob {
    const fn new(id: &'static str, name: &'static str, (min, max): (i32, i32), default: i32, help: &'static str) -> Self {
        Self { id, name, min, max, default, text: IntText::Number, cli: Some(id), help }
    }
    const fn names(id: &'static str, name: &'static str, names: &'static [&'static str], default: i32, help: &'static str) -> Self {
        Self { id, name, min: 0, max: names.len() as i32 - 1, default, text: IntText::Names(names), cli: Some(id), help }
    }
    const fn text(self, text: IntText) -> Self {
        Self { text, ..self }
    }
    const fn cli(self, cli: Option<&'static str>) -> Self {
        Self { cli, ..self }
    }

    pub fn format(&self, v: i32) -> String {
        match self.text {
            IntText::NumberOrOff if v == 0 => "off".into(),
            IntText::Names(names) => names.get(v.max(0) as usize).copied().unwrap_or("?").into(),
            IntText::PitchClass => KEY_NAMES.get(v.max(0) as usize).copied().unwrap_or("?").into(),
            _ => v.to_string(),
        }
    }

    /// A name (any case) or a number; "off" is 0 for `NumberOrOff`. Not clamped.
    pub fn parse(&self, text: &str) -> Option<i32> {
        let t = text.trim();
        match self.text {
            IntText::NumberOrOff if t.eq_ignore_ascii_case("off") => Some(0),
            IntText::Names(names) => names.iter().position(|n| n.eq_ignore_ascii_case(t)).map(|i| i as i32).or_else(|| t.parse().ok()),
            IntText::PitchClass => pitch_class(t).map(i32::from).or_else(|| t.parse().ok()),
            _ => t.parse().ok(),
        }
    }

    /// The accepted values, for error messages.
    pub fn describe_range(&self) -> String {
        match self.text {
            IntText::Names(names) => names.join(", "),
            IntText::PitchClass => "a note name such as C, F#, Bb".into(),
            IntText::NumberOrOff => format!("off or 1-{}", self.max),
            IntText::Number => format!("{}-{}", self.min, self.max),
        }
    }
}

/// An on/off switch.
#[derive(Debug, Clone, Copy)]
pub struct BoolKnob {
    pub id: &'static str,
    pub name: &'static str,
    pub default: bool,
    pub help: &'static str,
}

/// A choice among the variants of an enum (`TempoMode`, `RunMode`).
#[derive(Debug, Clone, Copy)]
pub struct EnumKnob<T: 'static> {
    pub id: &'static str,
    pub name: &'static str,
    pub default: T,
    pub help: &'static str,
}

/// Enums a knob chooses among: each variant's stable id (saved by hosts) and display name.
pub trait KnobEnum: Copy + PartialEq + 'static {
    const VARIANTS: &'static [Self];
    fn variant_index(self) -> usize {
        Self::VARIANTS.iter().position(|v| *v == self).unwrap_or(0)
    }
    fn from_variant_index(i: usize) -> Self {
        Self::VARIANTS[i.min(Self::VARIANTS.len() - 1)]
    }
}

macro_rules! knob_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $vdoc:literal])* $variant:ident = ($vid:tt, $vname:tt)),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "plugin", derive(Enum))]
        pub enum $name {
            $($(#[doc = $vdoc])* #[cfg_attr(feature = "plugin", id = $vid)] #[cfg_attr(feature = "plugin", name = $vname)] $variant,)+
        }
        impl KnobEnum for $name {
            const VARIANTS: &'static [Self] = &[$($name::$variant),+];
        }
        impl KnobValue for $name {
            fn to_bits(self) -> u32 {
                self.variant_index() as u32
            }
            fn from_bits(bits: u32) -> Self {
                <Self as KnobEnum>::from_variant_index(bits as usize)
            }
            fn to_plain(self) -> f32 {
                self.variant_index() as f32
            }
            fn from_plain(plain: f32) -> Self {
                <Self as KnobEnum>::from_variant_index(plain.max(0.0).round() as usize)
            }
        }
    };
}

knob_enum! {
    /// Where the tempo comes from.
    TempoMode {
        /// The host's tempo.
        Host = ("host", "Follow host"),
        /// The free Tempo knob.
        Free = ("free", "Free"),
    }
}

knob_enum! {
    /// When Cantor plays.
    RunMode {
        /// While the host transport plays; starting playback restarts from (seed, position).
        Transport = ("transport", "Follow transport"),
        /// All the time.
        Always = ("always", "Always"),
        /// While at least one MIDI note is held, fading in and out.
        NoteHeld = ("note", "While a note is held"),
    }
}

knob_enum! {
    /// Where the notes Cantor plays come from.
    Source {
        /// The score prior writes the tune.
        Compose = ("compose", "Compose"),
        /// The notes arriving from the host (a MIDI clip or a keyboard), with their velocity and
        /// the sustain pedal, played after the latency Cantor reports to the host.
        PlayMyNotes = ("play", "Play my notes"),
        /// The player's notes, as with `PlayMyNotes`; when the player rests a beat before a bar
        /// line, the score prior continues their last bars from that bar line on, in their key,
        /// until they play again (call and response).
        Continue = ("continue", "Continue my phrase"),
    }
}

/// The plain-value type of each kind of knob.
pub trait KnobKind {
    type Value: KnobValue;
    fn default_value(&self) -> Self::Value;
}
impl KnobKind for FloatKnob {
    type Value = f32;
    fn default_value(&self) -> f32 {
        FloatKnob::default_value(self)
    }
}
impl KnobKind for IntKnob {
    type Value = i32;
    fn default_value(&self) -> i32 {
        self.default
    }
}
impl KnobKind for BoolKnob {
    type Value = bool;
    fn default_value(&self) -> bool {
        self.default
    }
}
impl<T: KnobEnum + KnobValue> KnobKind for EnumKnob<T> {
    type Value = T;
    fn default_value(&self) -> T {
        self.default
    }
}

/// A knob as the command line and tests see it, whatever its kind.
pub trait KnobInfo: Sync {
    fn id(&self) -> &'static str;
    fn name(&self) -> &'static str;
    fn help(&self) -> &'static str;
    /// The `cantor render` option naming it, if any.
    fn cli(&self) -> Option<&'static str>;
    /// The default as the text the editor shows.
    fn default_text(&self) -> String;
    /// Text to a plain value, with a plain-words error for the command line (out of range is
    /// an error there, where a host would clamp).
    fn parse_plain(&self, text: &str) -> Result<f32, String>;
    /// The plain range (linear gain for a gain knob; indices for choices).
    fn plain_range(&self) -> (f32, f32);
    /// A plain value set by code (offline renders, evaluations), checked as the command line
    /// checks text.
    fn check_plain(&self, plain: f32) -> Result<(), String> {
        let (lo, hi) = self.plain_range();
        if plain.is_finite() && plain >= lo && plain <= hi {
            Ok(())
        } else {
            Err(format!("{} must be between {lo} and {hi}, not {plain}", self.name()))
        }
    }
}

/// The `id`, `name` and `help` getters of `KnobInfo`, which every kind's row holds as fields.
macro_rules! knob_labels {
    () => {
        fn id(&self) -> &'static str {
            self.id
        }
        fn name(&self) -> &'static str {
            self.name
        }
        fn help(&self) -> &'static str {
            self.help
        }
    };
}

impl KnobInfo for FloatKnob {
    knob_labels!();
    fn cli(&self) -> Option<&'static str> {
        self.cli
    }
    fn default_text(&self) -> String {
        self.format(self.default_value())
    }
    fn parse_plain(&self, text: &str) -> Result<f32, String> {
        let flag = self.cli.unwrap_or(self.id);
        // On the command line a percentage knob also takes its plain fraction (`--repeat 0.75`),
        // as scripts have always passed it; "75%" works too.
        let fraction = (self.text == FloatText::Percent && !text.trim().ends_with('%')).then(|| text.trim().parse::<f32>().ok()).flatten();
        let v = fraction.or_else(|| self.parse(text)).filter(|v| v.is_finite()).ok_or_else(|| format!("--{flag}: {text:?} is not a number"))?;
        let (lo, hi) = self.plain_range();
        if v < lo * (1.0 - 1e-6) || v > hi * (1.0 + 1e-6) {
            return Err(format!("--{flag} must be between {} and {}, not {}", self.min, self.max, text.trim()));
        }
        Ok(v.clamp(lo, hi))
    }
    fn plain_range(&self) -> (f32, f32) {
        FloatKnob::plain_range(self)
    }
}

impl KnobInfo for IntKnob {
    knob_labels!();
    fn cli(&self) -> Option<&'static str> {
        self.cli
    }
    fn default_text(&self) -> String {
        self.format(self.default)
    }
    fn parse_plain(&self, text: &str) -> Result<f32, String> {
        let flag = self.cli.unwrap_or(self.id);
        match self.parse(text) {
            Some(v) if (self.min..=self.max).contains(&v) => Ok(v as f32),
            _ => Err(format!("--{flag}: unknown {} {:?}; use {}", self.name.to_lowercase(), text.trim(), self.describe_range())),
        }
    }
    fn plain_range(&self) -> (f32, f32) {
        (self.min as f32, self.max as f32)
    }
}

impl KnobInfo for BoolKnob {
    knob_labels!();
    fn cli(&self) -> Option<&'static str> {
        None
    }
    fn default_text(&self) -> String {
        if self.default { "On" } else { "Off" }.into()
    }
    fn parse_plain(&self, text: &str) -> Result<f32, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(1.0),
            "off" | "false" | "0" => Ok(0.0),
            _ => Err(format!("--{}: {text:?} is not on or off", self.id)),
        }
    }
    fn plain_range(&self) -> (f32, f32) {
        (0.0, 1.0)
    }
}

impl<T: KnobEnum + KnobValue + Sync> KnobInfo for EnumKnob<T> {
    knob_labels!();
    fn cli(&self) -> Option<&'static str> {
        None
    }
    fn default_text(&self) -> String {
        self.default.variant_index().to_string()
    }
    fn parse_plain(&self, text: &str) -> Result<f32, String> {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|&i| i < T::VARIANTS.len())
            .map(|i| i as f32)
            .ok_or_else(|| format!("--{}: {text:?} is not a choice", self.id))
    }
    fn plain_range(&self) -> (f32, f32) {
        (0.0, (T::VARIANTS.len() - 1) as f32)
    }
}

/// Instrument family names, in the vocabulary's order.
static INSTRUMENT_NAMES: [&str; INSTRUMENT_FAMILIES.len()] = {
    let mut n = [""; INSTRUMENT_FAMILIES.len()];
    let mut i = 0;
    while i < n.len() {
        n[i] = INSTRUMENT_FAMILIES[i].0;
        i += 1;
    }
    n
};

/// Generates, from the table: `KnobTable`/`KNOBS` (each knob's description), `KnobValues`
/// (one plain value per knob, plus the style blend) with its defaults and access by id,
/// `KnobAtomics` (the engine's copy), and with the `plugin` feature `CantorParams`.
macro_rules! knob_table {
    ($( $(#[doc = $doc:literal])+ $field:ident [$id:tt] : $kind:ty = $spec:expr; )+) => {
        /// Every knob's description (see the module docs).
        pub struct KnobTable {
            $( $(#[doc = $doc])+ pub $field: $kind, )+
        }

        /// The table.
        pub const KNOBS: KnobTable = KnobTable { $( $field: $spec, )+ };

        impl KnobTable {
            /// Every knob, in table order, for the command line and the tests.
            pub fn all(&self) -> Vec<&dyn KnobInfo> {
                vec![$( &self.$field as &dyn KnobInfo, )+]
            }
        }

        /// One value per knob, as the engine and offline renders use them: what the parameters
        /// hold (gain as linear gain, choices as indices), plus the style blend.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct KnobValues {
            $( $(#[doc = $doc])+ pub $field: <$kind as KnobKind>::Value, )+
            /// Style blend weights (not normalised; all zero lets the model choose).
            pub styles: [f32; N_STYLES],
        }

        impl Default for KnobValues {
            fn default() -> Self {
                Self { $( $field: KnobKind::default_value(&KNOBS.$field), )+ styles: DEFAULT_STYLES }
            }
        }

        impl KnobValues {
            /// The plain value of parameter `id` (`style_1`..`style_6` included), as a host sees it.
            pub fn plain(&self, id: &str) -> Option<f32> {
                match id {
                    $( $id => Some(self.$field.to_plain()), )+
                    _ => style_slot(id).map(|i| self.styles[i]),
                }
            }

            /// Set parameter `id` from a plain value; false if there is no such parameter.
            pub fn set_plain(&mut self, id: &str, plain: f32) -> bool {
                match id {
                    $( $id => self.$field = KnobValue::from_plain(plain), )+
                    _ => match style_slot(id) {
                        Some(i) => self.styles[i] = plain,
                        None => return false,
                    },
                }
                true
            }
        }

        /// Every parameter id, in table order, then the style weights.
        pub fn parameter_ids() -> Vec<String> {
            let mut ids: Vec<String> = vec![$( $id.to_string(), )+];
            ids.extend((1..=N_STYLES).map(|i| format!("style_{i}")));
            ids
        }

        /// The engine's copy of the knobs: one atomic word each, written by one side (the
        /// plugin, through `EngineShared::publish_knobs`) and read by the generator.
        pub(crate) struct KnobAtomics {
            $( $field: AtomicU32, )+
            styles: [AtomicU32; N_STYLES],
        }

        impl KnobAtomics {
            pub(crate) fn new(v: &KnobValues) -> Self {
                Self {
                    $( $field: AtomicU32::new(v.$field.to_bits()), )+
                    styles: std::array::from_fn(|i| AtomicU32::new(v.styles[i].to_bits())),
                }
            }
            pub(crate) fn store(&self, v: &KnobValues, order: Ordering) {
                $( self.$field.store(v.$field.to_bits(), order); )+
                for (a, w) in self.styles.iter().zip(v.styles) {
                    a.store(w.to_bits(), order);
                }
            }
            pub(crate) fn load(&self, order: Ordering) -> KnobValues {
                KnobValues {
                    $( $field: KnobValue::from_bits(self.$field.load(order)), )+
                    styles: std::array::from_fn(|i| f32::from_bits(self.styles[i].load(order))),
                }
            }
        }

        /// Cantor's parameters: every one automatable and saved with the project.
        ///
        /// **Parameter ids never change once released**: hosts store automation and presets by
        /// id. Add new parameters with new ids; never rename, reuse or remove an id.
        #[cfg(feature = "plugin")]
        #[derive(Params)]
        pub struct CantorParams {
            $( $(#[doc = $doc])+ #[id = $id] pub $field: <$kind as crate::params::KnobParam>::Param, )+
            /// Style blend: one weight per trained style (all zero lets the model choose).
            #[nested(array, group = "Style")]
            pub styles: [crate::params::StyleWeight; N_STYLES],
            /// The editor window's logical size, saved with the project so the window reopens as
            /// the user left it (written by the editor when the host resizes it).
            #[persist = "editor-size"]
            pub editor_size: std::sync::Arc<std::sync::RwLock<crate::params::EditorSize>>,
        }

        #[cfg(feature = "plugin")]
        impl Default for CantorParams {
            fn default() -> Self {
                use crate::params::KnobParam;
                Self {
                    $( $field: KNOBS.$field.param(), )+
                    styles: std::array::from_fn(crate::params::StyleWeight::new),
                    editor_size: std::sync::Arc::new(std::sync::RwLock::new(crate::params::EditorSize::DEFAULT)),
                }
            }
        }

        #[cfg(feature = "plugin")]
        impl CantorParams {
            /// Every knob's current value (what the host and editor set), read once.
            pub fn values(&self) -> KnobValues {
                use crate::params::KnobParam;
                KnobValues {
                    $( $field: <$kind as KnobParam>::value(&self.$field), )+
                    styles: std::array::from_fn(|i| self.styles[i].weight.value()),
                }
            }
        }
    };
}

impl KnobAtomics {
    /// The output gain alone (the reader reads it every block).
    pub(crate) fn gain(&self) -> f32 {
        f32::from_bits(self.gain.load(Ordering::Relaxed))
    }
    /// The look-ahead alone (the generator reads it between blocks).
    pub(crate) fn ahead(&self) -> f32 {
        f32::from_bits(self.ahead.load(Ordering::Relaxed))
    }
    /// The stereo width alone (the widener starts from it after a reset).
    pub(crate) fn width(&self) -> f32 {
        f32::from_bits(self.width.load(Ordering::Relaxed))
    }
}

/// The style slot of `style_1`..`style_6`.
fn style_slot(id: &str) -> Option<usize> {
    id.strip_prefix("style_")?.parse::<usize>().ok().filter(|i| (1..=N_STYLES).contains(i)).map(|i| i - 1)
}

knob_table! {
    /// Output level, smoothed on the audio thread. -6 dB leaves headroom for the host's mix.
    gain["gain"]: FloatKnob = FloatKnob::new("gain", "Output gain", (-60.0, 12.0), -6.0, "Output level.")
        .text(FloatText::Decibels, " dB").scale(FloatScale::Gain).cli(Some("gain-db"));
    /// Stereo width of the output: 0 mono, 1 natural, 2 wide.
    width["width"]: FloatKnob = FloatKnob::new("width", "Stereo width", (0.0, 2.0), 1.0,
        "Stereo width: 0 mono, 100% natural, 200% wide. Always folds back to mono cleanly.")
        .text(FloatText::Percent, "%");
    /// General MIDI instrument family the music is played on.
    instrument["instrument"]: IntKnob = IntKnob::names("instrument", "Instrument", &INSTRUMENT_NAMES, 0,
        "The instrument family the music is played on.");
    /// Where the tempo comes from: the host, or the free Tempo knob.
    tempo_mode["tempo_mode"]: EnumKnob<TempoMode> = EnumKnob { id: "tempo_mode", name: "Tempo mode", default: TempoMode::Host,
        help: "Follow the host's tempo, or use the free tempo below." };
    /// Tempo in free mode (and `cantor render --bpm`), counting the beats of the host's time
    /// signature as the corpus does (`vocab::Meter`: dotted quarters in 6/8, half notes in 2/2).
    tempo["tempo"]: FloatKnob = FloatKnob::new("tempo", "Tempo", BPM_RANGE, 120.0,
        "Tempo in free mode, in beats of the time signature (dotted quarters in 6/8, half notes in 2/2); 60-180, the range the model was trained on.")
        .text(FloatText::Decimals(1), " BPM").step(0.1).cli(Some("bpm"));
    /// Key tonic as a pitch class (C = 0).
    key["key"]: IntKnob = IntKnob::new("key", "Key", (0, 11), 2,
        "Key tonic. With \"Key follows MIDI\", the last note you play sets it.").text(IntText::PitchClass);
    /// Major or minor.
    mode["mode"]: IntKnob = IntKnob::names("mode", "Mode", &MODES, 0, "Major or minor.");
    /// The last MIDI note played sets the key tonic.
    key_follows_midi["key_midi"]: BoolKnob = BoolKnob { id: "key_midi", name: "Key follows MIDI", default: false,
        help: "Play a MIDI note to set the key tonic." };
    /// Sampling temperature. 1, the model's own distribution, follows style, tempo and key
    /// better than 0.9 or 0.7, which drift toward a generic sustained texture (EVAL.md).
    temperature["temperature"]: FloatKnob = FloatKnob::new("temperature", "Temperature", (0.0, 2.0), 1.0,
        "How adventurous: 0 always takes the likeliest continuation, 1 follows the model, above 1 gets wild.");
    /// Sample only among the k likeliest codes; 0 turns it off.
    top_k["top_k"]: IntKnob = IntKnob::new("top_k", "Top-k", (0, 512), 0,
        "Choose only among the k likeliest codes (off = all). Lower is safer.").text(IntText::NumberOrOff).cli(Some("top-k"));
    /// Nucleus mass: 0.95 cuts the unlikeliest 5% tail; 1 turns it off.
    top_p["top_p"]: FloatKnob = FloatKnob::new("top_p", "Top-p", (0.05, 1.0), 0.95,
        "Choose only among the likeliest codes that together reach this probability (1 = off). Lower is safer.")
        .cli(Some("top-p"));
    /// Classifier-free guidance: 0 ignores the knobs, 1 is plain conditioning, above 1
    /// exaggerates them. 7 puts the tempo within 5% in 73% of takes against 58% at 5, style and
    /// key unchanged within noise, at the cost of 3 dB less energy above 1.5 kHz (EVAL.md).
    guidance["guidance"]: FloatKnob = FloatKnob::new("guidance", "Guidance", (0.0, 8.0), 7.0,
        "How strongly style, instrument, key and tempo are imposed: 0 ignores them, above 1 exaggerates them.");
    /// How closely the second playing of each 8-bar strain follows the first
    /// (`model::prior::sampling::REPEAT_MAX_BIAS` at 1). 1 gives generated reels the phrase
    /// contrast nearest real ones' (EVAL.md, strain repetition).
    repeat["repeat"]: FloatKnob = FloatKnob::new("repeat", "Repeat", (0.0, 1.0), 1.0,
        "Each 8-bar strain is played twice, as in a dance tune: how closely the second playing follows the first. 0 lets the music wander freely.")
        .text(FloatText::Percent, "%");
    /// Seed of the generator's random choices: the same seed and automation give the same music.
    seed["seed"]: IntKnob = IntKnob::new("seed", "Seed", (0, MAX_SEED), 1,
        "The same seed and the same automation give the same music, bit for bit.");
    /// When Cantor plays.
    run_mode["run_mode"]: EnumKnob<RunMode> = EnumKnob { id: "run_mode", name: "Run mode", default: RunMode::Transport,
        help: "Play with the host transport (restarting from the seed at the play position), always, or while a MIDI note is held." };
    /// Where the notes come from: the score prior, the player's MIDI, or both in turn.
    source["source"]: EnumKnob<Source> = EnumKnob { id: "source", name: "Source", default: Source::Compose,
        help: "Compose: Cantor writes the tune. Play my notes: it performs the notes you send it (a MIDI clip or a keyboard) with their velocity and the sustain pedal, silent between them, after the latency it reports to the host. Continue my phrase: it performs your notes, and when you rest for a beat before a bar line it carries on from your last bars (up to 8) in their key and the chosen style, until you play again." };
    /// Send the notes played as MIDI (a note output port), sample-aligned with the audio.
    midi_out["midi_out"]: BoolKnob = BoolKnob { id: "midi_out", name: "MIDI out", default: true,
        help: "Send the notes Cantor plays as MIDI, in time with its audio, so a DAW can record them (tune on channels 1-4, chords on 5, bass on 6)." };
    /// Seconds of audio generated ahead. 0.09 s: a knob change reaches the output within
    /// about 140 ms (this buffer, one 27 ms render step, the resampler, one 13 ms frame of the
    /// delay pattern; `cargo bench --bench generator` measures it), while a CPU spike of up to
    /// 90 ms is absorbed.
    ahead["ahead"]: FloatKnob = FloatKnob::new("ahead", "Look-ahead", (0.05, MAX_AHEAD_S), 0.09,
        "Audio generated ahead: smaller follows knob moves faster, larger survives CPU spikes.")
        .text(FloatText::Decimals(2), " s").scale(FloatScale::Skewed(-1.0)).cli(None);
}

/// The knobs as `cantor render` options (`--<cli name> VALUE`, help from the table), read as
/// text and converted by `values`, so every bad value is reported at once.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Default)]
pub struct KnobArgs {
    /// (parameter id, text given), for the knobs given on the command line.
    given: Vec<(&'static str, String)>,
}

#[cfg(feature = "cli")]
impl KnobArgs {
    /// Whether the knob with parameter id `id` was given on the command line.
    pub fn is_given(&self, id: &str) -> bool {
        self.given.iter().any(|(given, _)| *given == id)
    }

    /// The table's defaults with the given options applied; every problem in plain words.
    pub fn values(&self) -> Result<KnobValues, Vec<String>> {
        let mut values = KnobValues::default();
        let mut errors = Vec::new();
        let knobs = KNOBS.all();
        for (id, text) in &self.given {
            let knob = knobs.iter().find(|k| k.id() == *id).expect("options are made from the table");
            match knob.parse_plain(text) {
                Ok(v) => {
                    values.set_plain(id, v);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }
}

#[cfg(feature = "cli")]
impl clap::FromArgMatches for KnobArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let given =
            KNOBS.all().iter().filter(|k| k.cli().is_some()).filter_map(|k| matches.get_one::<String>(k.id()).map(|t| (k.id(), t.clone()))).collect();
        Ok(Self { given })
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(feature = "cli")]
impl clap::Args for KnobArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KNOBS.all().into_iter().fold(cmd, |cmd, k| match k.cli() {
            Some(flag) => cmd.arg(clap::Arg::new(k.id()).long(flag).value_name("VALUE").allow_negative_numbers(true).help(format!(
                "{} [default: {}]",
                k.help(),
                k.default_text()
            ))),
            None => cmd,
        })
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_round_trip_through_the_atomics_and_by_id() {
        let mut v = KnobValues::default();
        v.run_mode = RunMode::NoteHeld;
        v.top_k = 40;
        v.key_follows_midi = true;
        v.styles[1] = 0.25;
        let a = KnobAtomics::new(&KnobValues::default());
        a.store(&v, Ordering::Relaxed);
        assert_eq!(a.load(Ordering::Relaxed), v);
        let mut w = KnobValues::default();
        for id in parameter_ids() {
            assert!(w.set_plain(&id, v.plain(&id).unwrap()), "{id}");
        }
        assert_eq!(w, v);
        assert!(!w.set_plain("style_7", 1.0) && w.plain("nonsense").is_none());
    }

    #[cfg(feature = "cli")]
    #[test]
    fn the_command_line_defaults_are_the_table_and_options_read_as_hosts_read_text() {
        use clap::{Args, FromArgMatches};
        let cmd = KnobArgs::augment_args(clap::Command::new("render"));
        let parse = |args: &[&str]| KnobArgs::from_arg_matches(&cmd.clone().try_get_matches_from(args).unwrap()).unwrap().values();
        assert_eq!(parse(&["render"]), Ok(KnobValues::default()));
        let v =
            parse(&["render", "--top-k", "off", "--gain-db", "-12", "--instrument", "plucked", "--key", "F#", "--repeat", "0.5", "--width", "150%"])
                .unwrap();
        assert_eq!((v.top_k, v.instrument, v.key, v.repeat, v.width), (0, 5, 6, 0.5, 1.5));
        assert_eq!(v.gain, db_to_gain(-12.0));
        let errors = parse(&["render", "--bpm", "999", "--top-k", "lots", "--mode", "dorian"]).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn float_text_reads_back_with_or_without_its_unit() {
        assert_eq!(KNOBS.width.parse("150%"), Some(1.5));
        assert_eq!(KNOBS.width.parse("150"), Some(1.5));
        assert_eq!(KNOBS.tempo.parse("116.5 BPM"), Some(116.5));
        assert_eq!(KNOBS.ahead.parse("0.25 s"), Some(0.25));
        assert_eq!(KNOBS.gain.parse("-6.0 dB"), Some(db_to_gain(-6.0)));
        assert_eq!(KNOBS.gain.format(db_to_gain(-0.001)), "0.0");
        assert_eq!(KNOBS.top_k.parse("OFF"), Some(0));
        assert_eq!(KNOBS.instrument.parse("Strings"), Some(1));
        // Any spelling of a tonic, as `cantor render --key` has always taken.
        assert_eq!((KNOBS.key.parse("Db"), KNOBS.key.parse("c#"), KNOBS.key.parse("E-"), KNOBS.key.format(1)), (Some(1), Some(1), Some(3), "C#".into()));
        assert!(KNOBS.temperature.parse("warm").is_none() && KNOBS.temperature.parse("NaN").is_none());
        assert!(KNOBS.repeat.parse_plain("300%").is_err() && KNOBS.repeat.parse_plain("3").is_err());
        assert_eq!(KNOBS.repeat.parse_plain("0.5"), Ok(0.5));
        assert_eq!(KNOBS.repeat.parse_plain("50%"), Ok(0.5));
    }
}
