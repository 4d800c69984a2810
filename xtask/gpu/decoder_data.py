"""Decoder training data that travels to a lent GPU, and codec files that come back: NumPy and
safetensors only, so packing and merging run here without PyTorch.

`cargo xtask dataset decoder-set` writes rendered clips with their codes (`<split>.{json,audio,codes}`).
A device call carries 64 MiB, so `pack` shrinks them:
- exactly, for validation (and for training with `--opus-kbps 0`): the audio as second differences
  under xz (0.65 of the raw size; 17 minutes of training audio fit, session 11);
- or, for training, as Opus packets (`--opus-kbps`, libopus through ctypes; 20 kbit/s keeps about
  4 hours in the same room). Opus at that rate is far closer to the clips than our 5.4 kbit/s
  codec gets, and the validation split stays exact, so what is measured is against the real audio.
  Each clip is its own Opus stream with the encoder's look-ahead removed, so decoded samples line
  up with the codes exactly as the rendered ones did.
The GPU machine has no libopus: carry this machine's (`.gpu/libopus.so.0`, it needs only libc).

    python3 xtask/gpu/decoder_data.py pack --data cache/decoder-set --to .gpu/decoder-set --minutes 240 --opus-kbps 20
    python3 xtask/gpu/decoder_data.py unpack --data .gpu/decoder-set --to /tmp/decoder-set   # there
    python3 xtask/gpu/decoder_data.py merge --start assets/models/codec.safetensors --decoder B-last.safetensors --to codec-B.safetensors
"""

import argparse
import ctypes
import ctypes.util
import functools
import json
import lzma
import multiprocessing
import os

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

OPUS_FRAME_MS = 20
OPUS_APPLICATION_AUDIO = 2049
OPUS_SET_BITRATE = 4002
OPUS_SET_COMPLEXITY = 4010
OPUS_SET_SIGNAL = 4024
OPUS_SIGNAL_MUSIC = 3002
OPUS_GET_LOOKAHEAD = 4027


