//! The corpus as codec codes, for the prior: each clip rendered once and encoded by a frozen
//! codec, with its labels and its place on the musical grid. Cached under
//! `cache/tokens/<codec id>/<split>.{json,codes}`; a codec whose codes differ gets a new folder.

use super::recipe::{ClipRecipe, DatasetConfig};
use super::{cache_dir, progress, ClipSource, Dataset};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use cantor::model::codec::Codec;
use cantor::model::prior::codec_codes_id;
use cantor::model::prior::conditioning::PHRASE_BARS;
use cantor::model::prior::notes::FrameNote;
use cantor::model::vocab;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Labels and grid of one tokenised clip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClip {
    pub id: String,
    pub style: u32,
    pub instrument: u32,
    pub key: u32,
    pub mode: u32,
    pub bpm: f32,
    pub beats_per_bar: u32,
    /// Grid position of the clip's first frame, in beats from a bar line that starts a phrase
    /// (pick-ups count as the end of the previous phrase, so this is never negative).
    pub start_beats: f64,
    /// First frame of this clip in the codes array, and its length in frames.
    pub offset: usize,
    pub frames: usize,
}

impl TokenClip {
    /// Beats advanced per code frame.
    pub fn beats_per_frame(&self, frame_rate: f64) -> f64 {
        self.bpm as f64 / 60.0 / frame_rate
    }
}

/// One split of the tokenised corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub codec_id: String,
    pub levels: usize,
    pub codebook_size: usize,
    pub frame_rate: f64,
    pub clips: Vec<TokenClip>,
    /// Codes, frame-major: frame f of the set is `codes[f * levels..(f + 1) * levels]`.
    #[serde(skip)]
    pub codes: Vec<u16>,
    /// The notes each clip was rendered from, in frames from its first frame (index = clip), for
    /// the performer; stored beside the codes in `<split>.notes.json`. Empty for a corpus
    /// tokenised without them.
    #[serde(skip)]
    pub notes: Vec<Vec<FrameNote>>,
}

impl TokenSet {
    /// A clip's codes as `[frame][level]`.
    pub fn clip_codes(&self, clip: &TokenClip) -> Vec<Vec<u32>> {
        (0..clip.frames)
            .map(|f| {
                let at = (clip.offset + f) * self.levels;
                self.codes[at..at + self.levels].iter().map(|&c| c as u32).collect()
            })
            .collect()
    }

    pub fn save(&self, dir: &Path, split: &str) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes: Vec<u8> = self.codes.iter().flat_map(|c| c.to_le_bytes()).collect();
        let tmp = dir.join(format!("{split}.codes.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(format!("{split}.codes")))?;
        std::fs::write(dir.join(format!("{split}.json")), serde_json::to_string(self)?)?;
        if !self.notes.is_empty() {
            anyhow::ensure!(self.notes.len() == self.clips.len(), "{} clips but notes for {}", self.clips.len(), self.notes.len());
            std::fs::write(dir.join(format!("{split}.notes.json")), serde_json::to_string(&self.notes)?)?;
        }
        Ok(())
    }

    pub fn load(dir: &Path, split: &str) -> Result<Self> {
        let meta = dir.join(format!("{split}.json"));
        let mut set: TokenSet = serde_json::from_str(&std::fs::read_to_string(&meta).with_context(|| format!("no tokenised corpus at {} (run `cargo xtask dataset tokenize`)", meta.display()))?)?;
        let bytes = std::fs::read(dir.join(format!("{split}.codes")))?;
        set.codes = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
        let frames: usize = set.clips.iter().map(|c| c.frames).sum();
        anyhow::ensure!(set.codes.len() == frames * set.levels, "{}: {} codes for {frames} frames of {} levels", meta.display(), set.codes.len(), set.levels);
        let notes = dir.join(format!("{split}.notes.json"));
        if notes.exists() {
            set.notes = serde_json::from_str(&std::fs::read_to_string(&notes)?).with_context(|| format!("reading {}", notes.display()))?;
            anyhow::ensure!(set.notes.len() == set.clips.len(), "{}: notes for {} clips, codes for {}", notes.display(), set.notes.len(), set.clips.len());
        }
        Ok(set)
    }

    /// Hours of audio the split holds.
    pub fn hours(&self) -> f64 {
        self.clips.iter().map(|c| c.frames as f64 / self.frame_rate / 3600.0).sum()
    }

    /// Unigram entropy per code in nats (the baseline a prior must beat), averaged over levels.
    pub fn unigram_entropy(&self) -> f64 {
        let mut total = 0.0;
        for level in 0..self.levels {
            let mut counts = vec![0u64; self.codebook_size];
            for f in self.codes.chunks_exact(self.levels) {
                counts[f[level] as usize] += 1;
            }
            let n: u64 = counts.iter().sum();
            total -= counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n as f64 * (c as f64 / n as f64).ln()).sum::<f64>();
        }
        total / self.levels as f64
    }
}

