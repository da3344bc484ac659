"""P4 of `cargo xtask bench`: HF 5.23 `ClvpFeatureExtractor` (numpy) on one clip, timed in this process.

Prints one JSON line: {"median_s": ..., "runs": N, "peak_rss_bytes": ...}. Same clip and Tortoise mel_norms as
the Rust side (the file is read with soundfile as float32, as the parity fixtures are).
"""

import argparse
import json
import os
import resource
import statistics
import time

import numpy as np
import soundfile as sf
from transformers import ClvpFeatureExtractor

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
    for _ in range(args.warmup):
        fe(clip, sampling_rate=sr, return_tensors="np")
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        fe(clip, sampling_rate=sr, return_tensors="np")
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"median_s": statistics.median(times), "runs": args.runs, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
