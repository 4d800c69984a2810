use super::*;
use crate::model::spectral::SpectralDistances;
use crate::model::weights;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

fn tiny() -> (CodecConfig, VarMap, Codec) {
    tiny_with(PhaseMode::Direct)
}

fn tiny_with(phase: PhaseMode) -> (CodecConfig, VarMap, Codec) {
    let cfg = CodecConfig { decoder_phase: phase, ..CodecConfig::tiny() };
    let vm = VarMap::new();
    let codec = Codec::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (cfg, vm, codec)
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect()
}

#[test]
fn encode_decode_shapes_and_bitrate() {
    let (cfg, _, codec) = tiny();
    assert_eq!(cfg.hop(), 320);
    assert_eq!(CodecConfig::default().bitrate(), 5400.0);
    let x = Tensor::from_vec(noise(2 * 3200, 1), (2, 3200), &Device::Cpu).unwrap();
    let codes = codec.encode(&x).unwrap();
    assert_eq!(codes.dims(), &[2, 10, cfg.n_codebooks]);
    let y = codec.decode(&codes).unwrap();
    assert_eq!(y.dims(), &[2, 3200]);
    // Encoder input that is not a whole number of frames is an error, not a panic.
    assert!(codec.encode(&Tensor::zeros((1, 100), DType::F32, &Device::Cpu).unwrap()).is_err());
    // Out-of-range codes are an error.
    let bad = Tensor::full(99u32, (1, 2, cfg.n_codebooks), &Device::Cpu).unwrap();
    assert!(codec.decode(&bad).unwrap_err().to_string().contains("out of range"));
}

#[test]
fn streaming_decode_in_any_chunks_equals_whole_decode() {
    for phase in [PhaseMode::Direct, PhaseMode::Integrated] {
        let (_, _, codec) = tiny_with(phase);
        let x = Tensor::from_vec(noise(40 * 320, 2), (1, 40 * 320), &Device::Cpu).unwrap();
        let codes = codec.encode(&x).unwrap().squeeze(0).unwrap();
        let whole = codec.decode(&codes.unsqueeze(0).unwrap()).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        for chunk in [1usize, 2, 3, 7, 40] {
            let mut stream = codec.stream();
            let mut out = Vec::new();
            let mut t = 0;
            while t < 40 {
                let n = chunk.min(40 - t);
                out.extend(stream.push_codes(&codes.narrow(0, t, n).unwrap()).unwrap());
                t += n;
            }
            // The stream has emitted every sample that the whole decode has complete.
            assert_eq!(out.len(), 40 * 320 - stream.delay_samples());
            let max_diff = out.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            // Integrated phase sums f32 frequencies over the frames, so random weights have
            // left up to 1.3e-4 between the two orders of summation.
            assert!(max_diff < 5e-4, "{phase:?}, chunk {chunk}: max difference {max_diff}");
        }
    }
}

/// The magnitudes-with-the-input's-phases measurement: aligned with the input and as long, and
/// a wrong length of audio is an error. A decoder whose head makes every bin's magnitude 1 gives,
/// with a noise input's phases, audio that follows the noise (correlated with it), where its own
/// phases give none.
#[test]
fn the_decoders_magnitudes_take_the_inputs_phases() {
    let (cfg, vm, codec) = tiny();
    {
        let data = vm.data().lock().unwrap();
        let w = &data["decoder.head.weight"];
        w.set(&w.zeros_like().unwrap()).unwrap();
        let b = &data["decoder.head.bias"];
        b.set(&b.zeros_like().unwrap()).unwrap();
    }
    let frames = 30;
    let x = Tensor::from_vec(noise(frames * 320, 4), (1, frames * 320), &Device::Cpu).unwrap();
    let z = Tensor::zeros((1, frames, cfg.latent_dim), DType::F32, &Device::Cpu).unwrap();
    let y = codec.decoder.forward_with_phases_of(&z, &x).unwrap();
    assert_eq!(y.dims(), &[1, frames * 320]);
    let corr = |a: &Tensor| {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let r = 2 * 320..(frames - 2) * 320;
        let dot: f32 = a[r.clone()].iter().zip(&b[r.clone()]).map(|(p, q)| p * q).sum();
        let na: f32 = a[r.clone()].iter().map(|p| p * p).sum::<f32>().sqrt();
        let nb: f32 = b[r].iter().map(|q| q * q).sum::<f32>().sqrt();
        dot / (na * nb).max(1e-12)
    };
    let with_inputs = corr(&y);
    assert!(with_inputs > 0.3, "magnitudes with the input's phases correlate {with_inputs} with the input");
    let own = codec.decoder.forward(&z).unwrap();
    assert!(corr(&own).abs() < 0.1, "the decoder's own phases should not follow the input");
    assert!(codec.decoder.forward_with_phases_of(&z, &x.narrow(1, 0, 100).unwrap()).is_err());
}

