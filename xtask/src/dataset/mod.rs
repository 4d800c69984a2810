//! `cargo xtask dataset`: the licence-clean, labelled training corpus.
//!
//! Pipeline: `export` (music21 scores → MIDI + index.jsonl, committed under assets/corpus) →
//! `build` (index → clip recipes with labels and splits: manifest.jsonl in the cache) →
//! `render` (recipes → WAV files in the cache; optional, training renders on the fly).

pub mod decoder_set;
pub mod index;
pub mod labels;
pub mod recipe;
pub mod tokens;
pub mod render;
pub mod score;
pub mod scores;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use recipe::{build_recipes, ClipRecipe, DatasetConfig};
use render::Renderer;
use score::Note;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pinned so a re-export gives the same MIDI.
pub const MUSIC21_VERSION: &str = "10.5.1";

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}

/// The committed score corpus: index.jsonl and midi/.
pub fn corpus_dir() -> PathBuf {
    repo_root().join("assets/corpus")
}

/// Where rendered audio, tokenised corpora and checkpoints' scratch live: $CANTOR_CACHE or ./cache.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CANTOR_CACHE").map(PathBuf::from).unwrap_or_else(|| repo_root().join("cache"))
}

pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// `dataset export`: run the music21 exporter in a venv it creates (resumes where it stopped).
pub fn export(collections: Option<&str>, limit: usize) -> Result<()> {
    let venv = cache_dir().join("venv-music21");
    let python = venv.join("bin/python");
    if !python.exists() {
        println!("creating {} with music21=={MUSIC21_VERSION}", venv.display());
        run(std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", &format!("music21=={MUSIC21_VERSION}")]))?;
    }
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(repo_root().join("xtask/python/export_midi.py")).arg("--out").arg(corpus_dir());
    if let Some(c) = collections {
        cmd.arg("--collections").arg(c);
    }
    if limit > 0 {
        cmd.arg("--limit").arg(limit.to_string());
    }
    run(&mut cmd)
}

/// Run a command to completion; its failure (or absence) is an error naming it.
pub fn run(cmd: &mut std::process::Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// A built corpus: its config and clip recipes.
pub struct Dataset {
    pub config: DatasetConfig,
    pub clips: Vec<ClipRecipe>,
}

impl Dataset {
    /// Recipes for `cfg` from the committed corpus.
    pub fn build(cfg: &DatasetConfig) -> Result<Self> {
        let pieces = index::read_index(&corpus_dir().join("index.jsonl"))?;
        Ok(Self { config: cfg.clone(), clips: build_recipes(cfg, &pieces) })
    }

    pub fn split<'a>(&'a self, split: &'a str) -> impl Iterator<Item = &'a ClipRecipe> + 'a {
        self.clips.iter().filter(move |c| c.split == split)
    }

    pub fn dir(&self) -> PathBuf {
        cache_dir().join("dataset").join(&self.config.name)
    }

    /// Write config.json and manifest.jsonl (one recipe per line) into `dir`.
    pub fn write_manifest(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&self.config)?)?;
        let mut out = String::new();
        for c in &self.clips {
            out.push_str(&serde_json::to_string(c)?);
            out.push('\n');
        }
        std::fs::write(dir.join("manifest.jsonl"), out)?;
        Ok(())
    }
}

/// Renders clips on demand, parsing each piece's MIDI once.
pub struct ClipSource {
    renderer: Renderer,
    notes: HashMap<String, Arc<Vec<Note>>>,
}

impl ClipSource {
    pub fn new(sample_rate: u32) -> Self {
        Self { renderer: Renderer::new(render::soundfont_dir(), sample_rate), notes: HashMap::new() }
    }

    pub fn notes(&mut self, clip: &ClipRecipe) -> Result<Arc<Vec<Note>>> {
        if let Some(n) = self.notes.get(&clip.midi) {
            return Ok(n.clone());
        }
        let path = corpus_dir().join(&clip.midi);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let notes = Arc::new(score::parse_midi(&bytes).with_context(|| format!("{}", path.display()))?);
        self.notes.insert(clip.midi.clone(), notes.clone());
        Ok(notes)
    }

    pub fn render(&mut self, clip: &ClipRecipe) -> Result<Vec<f32>> {
        let notes = self.notes(clip)?;
        self.renderer.render(clip, &notes)
    }

    pub fn render_span(&mut self, clip: &ClipRecipe, offset: f64, seconds: f64) -> Result<Vec<f32>> {
        let notes = self.notes(clip)?;
        self.renderer.render_span(clip, &notes, offset, seconds)
    }
}

