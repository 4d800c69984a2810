//! Rendered clips with their codes, for training the codec's decoder away from this machine
//! (`xtask/gpu/decoder_twin.py` on a lent GPU, which has no Rust and no soundfont): each clip
//! rendered once at the codec's rate and encoded by the frozen codec, so the twin learns to
//! decode exactly the codes the prior writes.
//!
//! Written to `<out>/<split>.json` (codec id, rate, hop, levels, clips), `<split>.audio`
//! (16-bit little-endian PCM, clip after clip) and `<split>.codes` (u16 little-endian,
//! frames x levels), clips in a seeded shuffle of each split (its own seed, not the tokeniser's).

use super::recipe::{ClipRecipe, DatasetConfig};
use super::{progress, ClipSource, Dataset};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use cantor::model::codec::Codec;
use cantor::model::prior::codec_codes_id;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::Path;

/// Render and encode `minutes` of training clips and `valid_minutes` of validation clips.
pub fn export(codec_weights: &Path, out: &Path, minutes: f64, valid_minutes: f64) -> Result<()> {
    let device = Device::Cpu;
    let bytes = std::fs::read(codec_weights).with_context(|| format!("reading {}", codec_weights.display()))?;
    let codec = Codec::from_bytes(&bytes, &device)?;
    let codec_id = codec_codes_id(&codec)?;
    let ds = Dataset::build(&DatasetConfig::default())?;
    std::fs::create_dir_all(out)?;
    let hop = codec.cfg.hop();
    for (split, budget) in [("train", minutes), ("valid", valid_minutes)] {
        let mut clips: Vec<&ClipRecipe> = ds.split(split).collect();
        clips.shuffle(&mut ChaCha8Rng::seed_from_u64(0xDEC0));
        let mut source = ClipSource::new(codec.cfg.sample_rate);
        let (mut audio_out, mut codes_out) = (Vec::<u8>::new(), Vec::<u8>::new());
        let mut listed = Vec::new();
        let (mut seconds, mut clipped) = (0.0, 0usize);
        let bar = progress((budget * 60.0) as u64, &format!("rendering {split}"));
        for clip in clips {
            if seconds >= budget * 60.0 {
                break;
            }
            let audio = source.render(clip).with_context(|| format!("rendering {}", clip.id))?;
            let n = audio.len() / hop * hop;
            if n == 0 {
                continue;
            }
            let codes = codec.encode(&Tensor::from_slice(&audio[..n], (1, n), &device)?)?.squeeze(0)?.to_vec2::<u32>()?;
            for v in &audio[..n] {
                clipped += (v.abs() > 1.0) as usize;
                audio_out.extend_from_slice(&cantor::audio::to_pcm16(*v).to_le_bytes());
            }
            for c in codes.iter().flatten() {
                codes_out.extend_from_slice(&(*c as u16).to_le_bytes());
            }
            listed.push(serde_json::json!({"id": clip.id, "frames": codes.len()}));
            seconds += n as f64 / codec.cfg.sample_rate as f64;
            bar.set_position(seconds as u64);
        }
        bar.finish();
        std::fs::File::create(out.join(format!("{split}.audio")))?.write_all(&audio_out)?;
        std::fs::File::create(out.join(format!("{split}.codes")))?.write_all(&codes_out)?;
        let meta = serde_json::json!({
            "codec_id": codec_id, "sample_rate": codec.cfg.sample_rate, "hop": hop,
            "levels": codec.cfg.n_codebooks, "codebook_size": codec.cfg.codebook_size, "clips": listed,
        });
        std::fs::write(out.join(format!("{split}.json")), serde_json::to_string_pretty(&meta)?)?;
        println!("{split}: {} clips, {:.1} min, {clipped} samples clipped to full scale, in {}", listed.len(), seconds / 60.0, out.display());
    }
    Ok(())
}
