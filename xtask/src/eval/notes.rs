//! Note fidelity as a listener gets it: audio transcribed into notes by basic-pitch (Spotify's
//! ICASSP 2022 model, its ONNX file on onnxruntime) and scored with mir_eval's onset-only note
//! F1 (onsets within 50 ms, pitches within 50 cents), by `xtask/python/note_f1.py` in a venv
//! this module creates with pinned versions.

use crate::dataset::{cache_dir, repo_root, run};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What the venv holds. basic-pitch goes in without its dependencies: on Python 3.11 they
/// name TensorFlow, which the ONNX model does not need.
const BASIC_PITCH: &str = "basic-pitch==0.4.0";
const PACKAGES: &[&str] = &[
    "onnxruntime==1.32.0",
    "mir_eval==0.8.2",
    "librosa==0.11.0",
    "pretty_midi==0.2.11.post0",
    "resampy==0.4.2",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "numpy==2.4.6",
    "typing_extensions==4.16.0",
];

/// What an estimate is compared with.
pub enum Reference {
    /// Another recording's transcription (a codec's input, for its round trip).
    Wav(PathBuf),
    /// The notes the audio was rendered from: (onset s, offset s, MIDI key). Transcribing the
    /// input against these is the ceiling a round trip is read against.
    Notes(Vec<(f64, f64, u8)>),
}

/// One comparison.
pub struct Pair {
    pub id: String,
    pub reference: Reference,
    pub estimate: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NoteScore {
    pub id: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// The estimate's transcribed notes: (onset s, offset s, MIDI key).
    #[serde(default)]
    pub transcription: Vec<(f64, f64, u8)>,
}

/// The transcriber's Python, installed on first use (`cache/venv-notes`).
pub struct NoteJudge {
    python: PathBuf,
}

impl NoteJudge {
    pub fn new() -> Result<Self> {
        let venv = cache_dir().join("venv-notes");
        let python = venv.join("bin/python");
        let ready = venv.join(".installed");
        if !ready.exists() {
            println!("creating {} with {BASIC_PITCH} (ONNX) and mir_eval", venv.display());
            run(std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            let pip = venv.join("bin/pip");
            run(std::process::Command::new(&pip).args(["install", "-q", "--no-deps", BASIC_PITCH]))?;
            run(std::process::Command::new(&pip).args(["install", "-q"]).args(PACKAGES))?;
            std::fs::write(&ready, PACKAGES.join("\n"))?;
        }
        Ok(Self { python })
    }

    /// Score every pair (each WAV is transcribed once), in `pairs`' order.
    pub fn score(&self, pairs: &[Pair], work: &Path) -> Result<Vec<NoteScore>> {
        let jobs: Vec<serde_json::Value> = pairs
            .iter()
            .map(|p| {
                let reference = match &p.reference {
                    Reference::Wav(path) => serde_json::json!(path),
                    Reference::Notes(notes) => serde_json::json!(notes.iter().map(|&(on, off, key)| serde_json::json!([on, off, key])).collect::<Vec<_>>()),
                };
                serde_json::json!({ "id": p.id, "reference": reference, "estimate": p.estimate })
            })
            .collect();
        std::fs::create_dir_all(work)?;
        let (jobs_path, out_path) = (work.join("note-jobs.json"), work.join("note-scores.json"));
        std::fs::write(&jobs_path, serde_json::to_string(&serde_json::json!({ "pairs": jobs }))?)?;
        let script = repo_root().join("xtask/python/note_f1.py");
        let out = std::process::Command::new(&self.python)
            .arg(&script)
            .arg(&jobs_path)
            .arg(&out_path)
            .stdout(std::process::Stdio::null())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
        }
        #[derive(Deserialize)]
        struct Results {
            results: Vec<NoteScore>,
        }
        let results: Results = serde_json::from_str(&std::fs::read_to_string(&out_path)?)?;
        if results.results.len() != pairs.len() || results.results.iter().zip(pairs).any(|(r, p)| r.id != p.id) {
            bail!("{} answered {} pairs of {}", script.display(), results.results.len(), pairs.len());
        }
        Ok(results.results)
    }
}