/// Why integrated phase: a steady tone on bin 10 (the phase must turn 2.5 times from frame to
/// frame) from steady latents. With direct phase every frame starts in the same phase, and the
/// overlapping Hann frames cancel to silence; integrated phase turns it and gives the tone.
#[test]
fn a_steady_frame_makes_a_steady_tone_only_with_integrated_phase() {
    let mut levels = Vec::new();
    for phase in [PhaseMode::Direct, PhaseMode::Integrated] {
        let (cfg, vm, codec) = tiny_with(phase);
        let bins = cfg.n_fft / 2 + 1;
        let k = 10;
        // Head: silence everywhere but bin k at magnitude 1, phase residual and deviation 0.
        let mut bias = vec![0f32; decoder::head_outputs(phase, bins)];
        for (b, v) in bias.iter_mut().enumerate().take(bins) {
            *v = if b == k { 0.0 } else { -30.0 };
        }
        {
            let data = vm.data().lock().unwrap();
            let w = &data["decoder.head.weight"];
            w.set(&w.zeros_like().unwrap()).unwrap();
            data["decoder.head.bias"].set(&Tensor::from_vec(bias, decoder::head_outputs(phase, bins), &Device::Cpu).unwrap()).unwrap();
        }
        let z = Tensor::zeros((1, 40, cfg.latent_dim), DType::F32, &Device::Cpu).unwrap();
        let y = codec.decoder.forward(&z).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let steady = &y[10 * cfg.hop()..30 * cfg.hop()];
        let rms = (steady.iter().map(|v| v * v).sum::<f32>() / steady.len() as f32).sqrt();
        let peak = steady.iter().fold(0f32, |m, v| m.max(v.abs()));
        levels.push((rms, peak));
    }
    // Magnitude 1 through the synthesis basis (2 / n_fft) and four overlapping Hann frames (sum 2).
    let amplitude = 4.0 / 1280.0;
    let (direct, integrated) = (levels[0], levels[1]);
    assert!(direct.0 < 1e-3 * amplitude, "direct phase: rms {} (expected the frames to cancel)", direct.0);
    assert!((integrated.0 * 2f32.sqrt() / amplitude - 1.0).abs() < 0.01, "integrated phase: rms {} for amplitude {amplitude}", integrated.0);
    assert!((integrated.1 / amplitude - 1.0).abs() < 0.01, "integrated phase: the tone's peak {} is not steady at {amplitude}", integrated.1);
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    for phase in [PhaseMode::Direct, PhaseMode::Integrated] {
        let (cfg, vm, codec) = tiny_with(phase);
        let x = Tensor::from_vec(noise(2 * 6400, 3), (2, 6400), &Device::Cpu).unwrap();
        let z = codec.encoder.forward(&x).unwrap();
        let vq = codec.quantizer.forward_train(&z).unwrap();
        let y = codec.decoder.forward(&vq.quantized).unwrap();
        let spectral = SpectralDistances::new(cfg.sample_rate, &Device::Cpu).unwrap();
        let (stft, mel) = spectral.both(&y, &x).unwrap();
        let loss = (stft + mel + vq.commitment).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.contains("codebook") {
                continue; // EMA-updated, not by gradient
            }
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} gets no gradient"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "{phase:?}: {name} has a zero gradient");
        }
    }
}

use crate::model::weights::var_tensors as tensors;

