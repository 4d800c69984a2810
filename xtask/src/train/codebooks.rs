//! Codebook re-fit: k-means on the encoder's latents, level by level, for a codec whose training
//! left codebooks underused (level 1 used 45% of its 512 codes on the test split; on the 15 h of
//! training tokens its perplexity was 51). The encoder and decoder stay as they are; only the
//! codebooks move, so the codec gets a new codes id and the tokenised corpus is re-mapped to it.
//!
//! The latents come from the tokenised corpus, not from encoding its 15 h of audio again (an
//! hour on two cores): the sum of a frame's eight codebook vectors is the encoder's latent up to
//! the last level's residual. `--check-clips` measures what that approximation costs: it renders
//! some validation clips, encodes them with the re-fitted codec's own encoder and quantiser, and
//! counts how often each level's code agrees with the re-mapped one.

use crate::dataset::recipe::DatasetConfig;
use crate::dataset::tokens::{tokens_dir, TokenSet};
use crate::dataset::{ClipSource, Dataset};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, D};
use cantor::model::codec::{Codec, CodecConfig, KIND};
use cantor::model::prior::codec_codes_id;
use cantor::model::weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct CodebookArgs {
    /// Codec weights whose codebooks are re-fitted (default: the shipped weights); the result
    /// replaces them.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Training frames the k-means sees (an even stride through the tokenised training split).
    #[arg(long, default_value_t = 400_000)]
    pub fit_frames: usize,
    /// Lloyd iterations per level.
    #[arg(long, default_value_t = 24)]
    pub iterations: usize,
    /// A code chosen by fewer frames than this share of an even split is moved onto a member of
    /// the cluster with the largest squared error (which splits that cluster), in all but the
    /// last quarter of the iterations.
    #[arg(long, default_value_t = 0.25)]
    pub min_share: f64,
    /// Validation clips rendered and encoded to measure the re-mapping against real encoding.
    #[arg(long, default_value_t = 16)]
    pub check_clips: usize,
}

const SEED: u64 = 0xC0DEB00C;
/// Rows per nearest-code matrix product (bounds the scores matrix at 32 MB).
const CHUNK: usize = 16_384;

/// Nearest code and its squared distance for each row of `x` [n * d].
fn nearest(x: &[f32], d: usize, book: &Tensor, book_sq: &Tensor) -> Result<(Vec<u32>, Vec<f32>)> {
    let n = x.len() / d;
    let (mut codes, mut dist) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for start in (0..n).step_by(CHUNK) {
        let rows = CHUNK.min(n - start);
        let chunk = &x[start * d..(start + rows) * d];
        let xt = Tensor::from_slice(chunk, (rows, d), &Device::Cpu)?;
        // |x - c|² = |x|² - 2 x·c + |c|²
        let scores = book_sq.broadcast_sub(&(xt.matmul(&book.t()?)? * 2.0)?)?;
        let idx = scores.argmin(D::Minus1)?.to_vec1::<u32>()?;
        let best = scores.min(D::Minus1)?.to_vec1::<f32>()?;
        for (r, (&i, &s)) in idx.iter().zip(&best).enumerate() {
            let row = &chunk[r * d..(r + 1) * d];
            codes.push(i);
            dist.push((row.iter().map(|v| v * v).sum::<f32>() + s).max(0.0));
        }
    }
    Ok((codes, dist))
}

fn book_tensors(book: &[f32], k: usize, d: usize) -> Result<(Tensor, Tensor)> {
    let t = Tensor::from_slice(book, (k, d), &Device::Cpu)?;
    let sq = t.sqr()?.sum(D::Minus1)?.unsqueeze(0)?;
    Ok((t, sq))
}

/// Rounded to f16, as the shipped weights store them (the codes must be those of the stored book).
fn round_f16(book: &[f32]) -> Result<Vec<f32>> {
    Ok(Tensor::from_slice(book, book.len(), &Device::Cpu)?.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec1()?)
}

/// Share of codes used and perplexity of their use.
fn usage(codes: &[u32], k: usize) -> (f64, f64) {
    let mut counts = vec![0u64; k];
    codes.iter().for_each(|&c| counts[c as usize] += 1);
    super::code_use(&counts)
}

