"""`ClvpModelForConditionalGeneration` through Python gives the numbers of the `clvp` command on the same
inputs (greedy generation and its scores, seeded sampling, beam search, text and speech features): the binding
adds nothing to the facade's computation, which the Rust tests check against transformers."""

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from safetensors.numpy import load_file

import clvp
from conftest import FIXTURES, ROOT

TINY = str(FIXTURES / "clvp" / "tiny")
VOICE = FIXTURES / "audio" / "speech_short.wav"


def cli(*args):
    """Run the `clvp` binary (CLVP_BIN, else the workspace's debug build) and read its safetensors output."""
    exe = os.environ.get("CLVP_BIN") or str(ROOT / "target" / "debug" / "clvp")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.safetensors"
        subprocess.run([exe, *args, "--output", str(out)], check=True, capture_output=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return load_file(str(out))


@pytest.fixture(scope="module")
def model():
    return clvp.ClvpModelForConditionalGeneration.from_pretrained(TINY)


@pytest.mark.parametrize("flags,kwargs", [
    (["--greedy"], dict(do_sample=False, num_return_sequences=1, repetition_penalty=1.0)),
    (["--candidates", "3", "--seed", "7"], dict(num_return_sequences=3, seed=7)),
    (["--beams", "3", "--candidates", "2"], dict(num_beams=3, num_return_sequences=2, repetition_penalty=1.0)),
])
def test_generate_equals_the_command(model, flags, kwargs):
    want = cli("generate", "--model", TINY, "--text", "Hello there.", "--voice", str(VOICE),
               "--max-new-tokens", "12", *flags)
    wav, rate = soundfile.read(str(VOICE), dtype="float32")
    for voices in ([str(VOICE)], [wav] if rate == 22_050 else [str(VOICE)]):
        got = model.generate("Hello there.", voices, max_new_tokens=12, **kwargs)
        np.testing.assert_array_equal(got["speech_ids"], want["speech_ids"])
        np.testing.assert_array_equal(got["logits_per_text"], want["logits_per_text"])
        np.testing.assert_array_equal(got["speech_embeds"], want["speech_embeds"])
        assert got["ranking"] == list(np.argsort(-got["logits_per_text"][0], kind="stable"))


@pytest.mark.parametrize("weights", ["bf16", "int8"])
def test_decoder_weights_equal_the_command(weights):
    want = cli("generate", "--model", TINY, "--text", "Hello there.", "--voice", str(VOICE),
               "--max-new-tokens", "12", "--greedy", "--decoder-weights", weights)
    m = clvp.ClvpModelForConditionalGeneration.from_pretrained(TINY, decoder_weights=weights)
    got = m.generate("Hello there.", [str(VOICE)], max_new_tokens=12, do_sample=False, num_return_sequences=1,
                     repetition_penalty=1.0)
    np.testing.assert_array_equal(got["speech_ids"], want["speech_ids"])
    np.testing.assert_array_equal(got["logits_per_text"], want["logits_per_text"])
    with pytest.raises(ValueError, match="int8"):
        clvp.ClvpModelForConditionalGeneration.from_pretrained(TINY, decoder_weights="int4")


def test_features_equal_the_command(model):
    tok = clvp.ClvpTokenizer.from_pretrained(TINY)
    want = cli("embed-text", "--model", TINY, "--text", "Hello there.")
    got = model.get_text_features([tok.encode("Hello there.")])
    np.testing.assert_array_equal(got, want["text_embeds"])
    want = cli("embed-speech", "--model", TINY, "--codes", "5,9,17,3")
    np.testing.assert_array_equal(model.get_speech_features(np.array([[5, 9, 17, 3]])), want["speech_embeds"])


def test_generation_errors_are_python_exceptions(model):
    with pytest.raises(ValueError, match="preset"):
        model.generate("Hi.", [str(VOICE)], preset="fastest")
    with pytest.raises(FileNotFoundError):
        model.generate("Hi.", [str(FIXTURES / "nope.wav")])
    with pytest.raises(ValueError):
        model.generate("Hi.", [np.zeros((2, 100), np.float32)])
    with pytest.raises(ValueError, match="speech code"):
        model.get_speech_features([[10**6]])
