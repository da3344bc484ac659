"""P4 of `cargo xtask bench`: HF 5.23 `ClvpFeatureExtractor` (numpy) on one clip, timed in this process.

Prints one JSON line: {"median_s": ..., "runs": N, "peak_rss_bytes": ...}. Same clip and Tortoise mel_norms as
the Rust side (the file is read with soundfile as float32, as the parity fixtures are).
"""

import argparse
import json
import os

import numpy as np
import soundfile as sf
from transformers import ClvpFeatureExtractor

from bench_common import report, time_runs

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    with open(os.path.join(HERE, "..", "..", "crates", "clvp-audio", "assets", "mel_norms.json")) as f:
        fe = ClvpFeatureExtractor(mel_norms=json.load(f)["mel_norms"])
    clip, sr = sf.read(args.audio, dtype="float32")
    clip = np.ascontiguousarray(clip)
    report(time_runs(lambda: fe(clip, sampling_rate=sr, return_tensors="np"), args.runs, args.warmup))


if __name__ == "__main__":
    main()
