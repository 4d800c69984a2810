//! The trained model built into every Cantor binary, so it works on a fresh machine with no download.

/// The codec: decoder linear layers as int8 (q8_0) blocks, the rest f16 (see `model::weights`).
pub static CODEC: &[u8] = include_bytes!("../../assets/models/codec-q8_0.safetensors");
