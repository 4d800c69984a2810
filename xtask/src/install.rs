//! `cargo xtask install`: copy the bundles from target/bundled into the user's plugin folders.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The user's CLAP and VST3 folders on this platform.
fn plugin_dirs() -> Result<(PathBuf, PathBuf)> {
    let home = || std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set");
    if cfg!(target_os = "macos") {
        let base = home()?.join("Library/Audio/Plug-Ins");
        Ok((base.join("CLAP"), base.join("VST3")))
    } else if cfg!(target_os = "windows") {
        let common = std::env::var_os("COMMONPROGRAMFILES").map(PathBuf::from).context("COMMONPROGRAMFILES is not set")?;
        Ok((common.join("CLAP"), common.join("VST3")))
    } else {
        let h = home()?;
        Ok((h.join(".clap"), h.join(".vst3")))
    }
}

fn copy_recursive(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

pub fn install() -> Result<()> {
    let bundled = crate::dataset::repo_root().join("target/bundled");
    let (clap_dir, vst3_dir) = plugin_dirs()?;
    let mut installed = 0;
    for (name, dir) in [("Cantor.clap", &clap_dir), ("Cantor.vst3", &vst3_dir)] {
        let from = bundled.join(name);
        if !from.exists() {
            continue;
        }
        std::fs::create_dir_all(dir)?;
        let to = dir.join(name);
        if to.is_dir() {
            std::fs::remove_dir_all(&to)?;
        }
        copy_recursive(&from, &to)?;
        println!("installed {}", to.display());
        installed += 1;
    }
    if installed == 0 {
        bail!("nothing to install: run `cargo xtask bundle cantor --release` first");
    }
    // The factory presets as .vstpreset files, where VST3 hosts' preset browsers look
    // (Steinberg's user preset folder: <VST3 presets>/<vendor>/<plugin>/).
    let presets = vst3_preset_dir()?;
    std::fs::create_dir_all(&presets)?;
    for preset in cantor::presets::FACTORY {
        let path = presets.join(format!("{}.vstpreset", preset.file_stem()));
        std::fs::write(&path, preset.vst3_preset_file(&cantor::plugin::VST3_CLASS_ID))?;
    }
    println!("installed {} presets in {}", cantor::presets::FACTORY.len(), presets.display());
    Ok(())
}

/// The user's VST3 preset folder for Cantor.
fn vst3_preset_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).map(PathBuf::from).context("HOME is not set")?;
    let base = if cfg!(target_os = "macos") {
        home.join("Library/Audio/Presets")
    } else if cfg!(target_os = "windows") {
        home.join("Documents/VST3 Presets")
    } else {
        home.join(".vst3/presets")
    };
    Ok(base.join("Cantor").join("Cantor"))
}
