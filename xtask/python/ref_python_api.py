"""Reference for the Python binding's transformers-shaped front ends (crates/clvp-py/tests/test_processors.py):
transformers 5.23's EncodecFeatureExtractor over a table of padding / truncation / max_length cases (values,
shapes, dtypes, or the error), and ClvpProcessor's keys, shapes and dtypes
(fixtures/audio/speech_mid.wav, and the first second of speech_short.wav). Inputs are seeded; everything goes
into one JSON file (float32 values survive JSON exactly).

    target/pyenv/bin/python xtask/python/ref_python_api.py --out fixtures/python/processors.json --seed 0
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, extractor kwargs, clip lengths, call kwargs)
MONO = dict(feature_size=1, sampling_rate=24000)
CHUNKED = dict(feature_size=1, sampling_rate=24000, chunk_length_s=0.01, overlap=0.1)  # chunk 240, stride 216
STEREO = dict(feature_size=2, sampling_rate=48000, chunk_length_s=0.005, overlap=0.01)  # chunk 240, stride 237
FE_CASES = [
    ("default_one", MONO, [37], {}),
    ("default_batch", MONO, [37, 50, 12], {}),
    ("longest", MONO, [37, 50], dict(padding="longest")),
    ("max_length", MONO, [37, 50], dict(padding="max_length", max_length=64)),
    ("max_length_short", MONO, [37, 80], dict(padding="max_length", max_length=64)),
    ("max_length_missing", MONO, [37], dict(padding="max_length")),
    ("no_pad_equal", MONO, [40, 40], dict(padding=False)),
    ("no_pad_ragged", MONO, [40, 41], dict(padding=False)),
    ("truncate_to", MONO, [37, 50], dict(padding=False, truncation=True, max_length=30)),
    ("truncate_no_max", MONO, [37, 50], dict(truncation=True)),
    ("pad_and_truncate", MONO, [37], dict(padding=True, truncation=True, max_length=20)),
    ("chunked_default", CHUNKED, [500, 333], {}),
    ("chunked_truncate", CHUNKED, [500, 333], dict(truncation=True)),
    ("chunked_truncate_short", CHUNKED, [100, 300], dict(truncation=True)),
    ("chunked_no_pad", CHUNKED, [500], dict(padding=False)),
    ("chunked_max_length", CHUNKED, [500, 333], dict(padding="max_length", max_length=600)),
    ("stereo_default", STEREO, [300, 480], {}),
    ("stereo_truncate", STEREO, [300, 480], dict(truncation=True)),
]
PROC_TEXT = "Hello world, this is a test."


def encodec_fe_cases(rng):
    from transformers import EncodecFeatureExtractor

    out = []
    for name, fe_kw, lengths, kw in FE_CASES:
        c = fe_kw["feature_size"]
        # Multiples of 1/256: exact in float32 and short in JSON.
        clips = [(rng.integers(-256, 256, (c, n) if c == 2 else n) / 256).astype(np.float32) for n in lengths]
        fe = EncodecFeatureExtractor(**fe_kw)
        case = dict(name=name, extractor=fe_kw, call=kw,
                    clips=[clip.tolist() for clip in clips])
        try:
            r = fe(clips if len(clips) > 1 else clips[0], sampling_rate=fe_kw["sampling_rate"],
                   return_tensors="np", **kw)
            case["input_values"] = dict(shape=list(r["input_values"].shape), dtype=str(r["input_values"].dtype),
                                        values=r["input_values"].ravel().tolist())
            if "padding_mask" in r:
                m = r["padding_mask"]
                case["padding_mask"] = dict(shape=list(m.shape), dtype=str(m.dtype), values=m.ravel().tolist())
        except ValueError as e:
            case["error"] = str(e).splitlines()[0]
        out.append(case)
    return out


def processor_cases():
    import soundfile as sf
    from transformers import ClvpProcessor

    proc = ClvpProcessor.from_pretrained(os.path.join(ROOT, "fixtures", "clvp", "tiny"))
    clip, sr = sf.read(os.path.join(ROOT, "fixtures", "audio", "speech_mid.wav"), dtype="float32")
    short, _ = sf.read(os.path.join(ROOT, "fixtures", "audio", "speech_short.wav"), dtype="float32")
    calls = {
        "text_and_audio": dict(text=PROC_TEXT, audio=clip, sampling_rate=sr),
        "text_only": dict(text=PROC_TEXT),
        "audio_only": dict(audio=[clip, short[:sr]], sampling_rate=sr),
    }
    out = {}
    for name, kw in calls.items():
        r = proc(return_tensors="np", **kw)
        out[name] = {k: dict(shape=list(np.asarray(v).shape), dtype=str(np.asarray(v).dtype)) for k, v in r.items()}
    return dict(text=PROC_TEXT, calls=out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    doc = dict(
        generator="xtask/python/ref_python_api.py",
        seed=args.seed,
        encodec_feature_extractor=encodec_fe_cases(rng),
        clvp_processor=processor_cases(),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f)
    print(f"wrote {args.out}: {len(doc['encodec_feature_extractor'])} extractor cases", file=sys.stderr)


if __name__ == "__main__":
    main()
