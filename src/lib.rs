//! Cantor: a generative music instrument. See ARCHITECTURE.md for the data flow.
//!
//! - `model`: the codec and prior (candle), shared by the plugin, the CLI and the trainer.
//! - `audio`: resampling and WAV I/O.
//! - `engine`: the real-time bridge (generator thread, ring buffer, audio-side reader).
//! - `plugin`, `params`, `editor`: the CLAP/VST3 shell (feature `plugin`).

pub mod audio;
#[cfg(feature = "plugin")]
pub mod editor;
pub mod engine;
pub mod model;
#[cfg(feature = "plugin")]
pub mod params;
#[cfg(feature = "plugin")]
pub mod plugin;
#[cfg(feature = "plugin")]
pub mod presets;
