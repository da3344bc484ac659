"""Reference outputs of transformers 5.23 `ClvpFeatureExtractor` for the Rust `clvp-audio` crate.

Writes into <out>:
  features_cases.json      the case list (see below)
  <clip>.wav               every input clip as 16-bit PCM; HF is fed exactly what soundfile reads back (float32)
  <case>.expected.safetensors  `input_features` f32 [B, F, T]; `mask_lengths` i64 [B] (the sample-level
                           attention mask is a prefix of ones of that length, checked here); `mask_width` i64 [1]
  mel_filters.safetensors  `mel_filters` f64 [513, 80] of the default extractor
  tortoise/preprocessor_config.json  the extractor with the Tortoise mel_norms, saved by save_pretrained
  small/preprocessor_config.json     a non-default extractor (HF tester shape: 10 mels, hop 160, 4 kHz)

Case entry: {"name", "config": "tortoise"|"default"|"small", "audio": ["<wav>", ...] (one per batch row),
             "expected": "<file>"} (+ "text"/"voice" for speech).
Speech is rendered by espeak-ng (22050 Hz). Signals and texts depend on --seed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import transformers
from safetensors.numpy import save_file
from transformers import ClvpFeatureExtractor

SR = 22050
N6 = 6 * SR  # 132300 samples: the extractor's fixed length

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
]
VOICES = ["en", "en-us", "en-gb", "en+f3", "en-us+m2", "en+f4"]


def mel_norms_from_tortoise(sdist_dir):
    """The Tortoise mel_norms (tortoise/data/mel_norms.pth) — loaded with torch from the tortoise-tts sdist."""
    import torch

    path = os.path.join(sdist_dir, "tortoise", "data", "mel_norms.pth")
    return [float(v) for v in torch.load(path, map_location="cpu").float().tolist()]


def sine_mix(n, freqs, amps):
    t = np.arange(n, dtype=np.float64) / SR
    x = sum(a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps))
    return x.astype(np.float32)


def espeak(text, voice, speed, path):
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", path, text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data, sr = sf.read(path, dtype="float32")
    if sr != SR:
        raise SystemExit(f"espeak-ng wrote {sr} Hz, expected {SR}")
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tortoise", required=True, help="extracted tortoise-tts 3.0.0 sdist directory")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    mel_norms = mel_norms_from_tortoise(args.tortoise)
    extractors = {
        "tortoise": ClvpFeatureExtractor(mel_norms=mel_norms),
        "default": ClvpFeatureExtractor(),
        "small": ClvpFeatureExtractor(feature_size=10, hop_length=160, chunk_length=8, sampling_rate=4000),
    }
    for name in ("tortoise", "small"):
        extractors[name].save_pretrained(os.path.join(args.out, name))
    save_file({"mel_filters": extractors["default"].mel_filters.astype(np.float64)},
              os.path.join(args.out, "mel_filters.safetensors"))

    cases = []

    def wav(name, clip, sr=SR):
        """Store a clip as 16-bit PCM and return exactly what a reader gets back (int16 / 32768 as float32)."""
        path = os.path.join(args.out, f"{name}.wav")
        sf.write(path, clip, sr, subtype="PCM_16")
        back, _ = sf.read(path, dtype="float32")
        return np.atleast_1d(back)

    def add(name, config, files, **extra):
        fe = extractors[config]
        clips = []
        for f_ in files:
            back, sr = sf.read(os.path.join(args.out, f_), dtype="float32")
            assert sr == fe.sampling_rate
            clips.append(np.atleast_1d(back))
        out = fe(clips if len(clips) > 1 else clips[0], sampling_rate=fe.sampling_rate, return_tensors="np")
        mask = out["attention_mask"]
        lengths = mask.sum(axis=1).astype(np.int64)
        # The sample-level mask is a prefix of ones per row: store its lengths, not 132300 ints per clip.
        for row, n in zip(mask, lengths):
            assert row[:n].all() and not row[n:].any()
        save_file({"input_features": out["input_features"].astype(np.float32),
                   "mask_lengths": lengths, "mask_width": np.array([mask.shape[1]], dtype=np.int64)},
                  os.path.join(args.out, f"{name}.expected.safetensors"))
        cases.append({"name": name, "config": config, "audio": files,
                      "expected": f"{name}.expected.safetensors", **extra})

    f = rng.uniform(100, 6000, size=3)
    # Spec §3.5 signal (2 s), with and without mel_norms.
    wav("sine_mix_2s", sine_mix(2 * SR, [440.0, 1234.5, 5000.0], [0.5, 0.25, 0.1]))
    add("sine_mix_2s", "tortoise", ["sine_mix_2s.wav"])
    add("sine_mix_2s_no_norms", "default", ["sine_mix_2s.wav"])
    # Seeded signals: shorter than, exactly, and longer than 6 s.
    wav("sines_seeded_3s", sine_mix(3 * SR, f, [0.3, 0.2, 0.1]))
    add("sines_seeded_3s", "tortoise", ["sines_seeded_3s.wav"])
    wav("noise_exact_6s", (0.1 * rng.standard_normal(N6)).astype(np.float32))
    add("noise_exact_6s", "tortoise", ["noise_exact_6s.wav"])
    t = np.arange(8 * SR) / SR
    wav("chirp_long_8s", (0.4 * np.sin(2 * np.pi * (50 + 400 * t) * t)).astype(np.float32))
    add("chirp_long_8s", "tortoise", ["chirp_long_8s.wav"])
    wav("silence_1s", np.zeros(SR, dtype=np.float32))
    add("silence_1s", "tortoise", ["silence_1s.wav"])
    imp = np.zeros(700, dtype=np.float32)
    imp[rng.integers(0, 700, size=5)] = rng.uniform(-1, 1, size=5).astype(np.float32)
    wav("impulses_700_samples", imp)
    add("impulses_700_samples", "tortoise", ["impulses_700_samples.wav"])
    wav("one_sample", np.array([0.5], dtype=np.float32))
    add("one_sample", "tortoise", ["one_sample.wav"])
    wav("loud_clipped_2s", np.clip(3.0 * sine_mix(2 * SR, f, [1, 1, 1]), -1, 1))
    add("loud_clipped_2s", "tortoise", ["loud_clipped_2s.wav"])
    # Non-default extractor (4 kHz, 10 mels, hop 160).
    wav("small_config", (0.2 * rng.standard_normal(3 * 4000)).astype(np.float32), sr=4000)
    add("small_config", "small", ["small_config.wav"])

    # Real speech from espeak-ng: shorter than, around, and longer than 6 s.
    order = rng.permutation(len(SENTENCES))
    with tempfile.TemporaryDirectory() as tmp:
        plans = [("speech_short", 1, 175), ("speech_mid", 2, 150), ("speech_long", 4, 140)]
        for i, (name, n_sent, speed) in enumerate(plans):
            text = " ".join(SENTENCES[j] for j in order[i * 3: i * 3 + n_sent])
            voice = VOICES[int(rng.integers(len(VOICES)))]
            wav(name, espeak(text, voice, speed, os.path.join(tmp, "x.wav")))
            add(name, "tortoise", [f"{name}.wav"], text=text, voice=voice)
    # A batch of different lengths (right zero padding per clip), reusing the clips above.
    add("batch_speech_and_signals", "tortoise", ["speech_long.wav", "silence_1s.wav", "sines_seeded_3s.wav",
                                                 "speech_short.wav"])

    meta = {"generator": "xtask/python/ref_features.py", "seed": args.seed,
            "transformers": transformers.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    with open(os.path.join(args.out, "features_cases.json"), "w") as fh:
        json.dump({"meta": meta, "cases": cases}, fh, indent=1)
    print(f"features: {len(cases)} cases -> {args.out}")


if __name__ == "__main__":
    main()