/// Lloyd's k-means from `init`; underused codes re-seeded by splitting the worst cluster.
fn kmeans(x: &[f32], d: usize, init: &[f32], k: usize, iterations: usize, min_share: f64, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
    let n = x.len() / d;
    let min_count = (min_share * n as f64 / k as f64).max(1.0);
    let reseed_until = iterations - iterations / 4;
    let mut book = init.to_vec();
    for it in 0..iterations {
        let (bt, bsq) = book_tensors(&book, k, d)?;
        let (codes, dist) = nearest(x, d, &bt, &bsq)?;
        let mut count = vec![0f64; k];
        let mut err = vec![0f64; k];
        let mut sum = vec![0f64; k * d];
        for (r, &c) in codes.iter().enumerate() {
            let c = c as usize;
            count[c] += 1.0;
            err[c] += dist[r] as f64;
            for j in 0..d {
                sum[c * d + j] += x[r * d + j] as f64;
            }
        }
        for c in 0..k {
            if count[c] > 0.0 {
                for j in 0..d {
                    book[c * d + j] = (sum[c * d + j] / count[c]) as f32;
                }
            }
        }
        if it >= reseed_until {
            continue;
        }
        let mut starved: Vec<usize> = (0..k).filter(|&c| count[c] < min_count).collect();
        if starved.is_empty() {
            continue;
        }
        // Each starved code takes a random member of one of the clusters with the largest squared
        // error; Lloyd's next step then splits that cluster between the two codes.
        let mut worst: Vec<usize> = (0..k).filter(|&c| count[c] >= 2.0 * min_count).collect();
        worst.sort_by(|&a, &b| err[b].total_cmp(&err[a]));
        starved.truncate(worst.len());
        let targets: HashMap<usize, usize> = worst.iter().take(starved.len()).enumerate().map(|(i, &c)| (c, i)).collect();
        // Reservoir sampling of one member per target cluster.
        let mut pick = vec![(0usize, 0f64); starved.len()];
        for (r, &c) in codes.iter().enumerate() {
            if let Some(&slot) = targets.get(&(c as usize)) {
                pick[slot].1 += 1.0;
                if rng.random::<f64>() * pick[slot].1 < 1.0 {
                    pick[slot].0 = r;
                }
            }
        }
        for (slot, &code) in starved.iter().enumerate() {
            let r = pick[slot].0;
            book[code * d..(code + 1) * d].copy_from_slice(&x[r * d..(r + 1) * d]);
        }
    }
    Ok(book)
}

/// Each frame's latent as the sum of its codes' vectors [frames * d].
fn latents(set: &TokenSet, books: &[Vec<f32>], d: usize, stride: usize) -> Vec<f32> {
    let frames = set.codes.len() / set.levels;
    let mut out = Vec::with_capacity(frames / stride * d + d);
    for f in (0..frames).step_by(stride) {
        let at = out.len();
        out.resize(at + d, 0.0);
        for (l, book) in books.iter().enumerate() {
            let c = set.codes[f * set.levels + l] as usize;
            for j in 0..d {
                out[at + j] += book[c * d + j];
            }
        }
    }
    out
}

/// One level of residual quantisation: each row's nearest code in `book`, taken off `residual`.
fn quantize_level(residual: &mut [f32], d: usize, book: &[f32], k: usize) -> Result<Vec<u32>> {
    let (bt, bsq) = book_tensors(book, k, d)?;
    let (codes, _) = nearest(residual, d, &bt, &bsq)?;
    for (r, &c) in codes.iter().enumerate() {
        for j in 0..d {
            residual[r * d + j] -= book[c as usize * d + j];
        }
    }
    Ok(codes)
}

/// Codes of every level for latents `x` [n * d]: residual quantisation with `books`.
fn encode(x: &[f32], d: usize, books: &[Vec<f32>], k: usize) -> Result<Vec<Vec<u32>>> {
    let mut residual = x.to_vec();
    books.iter().map(|book| quantize_level(&mut residual, d, book, k)).collect()
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| (*v as f64).powi(2)).sum()
}