@functools.cache
def libopus():
    """This checkout's carried copy first (the GPU machine), else the system's; loaded once per
    process (each decoding worker loads its own)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".gpu", "libopus.so.0")
    path = here if os.path.exists(here) else (ctypes.util.find_library("opus") or "libopus.so.0")
    lib = ctypes.CDLL(path)
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_encode_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int32]
    lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    return lib


def opus_encode_clip(lib, x, sr, kbps):
    """One clip (float32 in [-1, 1]) -> (packets, look-ahead in samples). The clip is padded with
    the look-ahead and to whole frames, so decoding and dropping the look-ahead gives it all back."""
    err = ctypes.c_int(0)
    enc = lib.opus_encoder_create(sr, 1, OPUS_APPLICATION_AUDIO, ctypes.byref(err))
    assert err.value == 0 and enc, f"opus_encoder_create failed ({err.value})"
    try:
        for req, val in ((OPUS_SET_BITRATE, kbps * 1000), (OPUS_SET_COMPLEXITY, 10), (OPUS_SET_SIGNAL, OPUS_SIGNAL_MUSIC)):
            assert lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(req), ctypes.c_int32(val)) == 0
        look = ctypes.c_int32(0)
        assert lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(OPUS_GET_LOOKAHEAD), ctypes.byref(look)) == 0
        frame = sr * OPUS_FRAME_MS // 1000
        n = x.size + look.value
        padded = np.zeros(-(-n // frame) * frame, dtype=np.float32)
        padded[: x.size] = x
        buf = (ctypes.c_ubyte * 4000)()
        packets = []
        for i in range(0, padded.size, frame):
            chunk = np.ascontiguousarray(padded[i : i + frame])
            m = lib.opus_encode_float(enc, chunk.ctypes.data, frame, buf, 4000)
            assert m > 0, f"opus_encode_float failed ({m})"
            packets.append(bytes(buf[:m]))
        return packets, look.value
    finally:
        lib.opus_encoder_destroy(enc)


def opus_decode_clip(lib, packets, look, n, sr):
    err = ctypes.c_int(0)
    dec = lib.opus_decoder_create(sr, 1, ctypes.byref(err))
    assert err.value == 0 and dec, f"opus_decoder_create failed ({err.value})"
    try:
        frame = sr * OPUS_FRAME_MS // 1000
        out = np.zeros(len(packets) * frame, dtype=np.float32)
        for i, p in enumerate(packets):
            view = out[i * frame :]
            m = lib.opus_decode_float(dec, p, len(p), view.ctypes.data, frame, 0)
            assert m == frame, f"opus_decode_float gave {m} samples"
        return out[look : look + n]
    finally:
        lib.opus_decoder_destroy(dec)


def pack(args):
    """Raw clips -> the files that travel: the first `--minutes` of whole training clips (as Opus
    with `--opus-kbps`, else exact), every validation clip exact."""
    os.makedirs(args.to, exist_ok=True)
    for split, minutes in (("train", args.minutes), ("valid", 1e9)):
        meta = json.load(open(os.path.join(args.data, f"{split}.json")))
        clips, frames = [], 0
        for c in meta["clips"]:
            if frames / (meta["sample_rate"] / meta["hop"]) >= minutes * 60:
                break
            clips.append(c)
            frames += c["frames"]
        meta["clips"] = clips
        audio = np.fromfile(os.path.join(args.data, f"{split}.audio"), dtype="<i2", count=frames * meta["hop"])
        codes = np.fromfile(os.path.join(args.data, f"{split}.codes"), dtype="<u2", count=frames * meta["levels"])
        with lzma.open(os.path.join(args.to, f"{split}.codes.xz"), "wb", preset=9) as f:
            f.write(codes.tobytes())
        if split == "train" and args.opus_kbps > 0:
            lib, sr, hop = libopus(), meta["sample_rate"], meta["hop"]
            x = audio.astype(np.float32) / 32767.0
            stream, at, err, ref = bytearray(), 0, 0.0, 0.0
            for i, c in enumerate(clips):
                n = c["frames"] * hop
                packets, look = opus_encode_clip(lib, x[at : at + n], sr, args.opus_kbps)
                c["opus_packets"], c["opus_lookahead"] = len(packets), look
                for p in packets:
                    stream += len(p).to_bytes(2, "little") + p
                if i % 25 == 0:  # spot-check the round trip's alignment
                    y = opus_decode_clip(lib, packets, look, n, sr)
                    err += float(np.sum((y - x[at : at + n]) ** 2))
                    ref += float(np.sum(x[at : at + n] ** 2))
                at += n
            open(os.path.join(args.to, f"{split}.opus"), "wb").write(bytes(stream))
            meta["opus_kbps"] = args.opus_kbps
            snr = 10 * np.log10(ref / max(err, 1e-12))
            print(f"{split}: Opus at {args.opus_kbps} kbit/s, SNR of the spot-checked clips {snr:.1f} dB")
            assert snr > 5.0, "Opus round trip is misaligned or broken"
        else:
            diff = np.diff(audio.astype(np.int32), n=2, prepend=[0, 0]).astype("<i2")
            assert np.array_equal(undiff(diff), audio), "the difference coding does not invert"
            with lzma.open(os.path.join(args.to, f"{split}.audio.d2.xz"), "wb", preset=9) as f:
                f.write(diff.tobytes())
        json.dump(meta, open(os.path.join(args.to, f"{split}.json"), "w"))
        sizes = {n: os.path.getsize(os.path.join(args.to, n)) for n in os.listdir(args.to) if n.startswith(split)}
        print(split, f"{len(clips)} clips, {audio.size / meta['sample_rate'] / 60:.1f} min", sizes)


def undiff(d):
    """Inverse of second differences with zero history, wrapping like the int16 samples did."""
    return np.cumsum(np.cumsum(d, dtype=np.int16), dtype=np.int16)


def load_split(data, split):
    """(meta, audio float32 [samples], codes int64 [frames, levels], frames per clip) from raw or packed files."""
    meta = json.load(open(os.path.join(data, f"{split}.json")))
    if os.path.exists(os.path.join(data, f"{split}.audio")):
        audio = np.fromfile(os.path.join(data, f"{split}.audio"), dtype="<i2").astype(np.float32) / 32767.0
        codes = np.fromfile(os.path.join(data, f"{split}.codes"), dtype="<u2")
    else:
        with lzma.open(os.path.join(data, f"{split}.codes.xz")) as f:
            codes = np.frombuffer(f.read(), dtype="<u2")
        if os.path.exists(os.path.join(data, f"{split}.opus")):
            audio = decode_opus_split(data, split, meta)
        else:
            with lzma.open(os.path.join(data, f"{split}.audio.d2.xz")) as f:
                audio = undiff(np.frombuffer(f.read(), dtype="<i2")).astype(np.float32) / 32767.0
    codes = codes.reshape(-1, meta["levels"]).astype(np.int64)
    frames = [c["frames"] for c in meta["clips"]]
    assert sum(frames) == codes.shape[0] and audio.size == codes.shape[0] * meta["hop"], "audio, codes and clip list disagree"
    return meta, audio, codes, frames


def unpack(args):
    """Packed files -> the raw layout `cargo xtask dataset decoder-set` writes, decoded once for
    all the runs that read them (Opus decoding takes a core about a minute for 4 hours)."""
    os.makedirs(args.to, exist_ok=True)
    for split in ("train", "valid"):
        meta, audio, codes, _ = load_split(args.data, split)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
        pcm.tofile(os.path.join(args.to, f"{split}.audio"))
        codes.astype("<u2").tofile(os.path.join(args.to, f"{split}.codes"))
        json.dump(meta, open(os.path.join(args.to, f"{split}.json"), "w"))
        print(f"{split}: {audio.size / meta['sample_rate'] / 60:.1f} min unpacked")


def _decode_job(job):
    packets, look, n, sr = job
    return opus_decode_clip(libopus(), packets, look, n, sr)


def decode_opus_split(data, split, meta):
    """Every clip's Opus stream, decoded on all cores (each clip is its own stream)."""
    sr, hop = meta["sample_rate"], meta["hop"]
    stream = memoryview(open(os.path.join(data, f"{split}.opus"), "rb").read())
    jobs, pos = [], 0
    for c in meta["clips"]:
        packets = []
        for _ in range(c["opus_packets"]):
            m = int.from_bytes(stream[pos : pos + 2], "little")
            packets.append(bytes(stream[pos + 2 : pos + 2 + m]))
            pos += 2 + m
        jobs.append((packets, c["opus_lookahead"], c["frames"] * hop, sr))
    assert pos == len(stream), "the Opus stream holds more than the clip list says"
    with multiprocessing.Pool() as pool:
        return np.concatenate(pool.map(_decode_job, jobs, chunksize=8))


