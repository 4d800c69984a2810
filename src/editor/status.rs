//! The status panel: model state or error in plain words, buffer health, load, underruns.

use crate::engine::EngineShared;

pub fn show(ui: &mut egui::Ui, shared: &EngineShared) {
    if let Some(name) = shared.model_name() {
        ui.label(format!("Model: {name}, version {}", env!("CARGO_PKG_VERSION")));
    }
    let peak = shared.output_peak();
    let db = 20.0 * peak.max(1e-6).log10();
    ui.add(egui::ProgressBar::new(((db + 60.0) / 60.0).clamp(0.0, 1.0)).text(if peak > 0.0 { format!("output peak {db:.1} dBFS") } else { "silent".into() }))
        .on_hover_text("Peak level of the last audio block.");
    match shared.error() {
        Some(message) => {
            ui.colored_label(egui::Color32::from_rgb(230, 160, 60), message);
        }
        None => {
            ui.label("Generating.");
        }
    }
    let load = shared.load_permille();
    let rtf = if load > 0 { format!("{:.1}x real time", 1000.0 / load as f64) } else { "-".into() };
    ui.label(format!(
        "Buffered: {} frames   Generator speed: {rtf}   Underruns: {}",
        shared.buffered_frames(),
        shared.underruns()
    ));
}