/// Where the tokens of a codec live.
pub fn tokens_dir(codec_id: &str, quick: bool) -> PathBuf {
    cache_dir().join("tokens").join(if quick { format!("{codec_id}-quick") } else { codec_id.to_string() })
}

/// Labels and grid of a clip (everything the prior is conditioned on).
pub fn clip_labels(clip: &ClipRecipe) -> Result<(u32, u32, u32, u32, u32, f64)> {
    let style = vocab::style_index(&clip.style).with_context(|| format!("unknown style {:?}", clip.style))? as u32;
    let instrument = vocab::instrument_index(&clip.instrument).with_context(|| format!("unknown instrument {:?}", clip.instrument))? as u32;
    let mode = if clip.key_mode == "minor" { 1 } else { 0 };
    let beats_per_bar = (clip.bar_quarters / clip.beat_quarters).round().max(1.0) as u32;
    let mut start_beats = (clip.start_quarters - clip.first_full_bar_quarters) / clip.beat_quarters;
    let phrase_beats = (PHRASE_BARS * beats_per_bar) as f64;
    while start_beats < 0.0 {
        start_beats += phrase_beats;
    }
    Ok((style, instrument, clip.key_pitch_class as u32, mode, beats_per_bar, start_beats))
}

/// Give every clip of `set` the notes it was rendered from (`render::frame_notes`: the renderer's
/// own schedule in codec frames), from the corpus's recipes of `split`.
pub fn add_notes(set: &mut TokenSet, ds: &Dataset, split: &str) -> Result<()> {
    let recipes: std::collections::HashMap<&str, &ClipRecipe> = ds.split(split).map(|c| (c.id.as_str(), c)).collect();
    let mut source = ClipSource::new(ds.config.sample_rate);
    set.notes = set
        .clips
        .iter()
        .map(|clip| {
            let recipe = recipes.get(clip.id.as_str()).with_context(|| format!("{split}: clip {} is not in the corpus any more: tokenise again", clip.id))?;
            let notes = source.notes(recipe)?;
            Ok(super::render::frame_notes(recipe, &notes, 0.0, recipe.seconds, set.frame_rate))
        })
        .collect::<Result<_>>()?;
    Ok(())
}

