//! Tells the crate whether a trained prior ships in assets/ (cfg `cantor_prior`): until the
//! first one is trained, the plugin builds without it and says so in its editor.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cantor_prior)");
    let prior = "assets/models/prior-q8_0.safetensors";
    println!("cargo::rerun-if-changed={prior}");
    println!("cargo::rerun-if-changed=assets/models");
    if std::path::Path::new(prior).exists() {
        println!("cargo::rustc-cfg=cantor_prior");
    }
}
