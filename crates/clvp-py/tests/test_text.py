"""The tokenizer and the feature extractor through Python against transformers' references
(fixtures/text/tokenizer_cases.json, fixtures/audio/features_cases.json), with the Rust tests' tolerances."""

import json

import numpy as np
import pytest
import soundfile
from safetensors.numpy import load_file

import clvp
from conftest import FIXTURES, close, exact


def test_tokenizer_matches_transformers():
    cases = json.loads((FIXTURES / "text" / "tokenizer_cases.json").read_text())
    tok = clvp.ClvpTokenizer.from_pretrained()
    checked = [c for c in cases["cases"] if "ids" in c]
    assert len(checked) > 100
    ours = [tok.encode(c["text"]) for c in checked]
    bad = [c["text"] for c, o in zip(checked, ours) if o != c["ids"]]
    exact(len(bad), 0, "tokenizer", f"ids of {len(checked)} texts (mismatches: {bad[:3]})")
    out = tok(["Hello world", "Hi"], return_tensors="np")
    assert out["input_ids"].dtype == np.int64 and out["input_ids"].shape[0] == 2
    assert out["attention_mask"][1].sum() == len(tok.encode("Hi"))
    ids = tok.encode("Hello world")
    assert tok.batch_decode([ids]) == [tok.decode(ids)]


def test_feature_extractor_matches_transformers():
    cases = json.loads((FIXTURES / "audio" / "features_cases.json").read_text())
    fe = clvp.ClvpFeatureExtractor.from_pretrained()
    n = 0
    for case in cases["cases"]:
        if case["config"] != "tortoise":
            continue
        clips = []
        for name in case["audio"]:
            data, rate = soundfile.read(str(FIXTURES / "audio" / name), dtype="float32")
            assert rate == 22_050
            clips.append(data if data.ndim == 1 else data.mean(axis=1))
        want = load_file(str(FIXTURES / "audio" / case["expected"]))
        got = fe(clips if len(clips) > 1 else clips[0], sampling_rate=22_050)
        close(got["input_features"], want["input_features"], "features", case["name"])
        n += 1
    assert n >= 5


def test_text_errors_are_python_exceptions():
    with pytest.raises(FileNotFoundError):
        clvp.ClvpTokenizer.from_pretrained(str(FIXTURES / "nope"))
    fe = clvp.ClvpFeatureExtractor.from_pretrained()
    with pytest.raises(ValueError, match="22050"):
        fe(np.zeros(1000, np.float32), sampling_rate=16_000)
    with pytest.raises(ValueError):
        clvp.ClvpTokenizer.from_pretrained()(3)
