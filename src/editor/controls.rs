//! Every parameter, in groups, each with a tooltip saying what it does to the music.

use crate::knobs::{KNOBS, STYLE_WEIGHT};
use crate::model::vocab::STYLES;
use crate::params::CantorParams;
use nice_plug::prelude::{Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;

/// One labelled slider with its tooltip.
fn row<P: Param>(ui: &mut egui::Ui, param: &P, setter: &ParamSetter, tip: &str) {
    sized_row(ui, param, setter, tip, 110.0, 150.0);
}

/// `row` with the label and slider widths given (narrower beside the style pad, where the
/// value's box, up to "Continue my phrase", must fit in the pad's width too).
pub(super) fn sized_row<P: Param>(ui: &mut egui::Ui, param: &P, setter: &ParamSetter, tip: &str, label: f32, slider: f32) {
    ui.horizontal(|ui| {
        ui.add_sized([label, 18.0], egui::Label::new(param.name())).on_hover_text(tip);
        ui.add(ParamSlider::for_param(param, setter).with_width(slider)).on_hover_text(tip);
    });
}

pub fn show(ui: &mut egui::Ui, p: &CantorParams, setter: &ParamSetter) {
    ui.columns(2, |cols| {
        let ui = &mut cols[0];
        ui.strong("Style blend").on_hover_text(STYLE_WEIGHT.help);
        for (i, w) in p.styles.iter().enumerate() {
            row(ui, &w.weight, setter, &format!("Weight of the {} style in the blend.", STYLES[i]));
        }
        ui.add_space(6.0);
        ui.strong("Music");
        row(ui, &p.instrument, setter, KNOBS.instrument.help);
        row(ui, &p.key, setter, KNOBS.key.help);
        row(ui, &p.mode, setter, KNOBS.mode.help);
        row(ui, &p.key_follows_midi, setter, KNOBS.key_follows_midi.help);
        row(ui, &p.tempo_mode, setter, KNOBS.tempo_mode.help);
        row(ui, &p.tempo, setter, KNOBS.tempo.help);

        let ui = &mut cols[1];
        ui.strong("Generation");
        row(ui, &p.temperature, setter, KNOBS.temperature.help);
        row(ui, &p.top_k, setter, KNOBS.top_k.help);
        row(ui, &p.top_p, setter, KNOBS.top_p.help);
        row(ui, &p.guidance, setter, KNOBS.guidance.help);
        row(ui, &p.repeat, setter, KNOBS.repeat.help);
        row(ui, &p.seed, setter, KNOBS.seed.help);
        ui.add_space(6.0);
        // Source and MIDI out sit beside the style pad (`super::CantorEditor::ui`).
        ui.strong("Playback");
        row(ui, &p.run_mode, setter, KNOBS.run_mode.help);
        row(ui, &p.ahead, setter, KNOBS.ahead.help);
        ui.add_space(6.0);
        ui.strong("Output");
        row(ui, &p.gain, setter, KNOBS.gain.help);
        row(ui, &p.width, setter, KNOBS.width.help);
    });
}
