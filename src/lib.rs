//! Cantor: a generative music instrument. See ARCHITECTURE.md for the data flow.
//!
//! - `model`: the codec and prior (candle), shared by the plugin, the CLI and the trainer.
//! - `audio`: resampling and WAV I/O.

pub mod audio;
pub mod engine;
pub mod model;
