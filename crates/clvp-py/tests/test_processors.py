"""The transformers-shaped front ends: `EncodecFeatureExtractor` against transformers' on a table of padding /
truncation cases, file paths against the `clvp` command, `ClvpProcessor`'s keys, shapes and dtypes, and
`generate(**processor(...))` against transformers' `generate` on the processor's tensors. The references come
from xtask/python/ref_python_api.py (fixtures/python/processors.json) and xtask/python/ref_clvp_nn.py
(fixtures/clvp/tiny.cases.safetensors)."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from safetensors.numpy import load_file

import clvp
from conftest import FIXTURES, ROOT, close, exact

CASES = json.loads((FIXTURES / "python" / "processors.json").read_text())
TINY = str(FIXTURES / "clvp" / "tiny")
E2E_TEXT = "Hello world, this is a test."
E2E_VOICE = ROOT / "fixtures" / "audio" / "speech_mid.wav"  # the committed clip ref_clvp_nn.py reads
GEN_STEPS = 12


@pytest.mark.parametrize("case", CASES["encodec_feature_extractor"], ids=lambda c: c["name"])
def test_encodec_feature_extractor_equals_transformers(case):
    fe = clvp.EncodecFeatureExtractor(**case["extractor"])
    clips = [np.asarray(c, dtype=np.float32) for c in case["clips"]]
    raw = clips if len(clips) > 1 else clips[0]
    if "error" in case:
        with pytest.raises(ValueError):
            fe(raw, sampling_rate=fe.sampling_rate, return_tensors="np", **case["call"])
        return
    got = fe(raw, sampling_rate=fe.sampling_rate, return_tensors="np", **case["call"])
    want = case["input_values"]
    label = f"EncodecFeatureExtractor {case['name']}"
    assert str(got["input_values"].dtype) == want["dtype"]
    exact(got["input_values"], np.asarray(want["values"], np.float32).reshape(want["shape"]), "processors", label)
    assert ("padding_mask" in got) == ("padding_mask" in case)
    if "padding_mask" in case:
        m = case["padding_mask"]
        assert str(got["padding_mask"].dtype) == m["dtype"]
        exact(got["padding_mask"], np.asarray(m["values"]).reshape(m["shape"]), "processors", label + " mask")


def encode_cli(path, model, bandwidth):
    exe = os.environ.get("CLVP_BIN") or str(ROOT / "target" / "debug" / "clvp")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "codes.safetensors"
        subprocess.run([exe, "encodec", "encode", str(path), str(out), "--model", model, "--bandwidth",
                        str(bandwidth)], check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return load_file(str(out))["audio_codes"]


@pytest.mark.parametrize("name,clip,bandwidth", [
    ("tiny_24k", "speech_short.wav", 1.8),   # 22.05 kHz mono file, resampled
    ("tiny_48k", "speech_short.wav", 3.6),   # mono duplicated to stereo, resampled
])
def test_file_paths_give_the_commands_codes(name, clip, bandwidth):
    model_dir = str(FIXTURES / "encodec" / name)
    fe = clvp.EncodecFeatureExtractor.from_pretrained(model_dir)
    model = clvp.EncodecModel.from_pretrained(model_dir)
    path = FIXTURES / "audio" / clip
    # One clip unpadded is what the command encodes; transformers' default padding would add the chunked
    # model's padding to the chunk grid (one more chunk here), as it does for arrays.
    inputs = fe(str(path), padding=False)
    assert inputs["input_values"].shape[:2] == (1, model.audio_channels)
    ours = model.encode(inputs["input_values"], inputs.get("padding_mask"), bandwidth=bandwidth).audio_codes
    np.testing.assert_array_equal(ours, encode_cli(path, model_dir, bandwidth))
    padded = fe(str(path))
    if fe.chunk_length is None:
        np.testing.assert_array_equal(padded["input_values"], inputs["input_values"])
    else:
        assert padded["input_values"].shape[-1] > inputs["input_values"].shape[-1]
    # A list of paths is a batch, padded as arrays are.
    both = fe([str(path), path])
    assert both["input_values"].shape[0] == 2
    np.testing.assert_array_equal(both["input_values"][0], both["input_values"][1])


def test_encodec_feature_extractor_errors():
    fe = clvp.EncodecFeatureExtractor.from_pretrained(str(FIXTURES / "encodec" / "tiny_24k"))
    with pytest.raises(ValueError, match="sampling rate"):
        fe(np.zeros(100, np.float32), sampling_rate=16_000)
    with pytest.raises(ValueError, match="mono"):
        fe(np.zeros((2, 100), np.float32))
    with pytest.raises(FileNotFoundError):
        fe(str(FIXTURES / "nope.wav"))
    with pytest.raises(ValueError):
        fe(str(FIXTURES / "python" / "processors.json"))  # not audio
    with pytest.raises(ValueError, match="padding"):
        fe(np.zeros(100, np.float32), padding="sideways")


@pytest.mark.parametrize("name", ["text_and_audio", "text_only", "audio_only"])
def test_processor_keys_shapes_dtypes_equal_transformers(name):
    proc = clvp.ClvpProcessor.from_pretrained(TINY)
    clip, sr = soundfile.read(str(E2E_VOICE), dtype="float32")
    short, _ = soundfile.read(str(FIXTURES / "audio" / "speech_short.wav"), dtype="float32")
    kwargs = {
        "text_and_audio": dict(text=CASES["clvp_processor"]["text"], audio=clip, sampling_rate=sr),
        "text_only": dict(text=CASES["clvp_processor"]["text"]),
        "audio_only": dict(audio=[clip, short[:sr]], sampling_rate=sr),
    }[name]
    got = proc(return_tensors="np", **kwargs)
    want = CASES["clvp_processor"]["calls"][name]
    layout = lambda d: sorted((k, tuple(v["shape"]), v["dtype"]) for k, v in d.items())  # noqa: E731
    ours = {k: dict(shape=list(v.shape), dtype=str(v.dtype)) for k, v in got.items()}
    exact(np.array(layout(ours), dtype=object), np.array(layout(want), dtype=object), "processors",
          f"ClvpProcessor {name} keys, shapes, dtypes")


@pytest.fixture(scope="module")
def model():
    return clvp.ClvpModelForConditionalGeneration.from_pretrained(TINY)


@pytest.mark.parametrize("case,kwargs", [
    ("e2e_hf523.", dict(prefill_positions="hf523")),
    ("e2e_tortoise.", {}),
    ("e2e_beam.", dict(num_beams=3, num_return_sequences=2, prefill_positions="hf523")),
    ("e2e_beam.pad_", dict(num_beams=3, num_return_sequences=2, prefill_positions="hf523",
                           pad_to_max_mel_tokens=16)),
])
def test_generate_on_the_processors_tensors_equals_transformers(model, case, kwargs):
    ref = load_file(str(FIXTURES / "clvp" / "tiny.cases.safetensors"))
    proc = clvp.ClvpProcessor.from_pretrained()
    for audio in (str(E2E_VOICE), soundfile.read(str(E2E_VOICE), dtype="float32")[0]):
        inputs = proc(text=E2E_TEXT, audio=audio, sampling_rate=22_050)
        out = model.generate(**inputs, max_new_tokens=GEN_STEPS, **kwargs)
        kind = "path" if isinstance(audio, str) else "array"
        exact(out.speech_ids, ref[case + "speech_ids"], "clvp-nn", f"generate(**processor) {case}speech_ids ({kind})")
        close(out.logits_per_text, ref[case + "logits_per_text"], "nn",
              f"generate(**processor) {case}logits_per_text ({kind})")
        assert out["speech_ids"] is not None and "ranking" in out and out.logits_per_speech.shape[::-1] == \
            out.logits_per_text.shape


def test_generate_broadcasts_one_text_over_clips(model):
    proc = clvp.ClvpProcessor.from_pretrained()
    one = proc(text=E2E_TEXT, audio=str(E2E_VOICE))
    two = proc(text=E2E_TEXT, audio=[str(E2E_VOICE), str(FIXTURES / "audio" / "speech_short.wav")])
    a = model.generate(**one, max_new_tokens=6)
    b = model.generate(**two, max_new_tokens=6)
    assert b.speech_ids.shape[0] == 2
    np.testing.assert_array_equal(b.speech_ids[0, : a.speech_ids.shape[1]], a.speech_ids[0])


def test_generate_input_errors(model):
    proc = clvp.ClvpProcessor.from_pretrained()
    inputs = proc(text=E2E_TEXT, audio=str(E2E_VOICE))
    ids, feats = inputs["input_ids"], inputs["input_features"]
    with pytest.raises(ValueError, match="one text"):
        model.generate(np.concatenate([ids, ids]), feats)
    bad = inputs["attention_mask"].copy()
    bad[0, 2] = 0
    with pytest.raises(ValueError, match="ones then zeros"):
        model.generate(ids, feats, bad)
    with pytest.raises(ValueError, match="input_features"):
        model.generate(ids, feats[0])
    with pytest.raises(ValueError, match="input_ids and input_features"):
        model.generate(ids)
    with pytest.raises(ValueError, match="early_stopping"):
        model.generate(ids, feats, early_stopping="soon")
