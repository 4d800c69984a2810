//! The trained model built into every Cantor binary, so it works on a fresh machine with no download.

/// The codec's weights (f16 safetensors with a Cantor header; see `model::weights`).
pub static CODEC: &[u8] = include_bytes!("../../assets/models/codec.safetensors");
