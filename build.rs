//! Tells the crate which trained models ship in assets/: the codes prior (cfg `cantor_prior`),
//! the score prior (cfg `cantor_score`) and the performer (cfg `cantor_performer`). Until one is trained, Cantor builds without it and
//! says so where it is needed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cantor_prior)");
    let prior = "assets/models/prior-q8_0.safetensors";
    println!("cargo::rerun-if-changed={prior}");
    println!("cargo::rerun-if-changed=assets/models");
    if std::path::Path::new(prior).exists() {
        println!("cargo::rustc-cfg=cantor_prior");
    }
    println!("cargo::rustc-check-cfg=cfg(cantor_score)");
    let score = "assets/models/score-q8_0.safetensors";
    println!("cargo::rerun-if-changed={score}");
    if std::path::Path::new(score).exists() {
        println!("cargo::rustc-cfg=cantor_score");
    }
    println!("cargo::rustc-check-cfg=cfg(cantor_performer)");
    let performer = "assets/models/performer-q8_0.safetensors";
    println!("cargo::rerun-if-changed={performer}");
    if std::path::Path::new(performer).exists() {
        println!("cargo::rustc-cfg=cantor_performer");
    }
}
