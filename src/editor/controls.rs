//! Every parameter, in groups, each with a tooltip saying what it does to the music.

use crate::model::vocab::STYLES;
use crate::params::CantorParams;
use nice_plug::prelude::{Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;

/// One labelled slider with its tooltip.
fn row<P: Param>(ui: &mut egui::Ui, param: &P, setter: &ParamSetter, tip: &str) {
    ui.horizontal(|ui| {
        ui.add_sized([110.0, 18.0], egui::Label::new(param.name())).on_hover_text(tip);
        ui.add(ParamSlider::for_param(param, setter).with_width(150.0)).on_hover_text(tip);
    });
}

pub fn show(ui: &mut egui::Ui, p: &CantorParams, setter: &ParamSetter) {
    ui.columns(2, |cols| {
        let ui = &mut cols[0];
        ui.strong("Style blend").on_hover_text("How much of each trained style to play; several at once blend them. All at zero lets the model choose.");
        for (i, w) in p.styles.iter().enumerate() {
            row(ui, &w.weight, setter, &format!("Weight of the {} style in the blend.", STYLES[i]));
        }
        ui.add_space(6.0);
        ui.strong("Music");
        row(ui, &p.instrument, setter, "The instrument family the music is played on.");
        row(ui, &p.key, setter, "Key tonic. With \"Key follows MIDI\", the last note you play sets it.");
        row(ui, &p.mode, setter, "Major or minor.");
        row(ui, &p.key_follows_midi, setter, "Play a MIDI note to set the key tonic.");
        row(ui, &p.tempo_mode, setter, "Follow the host's tempo, or use the free tempo below.");
        row(ui, &p.tempo, setter, "Tempo in free mode (60-180 BPM, the range the model was trained on).");

        let ui = &mut cols[1];
        ui.strong("Generation");
        row(ui, &p.temperature, setter, "How adventurous: 0 always takes the likeliest continuation, 1 follows the model, above 1 gets wild.");
        row(ui, &p.top_k, setter, "Choose only among the k likeliest codes (0 = off). Lower is safer.");
        row(ui, &p.top_p, setter, "Choose only among the likeliest codes that together reach this probability. Lower is safer.");
        row(ui, &p.guidance, setter, "How strongly style, instrument, key and tempo are imposed: 0 ignores them, above 1 exaggerates them.");
        row(ui, &p.repeat, setter, "Each 8-bar strain is played twice, as in a dance tune: how closely the second playing follows the first. 0 lets the music wander freely.");
        row(ui, &p.seed, setter, "The same seed and the same automation give the same music, bit for bit.");
        ui.add_space(6.0);
        ui.strong("Playback");
        row(ui, &p.run_mode, setter, "Play with the host transport (restarting from the seed at the play position), always, or while a MIDI note is held.");
        row(ui, &p.responsiveness, setter, "Audio generated ahead: smaller follows knob moves faster, larger survives CPU spikes.");
        ui.add_space(6.0);
        ui.strong("Output");
        row(ui, &p.gain, setter, "Output level.");
        row(ui, &p.width, setter, "Stereo width: 0 mono, 100% natural, 200% wide. Always folds back to mono cleanly.");
    });
}