#[test]
fn weights_round_trip_and_bad_files_get_clear_errors() {
    let (cfg, vm, codec) = tiny();
    let bytes = weights::to_bytes(KIND, &cfg, &tensors(&vm), DType::F32).unwrap();
    let loaded = Codec::from_bytes(&bytes, &Device::Cpu).unwrap();
    let x = Tensor::from_vec(noise(3200, 4), (1, 3200), &Device::Cpu).unwrap();
    let codes = codec.encode(&x).unwrap();
    assert_eq!(codes.to_vec3::<u32>().unwrap(), loaded.encode(&x).unwrap().to_vec3::<u32>().unwrap());
    // The loaded model runs the fused inference layer norm, the trainable one the unfused form.
    let a = codec.decode(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = loaded.decode(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-5, "loaded model decodes {diff} away");

    let err = |bytes: &[u8]| Codec::from_bytes(bytes, &Device::Cpu).err().expect("must fail").to_string();
    assert!(err(&bytes[..bytes.len() / 2]).contains("truncated or corrupt"));
    assert!(err(b"not a model").contains("truncated or corrupt"));

    let other_kind = weights::to_bytes("cantor-prior", &cfg, &tensors(&vm), DType::F32).unwrap();
    assert!(err(&other_kind).contains("'cantor-prior' model, expected 'cantor-codec'"));

    let mut t = tensors(&vm);
    t.insert("decoder.head.weight".into(), Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap());
    let e = err(&weights::to_bytes(KIND, &cfg, &t, DType::F32).unwrap());
    assert!(e.contains("decoder.head.weight") && e.contains("shape"), "{e}");

    let mut t = tensors(&vm);
    let shape = t["encoder.input.weight"].dims().to_vec();
    t.insert("encoder.input.weight".into(), Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap());
    let e = err(&weights::to_bytes(KIND, &cfg, &t, DType::F32).unwrap());
    assert!(e.contains("encoder.input.weight") && e.contains("NaN"), "{e}");

    let mut t = tensors(&vm);
    t.remove("quantizer.level1.codebook");
    assert!(err(&weights::to_bytes(KIND, &cfg, &t, DType::F32).unwrap()).contains("'quantizer.level1.codebook' is missing"));

    // A future format version is refused by name.
    let mut meta = HashMap::new();
    meta.insert("cantor.kind".to_string(), KIND.to_string());
    meta.insert("cantor.version".to_string(), "99".to_string());
    meta.insert("cantor.config".to_string(), serde_json::to_string(&cfg).unwrap());
    let t = tensors(&vm);
    let v99 = safetensors::serialize(t.iter().map(|(k, v)| (k.as_str(), v)), Some(meta)).unwrap();
    assert!(err(&v99).contains("format version 99"));

    // f16 storage loads and stays close.
    let half = weights::to_bytes(KIND, &cfg, &tensors(&vm), DType::F16).unwrap();
    assert!(half.len() < bytes.len() * 6 / 10);
    Codec::from_bytes(&half, &Device::Cpu).unwrap();
}

#[test]
fn encoder_latents_start_at_a_usable_scale_and_vary_over_time() {
    // Guards the initialisation: with PyTorch-default weights the latents started at 1e-4 and
    // training collapsed every codebook onto one code.
    let cfg = CodecConfig::default();
    let vm = VarMap::new();
    let codec = Codec::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let x: Vec<f32> = (0..24000).map(|i| ((i as f32 * 0.05).sin() * (i as f32 * 0.0003).sin()) * 0.14).collect();
    let x = Tensor::from_vec(x, (1, 24000), &Device::Cpu).unwrap();
    let z = codec.encoder.forward(&x).unwrap().squeeze(0).unwrap();
    let mean = z.mean_keepdim(0).unwrap();
    let dev = z.broadcast_sub(&mean).unwrap().sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    let rms = z.sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    assert!(rms > 5e-3, "latent rms {rms}");
    assert!(dev > 0.5 * rms, "latents barely change over time: deviation {dev} of rms {rms}");
}

#[test]
fn quantized_files_load_and_decode_close_to_f32() {
    use candle_core::quantized::GgmlDType;
    let (cfg, vm, codec) = tiny();
    let f32_bytes = weights::to_bytes(KIND, &cfg, &tensors(&vm), DType::F32).unwrap();
    let q_bytes = weights::to_bytes_quantized(
        KIND,
        &cfg,
        &tensors(&vm),
        Some(DType::F16),
        Some((&Codec::is_quantizable, GgmlDType::Q8_0)),
    )
    .unwrap();
    assert!(q_bytes.len() < f32_bytes.len() / 2, "{} vs {}", q_bytes.len(), f32_bytes.len());
    let q = Codec::from_bytes(&q_bytes, &Device::Cpu).unwrap();
    assert!(matches!(q.decoder_linear_kind(), "quantized"));
    let x = Tensor::from_vec(noise(6400, 5), (1, 6400), &Device::Cpu).unwrap();
    let codes = codec.encode(&x).unwrap();
    let a = codec.decode(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = q.decode(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let err: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    let sig: f32 = a.iter().map(|x| x * x).sum::<f32>();
    let snr = 10.0 * (sig / err.max(1e-20)).log10();
    assert!(snr > 25.0, "q8_0 decoder output SNR {snr:.1} dB against f32");
    // Loaded from any address (bytes embedded in a binary have no alignment): the same model.
    for shift in 1..4 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(&q_bytes);
        let moved = Codec::from_bytes(&shifted[shift..], &Device::Cpu).unwrap();
        let c = moved.decode(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(c == b, "loading from an address shifted by {shift} changed the model");
    }
    // Truncated quantised blocks are reported, not decoded.
    assert!(Codec::from_bytes(&q_bytes[..q_bytes.len() - 10], &Device::Cpu).is_err());
}

/// The hand-written frame-at-a-time decoder (what the plugin runs) gives the tensor decoder's
/// audio, for f32 and q8_0 files, whatever the chunking, and the same bits whatever the chunking.
#[test]
fn the_cpu_decoder_gives_the_tensor_decoders_audio() {
    for phase in [PhaseMode::Direct, PhaseMode::Integrated] {
        use candle_core::quantized::GgmlDType;
        let (cfg, vm, _) = tiny_with(phase);
        let frames = 40;
        let mut s = 99u64;
        let codes: Vec<u32> = (0..frames * cfg.n_codebooks)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) % cfg.codebook_size as u64) as u32
            })
            .collect();
        let codes_t = Tensor::from_slice(&codes, (1, frames, cfg.n_codebooks), &Device::Cpu).unwrap();
        for quant in [None, Some(GgmlDType::Q8_0)] {
            let bytes = weights::to_bytes_quantized(KIND, &cfg, &tensors(&vm), Some(DType::F32), quant.map(|q| (&Codec::is_quantizable as &dyn Fn(&str) -> bool, q))).unwrap();
            let codec = Codec::from_bytes(&bytes, &Device::Cpu).unwrap();
            let whole = codec.decode(&codes_t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let fast = codec.cpu_decoder.as_ref().expect("a CPU load makes the fast decoder");
            let mut one_at_a_time: Option<Vec<f32>> = None;
            for chunk in [1, 2, 3, 7] {
                let mut state = fast.new_state();
                let mut out = Vec::new();
                for c in codes.chunks(chunk * cfg.n_codebooks) {
                    fast.push_frames(&mut state, c, &mut out).unwrap();
                }
                // Frames decoded side by side give the same bits as one at a time.
                match &one_at_a_time {
                    None => one_at_a_time = Some(out.clone()),
                    Some(first) => assert!(first.len() == out.len() && first.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{quant:?}: chunks of {chunk} differ from single frames"),
                }
                // Everything but the last frames' unfinished overlap is out, aligned with the whole decode.
                let delay = (cfg.n_fft - cfg.hop()) / 2;
                assert_eq!(out.len(), frames * cfg.hop() - delay, "{quant:?}, chunks of {chunk}");
                let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = out.iter().zip(&whole).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                let tolerance = if quant.is_some() { 2e-2 } else { 1e-4 };
                assert!(scale > 1e-3 && worst <= tolerance * scale, "{phase:?}, {quant:?}: fast and tensor audio differ by {worst} (peak {scale})");
            }
        }
    }
    {
        let (cfg, vm, _) = tiny();
        // Codes outside the codebook are refused, not read out of bounds.
        let codec = Codec::from_bytes(&weights::to_bytes(KIND, &cfg, &tensors(&vm), DType::F32).unwrap(), &Device::Cpu).unwrap();
        let fast = codec.cpu_decoder.as_ref().unwrap();
        assert!(fast.push_frames(&mut fast.new_state(), &vec![cfg.codebook_size as u32; cfg.n_codebooks], &mut Vec::new()).is_err());
    }
}

/// `xtask/gpu/decoder_twin.py` trains the decoder on a lent GPU: its PyTorch twin must decode
/// the same latents to the same audio with the same weights, and measure the same spectral
/// distances, or its weights would not mean the same thing here. The fixture is the twin's
/// output (`python3 xtask/gpu/decoder_twin.py fixture`); rerun it when either side changes.
#[test]
fn decoder_twin_matches_the_pytorch_twin() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/decoder-twin.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let cfg: CodecConfig = serde_json::from_str(&meta.metadata().as_ref().unwrap()["cantor.config"]).unwrap();
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    let mut io = |k: &str| tensors.remove(k).unwrap();
    let (z, expected, reference, stft, mel) = (io("io.latents"), io("io.audio"), io("io.reference"), io("io.stft"), io("io.mel"));
    let decoder = Decoder::new(&cfg, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu).pp("decoder")).unwrap();
    let audio = decoder.forward(&z).unwrap();
    assert_eq!(audio.dims(), expected.dims());
    let max_abs = |t: &Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let (diff, scale) = (max_abs(&(&audio - &expected).unwrap()), max_abs(&expected));
    assert!(scale > 1e-3, "the fixture's audio is near silent ({scale}), so it would prove little");
    assert!(diff < 1e-4 * scale, "audio differs by {diff} (largest sample {scale})");

    // The spectral distances the twin trains with and reports are the Rust trainer's.
    let spectral = SpectralDistances::new(cfg.sample_rate, &Device::Cpu).unwrap();
    let (s, m) = spectral.both(&(expected * 3.0).unwrap(), &reference).unwrap();
    let close = |a: &Tensor, b: &Tensor| (a.to_scalar::<f32>().unwrap() - b.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]).abs();
    assert!(close(&s, &stft) < 1e-4, "multi-resolution STFT distance: ours {s}, the twin's {stft}");
    assert!(close(&m, &mel) < 1e-4, "log-mel distance: ours {m}, the twin's {mel}");
}