def merge(args):
    """A codec file: the start's encoder and codebooks with a trained decoder (f16, like the shipped file)."""
    with safe_open(args.start, "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta.get("cantor.kind") == "cantor-codec", f"{args.start} is not a Cantor codec file"
    with safe_open(args.decoder, "np") as f:
        new = {k: f.get_tensor(k) for k in f.keys()}
    missing = sorted(k for k in tensors if k.startswith("decoder.") and k not in new)
    assert not missing, f"{args.decoder} lacks {missing}"
    for k, v in new.items():
        assert tensors[k].shape == v.shape, f"{k}: {tuple(v.shape)} against {tuple(tensors[k].shape)}"
        tensors[k] = v.astype(np.float16)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, args.to, metadata=meta)
    print(f"wrote {args.to}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--data", required=True)
    a.add_argument("--to", required=True)
    a.add_argument("--minutes", type=float, default=20.0, help="minutes of training clips to take")
    a.add_argument("--opus-kbps", type=int, default=0, help="training audio as Opus at this rate (0: exact)")
    u = sub.add_parser("unpack")
    u.add_argument("--data", required=True)
    u.add_argument("--to", required=True)
    m = sub.add_parser("merge")
    m.add_argument("--start", required=True)
    m.add_argument("--decoder", required=True)
    m.add_argument("--to", required=True)
    args = p.parse_args()
    {"pack": pack, "unpack": unpack, "merge": merge}[args.cmd](args)


if __name__ == "__main__":
    main()
