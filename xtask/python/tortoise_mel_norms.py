"""Extract Tortoise's `mel_norms` (tortoise/data/mel_norms.pth, float32 [80]) as the JSON list that
`clvp-audio` embeds as the default of `ClvpFeatureExtractor::tortoise()`.

Usage: python xtask/python/tortoise_mel_norms.py SDIST_DIR [--out crates/clvp-audio/assets/mel_norms.json]
Needs torch (run with the xtask environment's python: `cargo xtask tortoise-assets`).
"""

import argparse
import json
import os

import torch


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("sdist", help="extracted tortoise-tts-3.0.0 directory")
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "crates", "clvp-audio", "assets", "mel_norms.json"))
    args = ap.parse_args()
    norms = torch.load(os.path.join(args.sdist, "tortoise", "data", "mel_norms.pth"), map_location="cpu")
    values = [float(v) for v in norms.float().tolist()]
    if len(values) != 80:
        raise SystemExit(f"mel_norms.pth has {len(values)} values, expected 80")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"source": "tortoise-tts 3.0.0 tortoise/data/mel_norms.pth (xtask/python/tortoise_mel_norms.py)",
                   "mel_norms": values}, f, indent=1)
        f.write("\n")
    print(f"mel_norms: 80 values -> {args.out}")


if __name__ == "__main__":
    main()
