//! The status panel: model state or error in plain words, buffer health, load, underruns.

use crate::engine::EngineShared;
use std::sync::atomic::Ordering::Relaxed;

pub fn show(ui: &mut egui::Ui, shared: &EngineShared) {
    match shared.error() {
        Some(message) => {
            ui.colored_label(egui::Color32::from_rgb(230, 160, 60), message);
        }
        None => {
            ui.label("Generating.");
        }
    }
    let load = shared.load_permille.load(Relaxed);
    let rtf = if load > 0 { format!("{:.1}x real time", 1000.0 / load as f64) } else { "-".into() };
    ui.label(format!(
        "Buffered: {} frames   Generator speed: {rtf}   Underruns: {}",
        shared.buffered_frames.load(Relaxed),
        shared.underruns.load(Relaxed)
    ));
}
