//! The trained models built into every Cantor binary, so it works on a fresh machine with no
//! download. The files store their large linear layers as int8 (q8_0) blocks, the rest f16.

/// The codec.
pub static CODEC: &[u8] = include_bytes!("../../assets/models/codec-q8_0.safetensors");

/// The prior, when one has been trained and published (see build.rs).
#[cfg(cantor_prior)]
pub static PRIOR: Option<&[u8]> = Some(include_bytes!("../../assets/models/prior-q8_0.safetensors"));
#[cfg(not(cantor_prior))]
pub static PRIOR: Option<&[u8]> = None;

/// The score prior, when one has been trained, published and quantised (see build.rs; q8_0
/// writes a bar in half the time of f16 weights, `cargo xtask bench score`).
#[cfg(cantor_score)]
pub static SCORE: Option<&[u8]> = Some(include_bytes!("../../assets/models/score-q8_0.safetensors"));
#[cfg(not(cantor_score))]
pub static SCORE: Option<&[u8]> = None;

/// The performer (the codes prior conditioned on notes), when one has been trained, published
/// and quantised (`cargo xtask quantize prior --performer`; see build.rs). With the score prior
/// it makes the hierarchy the plugin plays.
#[cfg(cantor_performer)]
pub static PERFORMER: Option<&[u8]> = Some(include_bytes!("../../assets/models/performer-q8_0.safetensors"));
#[cfg(not(cantor_performer))]
pub static PERFORMER: Option<&[u8]> = None;
