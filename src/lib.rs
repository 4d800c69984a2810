//! Cantor: a generative music instrument. See ARCHITECTURE.md for the data flow.
//!
//! - `model`: the codec and prior (candle), shared by the plugin, the CLI and the trainer.
//! - `audio`: resampling and WAV I/O; `midi`: Standard MIDI files of scores.
//! - `compose`: a whole tune from the score prior (`cantor compose`).
//! - `knobs`: every knob, defined once (parameters, engine values, command-line options).
//! - `engine`: the real-time bridge (generator thread, ring buffer, audio-side reader).
//! - `plugin`, `params`, `editor`: the CLAP/VST3 shell (feature `plugin`).

pub mod audio;
pub mod compose;
pub mod midi;
#[cfg(feature = "plugin")]
pub mod editor;
pub mod engine;
pub mod key_finder;
pub mod knobs;
pub mod model;
#[cfg(feature = "plugin")]
pub mod params;
#[cfg(feature = "plugin")]
pub mod plugin;
#[cfg(feature = "plugin")]
pub mod presets;
