"""P5-py and P3-py of `cargo xtask bench`: transformers 5.23 and this project's Python module (`clvp`, the release
build of crates/clvp-py) timed in ONE process on the same numpy arrays, rounds alternating between the two
(torch 2.15 CPU, float32, `torch.set_num_threads(THREADS)`; the module's threads by RAYON_NUM_THREADS).

  p5  EnCodec 24 kHz encode + decode of the first 10 s of a WAV at 6 kbps (as P5)
  p3  CLVP rank 16 candidates x 500 codes against the bench text (as P3): text features, speech features, the
      normalised similarity times exp(logit_scale)

Prints one JSON line: {"ours": [median s per round], "reference": [...], "runs": N, "peak_rss_bytes": ...} (the
peak of this process, which holds both models).
"""

import argparse
import json
import resource
import statistics

import numpy as np
import torch

from bench_common import time_runs

TEXT = "The quick brown fox jumps over the dog."
CANDIDATES = 16
RANK_CODES = 500


def p5(args):
    import soundfile as sf
    from transformers import EncodecModel

    import clvp

    wav, sr = sf.read(args.audio, dtype="int16", always_2d=True)
    wav = np.ascontiguousarray((wav[: int(10 * sr)].astype(np.float32) / 32768.0).T)[None]
    hf = EncodecModel.from_pretrained(args.model).eval()
    ours = clvp.EncodecModel.from_pretrained(args.model)
    x = torch.from_numpy(wav)

    def theirs_once():
        with torch.no_grad():
            enc = hf.encode(x, bandwidth=6.0)
            return hf.decode(enc.audio_codes, enc.audio_scales,
                             last_frame_pad_length=enc.last_frame_pad_length).audio_values.numpy()

    def ours_once():
        enc = ours.encode(wav, bandwidth=6.0)
        return ours.decode(enc.audio_codes, enc.audio_scales,
                           last_frame_pad_length=enc.last_frame_pad_length).audio_values

    return ours_once, theirs_once


def p3(args):
    from transformers import ClvpModelForConditionalGeneration, ClvpTokenizer

    import clvp

    tok = ClvpTokenizer.from_pretrained(args.model)
    hf = ClvpModelForConditionalGeneration.from_pretrained(args.model).eval()
    ours = clvp.ClvpModelForConditionalGeneration.from_pretrained(args.model)
    ours_tok = clvp.ClvpTokenizer.from_pretrained(args.model)
    codes = np.array([[(7919 * i + 104729 * j) % 8192 for j in range(RANK_CODES)] for i in range(CANDIDATES)])
    codes_t = torch.from_numpy(codes)
    scale = float(hf.logit_scale.exp())

    def theirs_once():
        with torch.no_grad():
            ids = torch.tensor([tok(TEXT)["input_ids"]])
            t = hf.get_text_features(input_ids=ids).embeds
            s = hf.get_speech_features(speech_ids=codes_t)
            t, s = t / t.norm(dim=-1, keepdim=True), s / s.norm(dim=-1, keepdim=True)
            return t @ s.t() * hf.logit_scale.exp()

    def ours_once():
        t = ours.get_text_features([ours_tok.encode(TEXT)])
        s = ours.get_speech_features(codes)
        t, s = t / np.linalg.norm(t, axis=-1, keepdims=True), s / np.linalg.norm(s, axis=-1, keepdims=True)
        return t @ s.T * scale

    return ours_once, theirs_once


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["p5", "p3"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--audio")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ours_once, theirs_once = {"p5": p5, "p3": p3}[args.workload](args)
    ours, theirs = [], []
    for _ in range(args.rounds):
        theirs.append(statistics.median(time_runs(theirs_once, args.runs, args.warmup)))
        ours.append(statistics.median(time_runs(ours_once, args.runs, args.warmup)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"ours": ours, "reference": theirs, "runs": args.runs, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
