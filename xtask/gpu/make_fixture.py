"""Write tests/fixtures/prior-twin.safetensors: a small random prior in the twin's weight names,
stored inputs, and the twin's outputs for them (logits, conditioning features, delay-pattern
training pairs). The Rust test `prior_twin_matches_the_pytorch_twin` checks the Rust prior
against it. Rerun (with PyTorch and safetensors installed) whenever prior_twin.py changes:

    python3 xtask/gpu/make_fixture.py
"""

import json
import os

import torch
from safetensors.torch import save_file

import prior_twin as twin

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "prior-twin.safetensors")

CFG = {"n_levels": 2, "codebook_size": 16, "delays": [0, 1], "d_model": 32, "n_layers": 2, "n_heads": 2, "mlp": 64,
       "window": 12, "frame_rate": 75.0, "codec_id": "fixture"}


def main():
    g = torch.Generator().manual_seed(5)
    model = twin.Prior(CFG)
    with torch.no_grad():
        for p in model.parameters():
            # Layer norms away from identity too, so a misplaced norm shows.
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.eval()
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}

    # Logits of whole sequences longer than the window (the band matters).
    b, l = 2, 20
    tokens = torch.randint(0, CFG["codebook_size"] + 1, (b, l, CFG["n_levels"]), generator=g)
    cond = torch.randn(b, l, twin.COND_DIM, generator=g)
    with torch.no_grad():
        logits = model(tokens, cond)
    tensors["io.tokens"] = tokens.to(torch.int64)
    tensors["io.cond"] = cond
    tensors["io.logits"] = logits.contiguous()

    # Conditioning features: a few frames with every knob on or off, odd grids.
    n = 6
    cases = {
        "style": torch.tensor([0, 3, 5, 2, 1, 4]),
        "style_on": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]),
        "instrument": torch.tensor([0, 7, 3, 1, 2, 5]),
        "instrument_on": torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
        "key": torch.tensor([0, 11, 2, 7, 9, 4]),
        "mode": torch.tensor([0, 1, 1, 0, 1, 0]),
        "key_on": torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 1.0]),
        "bpm": torch.tensor([120.0, 66.0, 400.0, 96.66666412353516, 20.0, 180.0], dtype=torch.float64),
        "bpm_on": torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0]),
        "beats": torch.tensor([0.0, 5.25, 37.9, 123.456, 0.5, 2000.125], dtype=torch.float64),
        "beats_per_bar": torch.tensor([4, 3, 2, 6, 4, 4]),
        "phrase_on": torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
    }
    feats = twin.features(**cases)
    for k, v in cases.items():
        tensors[f"io.features.{k}"] = v.contiguous()
    tensors["io.features"] = feats

    # Delay-pattern training pairs of a crop that starts inside a clip and runs past its end.
    frames, levels = 10, 2
    codes = torch.randint(0, CFG["codebook_size"], (frames, levels), generator=g)
    start, length = 3, 12

    def frame_codes(rel):
        return codes[rel.clamp(max=frames - 1)]

    inputs, targets = twin.training_pairs(frame_codes, torch.tensor([frames]), torch.tensor([start]), length, CFG["delays"], CFG["codebook_size"])
    tensors["io.pairs.codes"] = codes.contiguous()
    tensors["io.pairs.start"] = torch.tensor([start])
    tensors["io.pairs.inputs"] = inputs[0].contiguous()
    tensors["io.pairs.targets"] = targets[0].contiguous()

    meta = {"cantor.kind": "cantor-prior", "cantor.version": "1", "cantor.config": json.dumps(CFG)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata=meta)
    print(f"wrote {os.path.normpath(OUT)}: logits {tuple(logits.shape)}, features {tuple(feats.shape)}")


if __name__ == "__main__":
    main()
