"""P5/P6 of `cargo xtask bench`: transformers 5.23 `EncodecModel` encode + decode of the first SECONDS of a WAV at
BANDWIDTH kbps, timed in this process (torch 2.15 CPU, float32, `torch.set_num_threads(THREADS)`).

Prints one JSON line: {"median_s": ..., "runs": N, "peak_rss_bytes": ...}. The samples are the WAV's int16/32768,
as the Rust side reads them.
"""

import argparse

import numpy as np
import soundfile as sf
import torch
from transformers import EncodecModel

from bench_common import report, time_runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--audio", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--bandwidth", type=float, default=6.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = EncodecModel.from_pretrained(args.model).eval()
    wav, sr = sf.read(args.audio, dtype="int16", always_2d=True)
    wav = wav[: int(args.seconds * sr)].astype(np.float32) / 32768.0
    x = torch.from_numpy(np.ascontiguousarray(wav.T))[None]

    def once():
        with torch.no_grad():
            enc = model.encode(x, bandwidth=args.bandwidth)
            out = model.decode(enc.audio_codes, enc.audio_scales, last_frame_pad_length=enc.last_frame_pad_length)
            return out.audio_values.numpy()

    report(time_runs(once, args.runs, args.warmup))


if __name__ == "__main__":
    main()