/// Render and encode up to `hours` of each split (a seeded shuffle of its clips).
pub fn tokenize(codec_weights: &Path, quick: bool, hours: f64, valid_hours: f64) -> Result<PathBuf> {
    let device = Device::Cpu;
    let bytes = std::fs::read(codec_weights).with_context(|| format!("reading {}", codec_weights.display()))?;
    let codec = Codec::from_bytes(&bytes, &device)?;
    let codec_id = codec_codes_id(&codec)?;
    let dir = tokens_dir(&codec_id, quick);
    let ds = Dataset::build(&if quick { DatasetConfig::quick() } else { DatasetConfig::default() })?;
    for (split, budget) in [("train", hours), ("valid", valid_hours)] {
        // A split tokenised before with a smaller budget is extended, not redone: the clip order
        // is a seeded shuffle, so its clips are the first ones of the larger take and keep their codes.
        let earlier = if dir.join(format!("{split}.json")).exists() { Some(TokenSet::load(&dir, split)?) } else { None };
        if let Some(set) = &earlier {
            if set.hours() + 0.01 >= budget {
                println!("{split}: already tokenised in {} ({:.2} h)", dir.display(), set.hours());
                if set.notes.is_empty() {
                    let mut set = set.clone();
                    add_notes(&mut set, &ds, split)?;
                    set.save(&dir, split)?;
                    println!("{split}: wrote the notes of its {} clips", set.clips.len());
                }
                continue;
            }
        }
        let mut clips: Vec<&ClipRecipe> = ds.split(split).collect();
        clips.shuffle(&mut ChaCha8Rng::seed_from_u64(0x70C3));
        let mut take = Vec::new();
        let mut seconds = 0.0;
        for c in clips {
            if seconds >= budget * 3600.0 {
                break;
            }
            seconds += c.seconds;
            take.push(c);
        }
        let mut set = TokenSet { codec_id: codec_id.clone(), levels: codec.cfg.n_codebooks, codebook_size: codec.cfg.codebook_size, frame_rate: codec.cfg.frame_rate(), clips: Vec::new(), codes: Vec::new(), notes: Vec::new() };
        let mut source = ClipSource::new(codec.cfg.sample_rate);
        let bar = progress(take.len() as u64, &format!("tokenising {split}"));
        let hop = codec.cfg.hop();
        let mut failed = 0;
        let mut first_error = None;
        for (i, clip) in take.into_iter().enumerate() {
            bar.inc(1);
            if let Some((old_set, old_clip)) = earlier.as_ref().and_then(|e| e.clips.get(i).map(|c| (e, c))) {
                anyhow::ensure!(old_clip.id == clip.id, "{split}: the tokenised clip {i} is {} but the corpus now has {} there: delete {} and tokenise again", old_clip.id, clip.id, dir.display());
                let at = old_clip.offset * old_set.levels;
                set.clips.push(TokenClip { offset: set.codes.len() / set.levels, ..old_clip.clone() });
                set.codes.extend_from_slice(&old_set.codes[at..at + old_clip.frames * old_set.levels]);
                continue;
            }
            let audio = match source.render(clip) {
                Ok(a) => a,
                Err(e) => {
                    failed += 1;
                    bar.println(format!("{}: {e}", clip.id));
                    first_error.get_or_insert_with(|| format!("{}: {e}", clip.id));
                    continue;
                }
            };
            let n = audio.len() / hop * hop;
            if n == 0 {
                continue;
            }
            let codes = codec.encode(&Tensor::from_slice(&audio[..n], (1, n), &device)?)?.squeeze(0)?.to_vec2::<u32>()?;
            let (style, instrument, key, mode, beats_per_bar, start_beats) = clip_labels(clip)?;
            set.clips.push(TokenClip { id: clip.id.clone(), style, instrument, key, mode, bpm: clip.bpm as f32, beats_per_bar, start_beats, offset: set.codes.len() / set.levels, frames: codes.len() });
            set.codes.extend(codes.iter().flatten().map(|&c| c as u16));
        }
        bar.finish();
        add_notes(&mut set, &ds, split)?;
        // A partial corpus would train a different prior and break exact resume: refuse it
        // (a soundfont that is not installed silently loses every clip it plays, half the corpus).
        if let Some(e) = first_error {
            anyhow::bail!(
                "{failed} {split} clips failed to render (first: {e}); nothing was saved. Are both soundfonts installed? \
                 apt-get install fluid-soundfont-gm musescore-general-soundfont-lossless"
            );
        }
        set.save(&dir, split)?;
        let hours = set.hours();
        println!("{split}: {} clips, {hours:.2} h, {failed} failed to render, unigram entropy {:.3} nats/code", set.clips.len(), set.unigram_entropy());
    }
    Ok(dir)
}
