//! The editor as a user sees it: the stand-alone build runs under Xvfb (a virtual X display),
//! its window is captured with `xwd`, and the picture must show a drawn editor, not a blank or
//! single-colour window. The picture is kept in docs/editor.png for review.
//!
//! Needs Xvfb, xwd (x11-apps) and, to build the stand-alone program, libasound2-dev and
//! libjack-jackd2-dev: `scripts/test.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child process when dropped (the stand-alone ignores SIGTERM once its window is open).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_standalone(root: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--bin", "cantor-standalone", "--features", "standalone"])
        .status()
        .expect("cannot run cargo to build the stand-alone program");
    assert!(status.success(), "building cantor-standalone failed (it needs libasound2-dev and libjack-jackd2-dev; scripts/test.sh installs them)");
    root.join("target/debug/cantor-standalone")
}

/// An X window dump (`xwd -root`) as RGB rows: width, height, pixels.
fn parse_xwd(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    let field = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let (header, version, format) = (field(0), field(1), field(2));
    assert_eq!((version, format), (7, 2), "not a ZPixmap XWD version 7 dump");
    let (width, height, byte_order, bits_per_pixel, bytes_per_line, ncolors) = (field(4), field(5), field(7), field(11), field(12), field(19));
    assert!(bits_per_pixel == 24 || bits_per_pixel == 32, "expected a 24-bit display, got {bits_per_pixel} bits per pixel");
    let step = bits_per_pixel / 8;
    let data = &bytes[header + 12 * ncolors..];
    let pixels = (0..height)
        .flat_map(|y| (0..width).map(move |x| (y, x)))
        .map(|(y, x)| {
            let p = &data[y * bytes_per_line + step * x..][..step];
            let v = if byte_order == 0 {
                p.iter().rev().fold(0u32, |v, &b| v << 8 | b as u32)
            } else {
                p.iter().fold(0u32, |v, &b| v << 8 | b as u32)
            };
            [(v >> 16) as u8, (v >> 8) as u8, v as u8]
        })
        .collect();
    (width, height, pixels)
}

/// The smallest rectangle holding every pixel that is not the root window's black.
fn drawn_area(width: usize, height: usize, pixels: &[[u8; 3]]) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if pixels[y * width + x] != [0, 0, 0] {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    (x0 < x1).then_some((x0, y0, x1, y1))
}

fn write_png(path: &Path, width: usize, height: usize, rgb: &[u8]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(rgb).unwrap();
}

#[test]
fn the_standalone_editor_draws_under_xvfb() {
    for tool in ["Xvfb", "xwd"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().unwrap().success(),
            "{tool} is not installed (scripts/test.sh installs xvfb and x11-apps)"
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let standalone = build_standalone(&root);
    let display = format!(":{}", 50 + std::process::id() % 200);
    let _xvfb = KillOnDrop(
        Command::new("Xvfb").args([display.as_str(), "-screen", "0", "1024x768x24", "-nolisten", "tcp"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let _plugin = KillOnDrop(
        Command::new(&standalone)
            .args(["--backend", "dummy"])
            .env("DISPLAY", &display)
            .env("CANTOR_CAPTURE_DIR", std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for a drawn editor: a window-sized area with many colours (text, sliders, pad).
    let t0 = Instant::now();
    let mut last = String::new();
    let mut played = false;
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let out = Command::new("xwd").args(["-root", "-silent", "-display", &display]).output().unwrap();
        if out.status.success() {
            let (w, h, pixels) = parse_xwd(&out.stdout);
            if let Some((x0, y0, x1, y1)) = drawn_area(w, h, &pixels) {
                let crop: Vec<[u8; 3]> = (y0..y1).flat_map(|y| pixels[y * w + x0..y * w + x1].iter().copied()).collect();
                let mut colours: Vec<[u8; 3]> = crop.clone();
                colours.sort_unstable();
                colours.dedup();
                let background = crop.iter().filter(|p| **p == crop[crop.len() / 2]).count() as f64 / crop.len() as f64;
                last = format!("drawn area {}x{} at ({x0},{y0}), {} colours", x1 - x0, y1 - y0, colours.len());
                if x1 - x0 >= 400 && y1 - y0 >= 300 && colours.len() >= 32 && background < 0.98 {
                    if !played {
                        // Drawn: let it play a few seconds, so the picture shows the spectrogram
                        // and the piano roll filled with what it played.
                        played = true;
                        std::thread::sleep(Duration::from_secs(6));
                        continue;
                    }
                    let rgb: Vec<u8> = crop.iter().flatten().copied().collect();
                    std::fs::create_dir_all(root.join("docs")).unwrap();
                    write_png(&root.join("docs/editor.png"), x1 - x0, y1 - y0, &rgb);
                    println!("editor screenshot: {last}; written to docs/editor.png");
                    return;
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "no drawn editor within 90 s under Xvfb ({last})");
    }
}
