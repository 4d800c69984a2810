//! The capture panel: save what was just played as a WAV file, and say where it went.

use crate::engine::capture::{default_dir, CaptureRequest, MAX_SECONDS};
use crate::engine::EngineShared;

/// Seconds the capture button saves.
const CAPTURE_SECONDS: f64 = 30.0;

pub fn show(ui: &mut egui::Ui, shared: &EngineShared) {
    // Wrapped: beside the style pad the two buttons and the result take two lines.
    ui.horizontal_wrapped(|ui| {
        let button = ui
            .button(format!("Save the last {CAPTURE_SECONDS:.0} s as WAV"))
            .on_hover_text(format!("Writes what Cantor played (up to {MAX_SECONDS:.0} s back) to {}; drag the file onto a track.", default_dir().display()));
        let since_start = ui
            .button("Save since play started")
            .on_hover_text(format!("Writes everything since the transport last started (up to {MAX_SECONDS:.0} s) to {}.", default_dir().display()));
        let request = if button.clicked() {
            Some(CaptureRequest::Save { seconds: CAPTURE_SECONDS, dir: default_dir() })
        } else if since_start.clicked() {
            Some(CaptureRequest::SinceStart { dir: default_dir() })
        } else {
            None
        };
        if let Some(request) = request {
            // A refusal becomes the last result, shown below.
            let _ = shared.capture().request(request);
        }
        let result = shared.capture().last_result();
        match result {
            Some(Ok(path)) => {
                ui.label(format!("Saved {}", path.display()));
            }
            Some(Err(why)) => {
                ui.colored_label(egui::Color32::from_rgb(230, 160, 60), format!("Not saved: {why}"));
            }
            None => {}
        }
    });
    let dropped = shared.capture().dropped_blocks();
    if dropped > 0 {
        ui.colored_label(egui::Color32::from_rgb(230, 160, 60), format!("{dropped} audio blocks were not captured: the capture thread fell behind."));
    }
}