/// File name of a clip's WAV in the cache.
pub fn wav_name(clip: &ClipRecipe) -> String {
    clip.id.replace(['/', '#'], "_") + ".wav"
}

/// `dataset build` and `dataset render`: write the manifest, then (if `render` is given) the
/// clips of that split (`Some(None)`: all splits) as WAV, at most `limit` of them spread evenly
/// (0: all), skipping those already there. Returns the clips skipped for errors, by reason.
pub fn build_and_render(cfg: &DatasetConfig, render: Option<Option<&str>>, limit: usize) -> Result<BTreeMap<String, usize>> {
    let ds = Dataset::build(cfg)?;
    let dir = ds.dir();
    ds.write_manifest(&dir)?;
    println!("{} clips, manifest in {}", ds.clips.len(), dir.join("manifest.jsonl").display());
    print_summary(&ds)?;
    let mut failures = BTreeMap::new();
    let Some(split) = render else {
        return Ok(failures);
    };
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio)?;
    let mut todo: Vec<&ClipRecipe> = ds.clips.iter().filter(|c| split.is_none_or(|s| c.split == s)).collect();
    if limit > 0 && todo.len() > limit {
        let stride = todo.len() as f64 / limit as f64;
        todo = (0..limit).map(|i| todo[(i as f64 * stride) as usize]).collect();
    }
    let pb = progress(todo.len() as u64, "render");
    let mut source = ClipSource::new(cfg.sample_rate);
    let started = std::time::Instant::now();
    let mut rendered_s = 0.0;
    for clip in todo {
        pb.inc(1);
        let path = audio.join(wav_name(clip));
        if path.exists() {
            continue;
        }
        match source.render(clip) {
            Ok(samples) => {
                rendered_s += clip.seconds;
                // Write to a temporary name first, so an interrupted run never leaves a torn file.
                let tmp = path.with_extension("wav.part");
                cantor::audio::Wav::write_mono(&tmp, &samples, cfg.sample_rate, 1)?;
                std::fs::rename(&tmp, &path)?;
            }
            Err(e) => {
                pb.println(format!("skipped {}: {e:#}", clip.id));
                *failures.entry(format!("{:#}", e).chars().take(80).collect::<String>()).or_insert(0) += 1;
            }
        }
    }
    pb.finish();
    let wall = started.elapsed().as_secs_f64();
    println!("rendered {:.1} min of audio in {:.1} s ({:.0}x real time)", rendered_s / 60.0, wall, rendered_s / wall.max(1e-9));
    for (reason, n) in &failures {
        println!("render skips: {n} x {reason}");
    }
    Ok(failures)
}

/// Hours, or minutes when under an hour.
fn duration(hours: f64) -> String {
    if hours >= 1.0 {
        format!("{hours:.1} h")
    } else {
        format!("{:.1} min", hours * 60.0)
    }
}

/// Hours per split, style, instrument family and key, and the exporter's skips by reason.
pub fn print_summary(ds: &Dataset) -> Result<()> {
    let mut tables: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for c in &ds.clips {
        let h = c.seconds / 3600.0;
        *tables.entry("split").or_default().entry(c.split.clone()).or_default() += h;
        *tables.entry("style").or_default().entry(c.style.clone()).or_default() += h;
        *tables.entry("instrument").or_default().entry(c.instrument.clone()).or_default() += h;
        *tables.entry("key").or_default().entry(format!("{} {}", c.key_tonic, c.key_mode)).or_default() += h;
        *tables.entry("collection").or_default().entry(c.collection.clone()).or_default() += h;
        *tables.entry("accompaniment").or_default().entry(c.accompaniment.to_string()).or_default() += h;
    }
    let total: f64 = ds.clips.iter().map(|c| c.seconds).sum::<f64>() / 3600.0;
    println!("total: {} in {} clips", duration(total), ds.clips.len());
    for (name, rows) in tables {
        let line: Vec<String> = rows.iter().map(|(k, h)| format!("{k}: {}", duration(*h))).collect();
        println!("{name:>13}: {}", line.join(", "));
    }
    let pieces = index::read_index(&corpus_dir().join("index.jsonl"))?;
    let mut skips: BTreeMap<String, usize> = BTreeMap::new();
    for p in pieces.iter().filter(|p| p.status != "ok") {
        let reason = p.reason.clone().unwrap_or_default();
        let kind = reason.split(':').next().unwrap_or("").to_string();
        *skips.entry(kind).or_default() += 1;
    }
    println!("exported pieces: {} ok, skipped by reason: {skips:?}", pieces.iter().filter(|p| p.status == "ok").count());
    Ok(())
}

#[cfg(test)]
mod tests;
