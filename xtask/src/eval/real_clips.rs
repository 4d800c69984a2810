//! Real corpus clips as the evaluations hear them: the ones this machine can render, and how
//! they sound after the codec. Shared by the prior's evaluation (the style classifier's clips,
//! the real pieces' phrase contrast) and the estimators' (their labelled test clips).

use crate::dataset::recipe::ClipRecipe;
use crate::dataset::Dataset;
use cantor::model::codec::Codec;

/// Clips of `split` whose soundfont this machine has (the tests install only FluidR3).
pub fn renderable<'a>(ds: &'a Dataset, split: &'a str) -> impl Iterator<Item = &'a ClipRecipe> + 'a {
    let fonts = crate::dataset::render::soundfont_dir();
    ds.split(split).filter(move |c| fonts.join(&c.soundfont).exists())
}

/// The shipped codec's round trip (encode, decode whole) of `x`: what a perfect prior's music
/// would sound like after the decoder.
pub fn codec_roundtrip(codec: &Codec, x: &[f32]) -> anyhow::Result<Vec<f32>> {
    use candle_core::{Device, Tensor};
    let n = x.len() / codec.cfg.hop() * codec.cfg.hop();
    let codes = codec.encode(&Tensor::from_slice(&x[..n], (1, n), &Device::Cpu)?)?;
    Ok(codec.decode(&codes)?.squeeze(0)?.to_vec1::<f32>()?)
}
