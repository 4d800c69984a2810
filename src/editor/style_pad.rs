//! The style pad: the trained styles sit around a circle; dragging the dot blends the styles
//! nearest to it (each style's weight falls off with distance). It writes the six style weights,
//! so the blend automates and saves like any parameter.

use crate::model::vocab::STYLES;
use crate::params::CantorParams;
use nice_plug::prelude::ParamSetter;

/// Pad size in points (wider than tall, so the style names fit at the sides).
pub const SIZE: egui::Vec2 = egui::vec2(300.0, 200.0);
/// Distance (as a fraction of the radius) at which a style's weight reaches zero.
const REACH: f32 = 1.1;

/// Where style `i` sits on the pad, in -1..1 coordinates.
fn anchor(i: usize) -> egui::Vec2 {
    let a = std::f32::consts::TAU * i as f32 / STYLES.len() as f32 - std::f32::consts::FRAC_PI_2;
    egui::vec2(a.cos(), a.sin()) * 0.8
}

/// Style weights for a pad position (-1..1 coordinates).
pub fn weights_at(pos: egui::Vec2) -> [f32; STYLES.len()] {
    std::array::from_fn(|i| (1.0 - (pos - anchor(i)).length() / REACH).clamp(0.0, 1.0))
}

pub fn show(ui: &mut egui::Ui, params: &CantorParams, setter: &ParamSetter) {
    let (rect, response) = ui.allocate_exact_size(SIZE, egui::Sense::click_and_drag());
    let response = response.on_hover_text("Drag to blend styles: the nearer a style's name, the more of it. The six style sliders follow.");
    let to_screen = |p: egui::Vec2| rect.center() + p * (SIZE / 2.0);
    let from_screen = |q: egui::Pos2| (q - rect.center()) / (SIZE / 2.0);
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 6.0, ui.visuals().extreme_bg_color);
    for (i, name) in STYLES.iter().enumerate() {
        painter.text(to_screen(anchor(i)), egui::Align2::CENTER_CENTER, *name, egui::FontId::proportional(12.0), ui.visuals().text_color());
    }
    // The current blend's centre of mass.
    let w: Vec<f32> = params.styles.iter().map(|s| s.weight.value()).collect();
    let total: f32 = w.iter().sum();
    let centre = if total > 0.0 { (0..STYLES.len()).map(|i| anchor(i) * w[i]).fold(egui::Vec2::ZERO, |a, b| a + b) / total } else { egui::Vec2::ZERO };
    painter.circle_filled(to_screen(centre), 6.0, ui.visuals().selection.bg_fill);
    // One host gesture per drag (or click): begin, values, end.
    let begins = response.drag_started() || response.clicked();
    if begins {
        params.styles.iter().for_each(|s| setter.begin_set_parameter(&s.weight));
    }
    if let Some(pointer) = response.interact_pointer_pos() {
        let pos = from_screen(pointer).clamp(egui::vec2(-1.0, -1.0), egui::vec2(1.0, 1.0));
        for (s, w) in params.styles.iter().zip(weights_at(pos)) {
            setter.set_parameter(&s.weight, w);
        }
    }
    if response.drag_stopped() || response.clicked() {
        params.styles.iter().for_each(|s| setter.end_set_parameter(&s.weight));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_style_it_is_that_style_and_the_centre_blends_all() {
        for i in 0..STYLES.len() {
            let w = weights_at(anchor(i));
            assert_eq!(w[i], 1.0);
            let strongest_other = (0..STYLES.len()).filter(|&j| j != i).map(|j| w[j]).fold(0.0, f32::max);
            assert!(strongest_other < 0.4, "{w:?}");
        }
        let centre = weights_at(egui::Vec2::ZERO);
        assert!(centre.iter().all(|&v| v > 0.0 && (v - centre[0]).abs() < 1e-6));
    }
}
