//! The live spectrogram: the last few seconds of output, newest on the right, low notes at the
//! bottom. The capture thread computes the columns; this only turns them into a texture.

use crate::engine::spectrogram::{BANDS, COLUMNS, COLUMN_S};
use crate::engine::EngineShared;

/// Height of the view in points (the piano roll below it shares the column).
const HEIGHT: f32 = 80.0;

/// The texture, kept between frames and refreshed only when new columns arrived.
#[derive(Default)]
pub struct SpectrogramView {
    texture: Option<egui::TextureHandle>,
    shown: u64,
}

/// Level (0..255) to colour: black, deep blue, magenta, orange, pale yellow.
fn colour(v: u8) -> egui::Color32 {
    const STOPS: [(f32, [f32; 3]); 5] =
        [(0.0, [0.0, 0.0, 0.0]), (0.3, [20.0, 20.0, 110.0]), (0.55, [150.0, 30.0, 130.0]), (0.8, [240.0, 120.0, 30.0]), (1.0, [255.0, 245.0, 180.0])];
    let x = v as f32 / 255.0;
    let i = STOPS.iter().rposition(|(p, _)| *p <= x).unwrap_or(0).min(STOPS.len() - 2);
    let ((p0, c0), (p1, c1)) = (STOPS[i], STOPS[i + 1]);
    let t = ((x - p0) / (p1 - p0)).clamp(0.0, 1.0);
    let c: [u8; 3] = std::array::from_fn(|k| (c0[k] + t * (c1[k] - c0[k])) as u8);
    egui::Color32::from_rgb(c[0], c[1], c[2])
}

impl SpectrogramView {
    pub fn show(&mut self, ui: &mut egui::Ui, shared: &EngineShared) {
        if let Some(s) = shared.capture().spectrogram() {
            if self.texture.is_none() || s.added != self.shown {
                let mut image = egui::ColorImage::new([COLUMNS, BANDS], vec![egui::Color32::BLACK; COLUMNS * BANDS]);
                // Right-aligned: the newest column at the right edge.
                let offset = COLUMNS - s.columns.len();
                for (x, column) in s.columns.iter().enumerate() {
                    for (band, &v) in column.iter().enumerate() {
                        image.pixels[(BANDS - 1 - band) * COLUMNS + offset + x] = colour(v);
                    }
                }
                match &mut self.texture {
                    Some(t) => t.set(image, egui::TextureOptions::LINEAR),
                    None => self.texture = Some(ui.ctx().load_texture("cantor-spectrogram", image, egui::TextureOptions::LINEAR)),
                }
                self.shown = s.added;
            }
        }
        if let Some(t) = &self.texture {
            let size = egui::vec2(ui.available_width().max(100.0), HEIGHT);
            let response = ui.add(egui::Image::new((t.id(), size)).fit_to_exact_size(size));
            // A frame, so the view is visible while it is still dark (nothing played yet).
            ui.painter().rect_stroke(response.rect, 2.0, ui.visuals().widgets.noninteractive.bg_stroke, egui::StrokeKind::Outside);
            response.on_hover_text(format!(
                "Spectrogram of the output: the last {:.0} s, newest on the right; 40 Hz at the bottom to 16 kHz at the top, 90 dB range.",
                COLUMNS as f64 * COLUMN_S
            ));
        }
        // Keep scrolling while audio flows.
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(33));
    }
}
