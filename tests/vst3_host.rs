//! Host-level test: loads the real `.vst3` bundle in Spotify's `pedalboard` (a JUCE-based host
//! from PyPI, installed by this test into `cache/venv-pedalboard`), sets parameters, renders MIDI,
//! checks that with Source on "play my notes" a note is heard after the latency and nothing
//! around it and that on "continue my phrase" Cantor answers a phrase after a rest, and
//! round-trips the plugin state (pedalboard renders in the VST3 offline mode). The script is tests/hosts/pedalboard_vst3.py.

mod bundled;

use std::path::{Path, PathBuf};
use std::process::Command;

const PEDALBOARD: &str = "pedalboard==0.9.26";

/// A virtual environment with pedalboard, made once and reused.
fn venv_python(root: &Path) -> PathBuf {
    let venv = std::env::var_os("CANTOR_CACHE").map(PathBuf::from).unwrap_or_else(|| root.join("cache")).join("venv-pedalboard");
    let python = venv.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import pedalboard, numpy"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success());
        assert!(ok, "python3 -m venv {} failed (Debian: apt install python3-venv)", venv.display());
        let ok = Command::new(&python).args(["-m", "pip", "install", "--quiet", PEDALBOARD, "numpy"]).status().is_ok_and(|s| s.success());
        assert!(ok, "pip install {PEDALBOARD} failed");
    }
    python
}

#[test]
fn pedalboard_loads_the_vst3_sets_parameters_renders_and_restores_state() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bundle = bundled::bundle().join("Cantor.vst3");
    let python = venv_python(&root);
    // A factory preset as a .vstpreset file, as `cargo xtask install` writes them.
    let preset = &cantor::presets::FACTORY[0];
    let preset_path = std::env::temp_dir().join(format!("cantor-{}-{}.vstpreset", std::process::id(), preset.file_stem().replace(' ', "_")));
    std::fs::write(&preset_path, preset.vst3_preset_file(&cantor::plugin::VST3_CLASS_ID)).unwrap();
    let out = Command::new(&python).arg(root.join("tests/hosts/pedalboard_vst3.py")).arg(&bundle).arg(&preset_path).output().expect("run python");
    let _ = std::fs::remove_file(&preset_path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pedalboard host failed ({}):\n{stdout}\n{stderr}", out.status);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON report line");
    println!("pedalboard saw: {report}");
    assert_eq!(report["samples"], 3 * 48_000);
    assert_eq!(report["played_tenths"].as_array().map(Vec::len), Some(40), "{report}");
    assert_eq!(report["answer_tenths"].as_array().map(Vec::len), Some(70), "{report}");
    assert!(report["parameters"].as_u64().unwrap() >= 15);
    // The preset file set what it says (FACTORY[0]: organ (family 2), 66 BPM free tempo, and
    // its guidance, which is the default: the instrument and tempo are what show it applied).
    assert_eq!(report["preset"]["instrument"], 2, "{report}");
    assert!((report["preset"]["tempo"].as_f64().unwrap() - 66.0).abs() < 0.5, "{report}");
    assert!((report["preset"]["guidance"].as_f64().unwrap() - preset.guidance as f64).abs() < 0.05, "{report}");
}
