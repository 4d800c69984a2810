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