pub fn refit(args: &CodebookArgs) -> Result<()> {
    let device = Device::Cpu;
    let path = args.weights.clone().unwrap_or_else(super::codec::published_weights);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let old = Codec::from_bytes(&bytes, &device)?;
    let old_id = codec_codes_id(&old)?;
    let raw = weights::parse::<CodecConfig>(&bytes, KIND, &device)?;
    let cfg = raw.config.clone();
    let (levels, k, d) = (cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim);
    let old_books: Vec<Vec<f32>> = (0..levels).map(|l| old.quantizer.codebook(l).flatten_all()?.to_vec1::<f32>()).collect::<candle_core::Result<_>>()?;
    let old_dir = tokens_dir(&old_id, false);
    let train = TokenSet::load(&old_dir, "train")?;
    let valid = TokenSet::load(&old_dir, "valid")?;
    let frames = train.codes.len() / levels;
    let stride = (frames / args.fit_frames.max(1)).max(1);
    let sample = latents(&train, &old_books, d, stride);
    println!("codec {old_id}: fitting {levels} codebooks of {k} on {} of {frames} training frames ({:.1} h)", sample.len() / d, train.hours());

    // Fit level by level on what the levels before leave over.
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut residual = sample.clone();
    let total_energy = energy(&sample);
    let old_codes = encode(&sample, d, &old_books, k)?;
    let mut books = Vec::with_capacity(levels);
    let mut level_stats = Vec::with_capacity(levels);
    println!("| level | old: codes used, perplexity | re-fitted: codes used, perplexity | residual energy after the level (share of the latent's) |");
    println!("|---|---|---|---|");
    for l in 0..levels {
        let book = round_f16(&kmeans(&residual, d, &old_books[l], k, args.iterations, args.min_share, &mut rng)?)?;
        let codes = quantize_level(&mut residual, d, &book, k)?;
        let (ou, op) = usage(&old_codes[l], k);
        let (nu, np) = usage(&codes, k);
        let left = energy(&residual) / total_energy;
        println!("| {} | {:.0}%, {op:.0} | {:.0}%, {np:.0} | {left:.4} |", l + 1, ou * 100.0, nu * 100.0);
        level_stats.push(serde_json::json!({"old_used": ou, "old_perplexity": op, "used": nu, "perplexity": np, "residual_energy": left}));
        books.push(book);
    }

    // The re-fitted codec: the same file with the new codebooks.
    let mut tensors = raw.tensors.clone();
    for (l, book) in books.iter().enumerate() {
        tensors.insert(format!("quantizer.level{l}.codebook"), Tensor::from_slice(book, (k, d), &device)?);
    }
    let new_bytes = weights::to_bytes(KIND, &cfg, &tensors, DType::F16)?;
    let new = Codec::from_bytes(&new_bytes, &device)?;
    let new_id = codec_codes_id(&new)?;
    for (l, book) in books.iter().enumerate() {
        anyhow::ensure!(new.quantizer.codebook(l).flatten_all()?.to_vec1::<f32>()? == *book, "level {l}'s codebook did not survive storing as f16");
    }

    // Re-map the tokenised corpus.
    let new_dir = tokens_dir(&new_id, false);
    let mut remapped_valid = None;
    for (name, set) in [("train", &train), ("valid", &valid)] {
        let codes = encode(&latents(set, &old_books, d, 1), d, &books, k)?;
        let n = codes[0].len();
        let mut out = TokenSet { codec_id: new_id.clone(), codes: vec![0; n * levels], ..set.clone() };
        for (l, level) in codes.iter().enumerate() {
            for (f, &c) in level.iter().enumerate() {
                out.codes[f * levels + l] = c as u16;
            }
        }
        let used: Vec<String> = codes.iter().map(|c| format!("{:.0}%", usage(c, k).0 * 100.0)).collect();
        println!("{name}: {n} frames re-mapped; codes used per level {}; unigram entropy {:.3} nats/code (was {:.3})", used.join(", "), out.unigram_entropy(), set.unigram_entropy());
        out.save(&new_dir, name)?;
        if name == "valid" {
            remapped_valid = Some(out);
        }
    }

    let agreement = check_against_encoding(&new, &old, &valid, remapped_valid.as_ref().expect("the valid split was re-mapped"), args.check_clips)?;

    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &new_bytes)?;
    std::fs::rename(&tmp, &path)?;
    println!("codebooks re-fitted: codes id {old_id} -> {new_id}; weights {}; tokens {}", path.display(), new_dir.display());
    // The committed record of the re-fit (eval codec names it as the codebooks' provenance).
    let rec = serde_json::json!({
        "old_id": old_id, "new_id": new_id, "fit_frames": sample.len() / d, "iterations": args.iterations,
        "min_share": args.min_share, "levels": level_stats, "check_clips": args.check_clips, "agreement_with_encoding": agreement,
    });
    super::log_line(&crate::dataset::repo_root().join("assets/training/codec-log-codebooks.jsonl"), &rec)
}

