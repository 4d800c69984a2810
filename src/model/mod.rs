//! Cantor's neural models, shared by inference (engine, CLI) and training (xtask): one definition,
//! no export step. Nothing here knows about the plugin, the editor or the real-time engine.

pub mod codec;
pub mod codes;
#[cfg(any(feature = "cli", feature = "plugin"))]
pub mod embedded;
pub mod nn;
pub mod pair;
pub mod prior;
pub mod spectral;
pub mod vocab;
pub mod weights;
