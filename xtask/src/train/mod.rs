//! `cargo xtask train`: resumable model training (checkpoints, exact resume, committed logs).

pub mod codec;
pub mod optim;

use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Append one JSON line to a metrics log (committed, so progress survives the machine).
pub fn log_line<T: Serialize>(path: &Path, record: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// On resume: drop log lines from steps after the checkpoint (written by a run that stopped
/// before it could checkpoint them), so the log has each step once.
pub fn truncate_log_after(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_none_or(|s| s <= step))
        .collect();
    if kept.len() != text.lines().count() {
        let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, body)?;
    }
    Ok(())
}