/// Render `clips` validation clips and encode them with each codec's own encoder: how often the
/// re-mapped codes equal the re-fitted codec's real codes, per level (and the old tokens the
/// old codec's, which must be all of them).
fn check_against_encoding(new: &Codec, old: &Codec, valid: &TokenSet, remapped: &TokenSet, clips: usize) -> Result<Vec<f64>> {
    if clips == 0 {
        return Ok(Vec::new());
    }
    let ds = Dataset::build(&DatasetConfig::default())?;
    let recipes: HashMap<&str, _> = ds.split("valid").map(|c| (c.id.as_str(), c)).collect();
    let mut source = ClipSource::new(new.cfg.sample_rate);
    let (levels, hop) = (new.cfg.n_codebooks, new.cfg.hop());
    let mut agree = vec![0usize; levels];
    let (mut old_same, mut total) = (0usize, 0usize);
    // The re-mapped split keeps the old one's clips, in order.
    for (clip, remapped_clip) in valid.clips.iter().zip(&remapped.clips).take(clips) {
        let recipe = recipes.get(clip.id.as_str()).with_context(|| format!("validation clip {} is not in the corpus", clip.id))?;
        let audio = source.render(recipe)?;
        let n = audio.len() / hop * hop;
        let x = Tensor::from_slice(&audio[..n], (1, n), &Device::Cpu)?;
        let real_new = new.encode(&x)?.squeeze(0)?.to_vec2::<u32>()?;
        let real_old = old.encode(&x)?.squeeze(0)?.to_vec2::<u32>()?;
        let (tokens, remapped) = (valid.clip_codes(clip), remapped.clip_codes(remapped_clip));
        for f in 0..tokens.len().min(real_new.len()) {
            total += 1;
            old_same += (real_old[f] == tokens[f]) as usize;
            for l in 0..levels {
                agree[l] += (real_new[f][l] == remapped[f][l]) as usize;
            }
        }
    }
    let agreement: Vec<f64> = agree.iter().map(|&a| a as f64 / total.max(1) as f64).collect();
    let shares: Vec<String> = agreement.iter().map(|a| format!("{:.0}%", a * 100.0)).collect();
    println!(
        "check on {clips} validation clips ({total} frames): re-mapped codes equal the re-fitted codec's own encoding for {} of frames per level; the old tokens equal the old codec's encoding for {:.1}% of frames",
        shares.join(", "),
        old_same as f64 / total.max(1) as f64 * 100.0
    );
    Ok(agreement)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points in a few tight clusters of very different sizes, and a codebook with every code but
    /// two parked far away from them: a collapsed codebook like the trained codec's level 1.
    fn clusters(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
        let mut x = Vec::new();
        for (centre, n) in [(0.0f32, 3000), (5.0, 600), (-5.0, 200), (9.0, 50)] {
            for _ in 0..n {
                x.extend((0..d).map(|j| centre * if j % 2 == 0 { 1.0 } else { -1.0 } + rng.random_range(-1.0f32..1.0)));
            }
        }
        x
    }

    #[test]
    fn kmeans_revives_a_collapsed_codebook_and_lowers_the_error() {
        let (d, k) = (4, 16);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = clusters(&mut rng, d);
        let mut init = vec![100.0f32; k * d];
        init[..d].fill(0.0);
        init[d..2 * d].fill(1.0);
        let error = |book: &[f32]| -> f64 {
            let (bt, bsq) = book_tensors(book, k, d).unwrap();
            nearest(&x, d, &bt, &bsq).unwrap().1.iter().map(|&v| v as f64).sum()
        };
        let (bt, bsq) = book_tensors(&init, k, d).unwrap();
        let before = usage(&nearest(&x, d, &bt, &bsq).unwrap().0, k).0;
        let book = kmeans(&x, d, &init, k, 12, 0.25, &mut rng).unwrap();
        let (bt, bsq) = book_tensors(&book, k, d).unwrap();
        let (codes, _) = nearest(&x, d, &bt, &bsq).unwrap();
        let after = usage(&codes, k).0;
        assert!(before <= 2.0 / k as f64, "the start uses {before}");
        assert_eq!(after, 1.0, "every code is used after the re-fit");
        assert!(error(&book) < 0.5 * error(&init), "{} against {}", error(&book), error(&init));
        // Every code still holds a real share: none left with a stray point or two.
        let mut counts = vec![0usize; k];
        codes.iter().for_each(|&c| counts[c as usize] += 1);
        assert!(counts.iter().all(|&c| c >= 10), "{counts:?}");
    }

    #[test]
    fn residual_codes_of_the_latents_rebuild_them_level_by_level() {
        let (d, k) = (4, 16);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = clusters(&mut rng, d);
        let mut books = Vec::new();
        let mut residual = x.clone();
        for _ in 0..3 {
            let init: Vec<f32> = residual[..k * d].to_vec();
            let book = kmeans(&residual, d, &init, k, 10, 0.25, &mut rng).unwrap();
            quantize_level(&mut residual, d, &book, k).unwrap();
            books.push(book);
        }
        // `encode` gives the same codes as the fit, and each level leaves less behind.
        let codes = encode(&x, d, &books, k).unwrap();
        let mut left = x.clone();
        let mut energies = vec![energy(&left)];
        for (l, book) in books.iter().enumerate() {
            for (r, &c) in codes[l].iter().enumerate() {
                for j in 0..d {
                    left[r * d + j] -= book[c as usize * d + j];
                }
            }
            energies.push(energy(&left));
        }
        assert_eq!(left, residual);
        assert!(energies.windows(2).all(|w| w[1] < w[0]), "{energies:?}");
    }
}
