"""EnCodec through Python: the committed transformers references (fixtures/encodec/*.cases.safetensors) give
the same codes and the same audio through the binding as through Rust (crates/encodec-codec/tests/parity.rs),
with the same tolerances; the live stream objects equal the whole pass however the input is cut; `.ecdc` bytes
equal Meta's (fixtures/encodec/ecdc, written by Meta's `encodec` package); errors are Python exceptions."""

import threading

import numpy as np
import pytest
from safetensors.numpy import load_file

import clvp
from conftest import FIXTURES, close, exact

MODELS = ["tiny_24k", "tiny_32k", "tiny_48k"]


def model(name, **kw):
    return clvp.EncodecModel.from_pretrained(str(FIXTURES / "encodec" / name), **kw)


def cases(name):
    data = load_file(str(FIXTURES / "encodec" / f"{name}.cases.safetensors"))
    names = sorted({k.split(".")[0] for k in data if k.endswith(".input_values")})
    return data, names


@pytest.mark.parametrize("name", MODELS)
def test_encode_and_decode_match_transformers(name):
    m = model(name)
    data, names = cases(name)
    checked = 0
    for case in names:
        x = data[f"{case}.input_values"]
        mask = data.get(f"{case}.padding_mask")
        for bw in m.target_bandwidths:
            key = f"{case}.bw{bw:g}"
            if f"{key}.audio_codes" not in data:
                continue
            out = m.encode(x, mask, bandwidth=bw)
            assert out.audio_codes.dtype == np.int64
            exact(out.audio_codes, data[f"{key}.audio_codes"], "encodec", f"{name} {key} codes")
            assert out.last_frame_pad_length == int(data[f"{key}.last_frame_pad_length"][0])
            scales = data.get(f"{key}.audio_scales")
            if scales is not None:
                close(out.audio_scales.reshape(scales.shape), scales, "encodec_latent", f"{name} {key} scales")
            else:
                assert out.audio_scales is None
            # transformers' decode of the reference codes.
            ref_scales = None if scales is None else scales.reshape(out.audio_codes.shape[:2])
            audio = m.decode(data[f"{key}.audio_codes"], ref_scales, mask,
                             last_frame_pad_length=int(data[f"{key}.last_frame_pad_length"][0]))
            close(audio.audio_values, data[f"{key}.audio_values"], "encodec_audio", f"{name} {key} audio")
            assert audio["audio_values"] is audio.audio_values or np.array_equal(audio[0], audio.audio_values)
            checked += 1
    assert checked >= 3, f"{name}: only {checked} cases"


def clip(rate, channels, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    chans = [0.4 * np.sin(2 * np.pi * (150 + 300 * t + 70 * c) * t) + 0.1 * rng.uniform(-0.5, 0.5, t.size)
             for c in range(channels)]
    return np.stack(chans).astype(np.float32)


@pytest.mark.parametrize("name,bw,frames", [("tiny_24k", 1.8, 1), ("tiny_24k", 3.6, None), ("tiny_48k", 3.6, 1)])
def test_streams_equal_the_whole_pass(name, bw, frames):
    m = model(name, stream_frames=frames)
    c = m.audio_channels
    x = clip(m.sampling_rate, c, 1.7)
    whole = m.encode(x[None], bandwidth=bw)
    rng = np.random.default_rng(1)
    enc = m.stream_encoder(bandwidth=bw)
    events = []
    at = 0
    while at < x.shape[1]:
        n = int(np.exp(rng.uniform(0, np.log(2 * m.sampling_rate))))
        events += enc.push(x[:, at:at + n])
        at += n
    events += enc.finish()
    assert enc.audio_length == x.shape[1]
    # Segments: the frames between two ends, codebook-major.
    segs, cur = [], []
    for e in events:
        if e["type"] == "frames":
            cur.append(e["codes"])
        else:
            segs.append((np.concatenate(cur, axis=1), e["scale"]))
            cur = []
    codes = whole.audio_codes[:, 0]
    assert len(segs) == codes.shape[0]
    for i, (s, scale) in enumerate(segs):
        t = s.shape[1]
        np.testing.assert_array_equal(s, codes[i, :, :t], err_msg=f"segment {i}")
        if whole.audio_scales is not None:
            assert scale == pytest.approx(float(whole.audio_scales[i, 0]), abs=0)
    # The decoder, a random number of frames at a time.
    ref = m.decode(whole.audio_codes, whole.audio_scales, last_frame_pad_length=whole.last_frame_pad_length,
                   padding_mask=np.ones((1, x.shape[1]))).audio_values[0]
    dec = m.stream_decoder(codes.shape[1], audio_length=x.shape[1])
    out = []
    for s, scale in segs:
        lo = 0
        while lo < s.shape[1]:
            n = int(rng.integers(1, 40))
            out.append(dec.push(s[:, lo:lo + n]))
            lo += n
        out.append(dec.end_segment(scale))
    out.append(dec.finish())
    got = np.concatenate(out, axis=1)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref), f"stream decode differs by {np.abs(got - ref).max()}"


def test_the_live_encoder_converts_rate_and_channels():
    m = model("tiny_24k")
    x = clip(22_050, 2, 1.1, seed=3)
    enc = m.stream_encoder(bandwidth=1.8, sampling_rate=22_050, channels=2)
    events = enc.push(x[:, :5000]) + enc.push(x[:, 5000:]) + enc.finish()
    frames = np.concatenate([e["codes"] for e in events if e["type"] == "frames"], axis=1)
    # The same clip through .ecdc (converted by the library as encodec's convert_audio).
    wav, rate = clvp.ecdc.decompress(clvp.ecdc.compress(m, x, sampling_rate=22_050, bandwidth=1.8), m)
    assert rate == 24_000 and wav.shape[0] == 1 and wav.shape[1] == enc.audio_length
    assert frames.shape[0] == 4


def test_ecdc_round_trip_is_the_model_s():
    """`compress` writes Meta's container (magic, version, a JSON header with the model, length and codebook
    count; the Rust tests compare its bytes with files written by Meta's package) and `decompress` decodes what
    `encode` + `decode` give."""
    import json
    import struct

    m = model("tiny_24k")
    x = clip(24_000, 1, 0.8, seed=5)
    data = clvp.ecdc.compress(m, x, bandwidth=1.8)
    assert data[:4] == b"ECDC" and data[4] == 0
    (n,) = struct.unpack(">I", data[5:9])
    header = json.loads(data[9:9 + n])
    assert header == {"m": "encodec_24khz", "al": x.shape[1], "nc": 4, "lm": False}
    wav, rate = clvp.ecdc.decompress(data, m)
    codes = m.encode(x[None], bandwidth=1.8)
    want = m.decode(codes.audio_codes, codes.audio_scales, np.ones((1, x.shape[1]))).audio_values[0]
    assert rate == 24_000 and np.array_equal(wav, want)
    with pytest.raises(ValueError, match="outside the codebook"):
        meta = (FIXTURES / "encodec" / "ecdc" / "24k_k8_len6720.ecdc").read_bytes()
        clvp.ecdc.decompress(meta, m)  # the real 24 kHz model's 1 024 codes do not fit the tiny one's 64


def test_errors_are_python_exceptions():
    with pytest.raises(FileNotFoundError):
        clvp.EncodecModel.from_pretrained(str(FIXTURES / "encodec" / "no_such_model"))
    m = model("tiny_24k")
    with pytest.raises(ValueError, match="bandwidth of 5"):
        m.encode(np.zeros((1, 1, 1000), np.float32), bandwidth=5.0)
    with pytest.raises(ValueError, match=r"\[batch, channels, length\]"):
        m.encode(np.zeros(1000, np.float32))
    with pytest.raises(ValueError, match="outside the codebook|codebook"):
        m.decode(np.full((1, 1, 2, 5), 10**6, np.int64))
    with pytest.raises(ValueError, match="empty"):
        m.stream_encoder().finish()
    enc = m.stream_encoder()
    enc.push(np.zeros(1000, np.float32))
    enc.finish()
    with pytest.raises(ValueError, match="finished"):
        enc.push(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="block of shape"):
        m.stream_encoder().push(np.zeros((3, 10), np.float32))
    with pytest.raises(ValueError, match='unknown device "tpu"'):
        clvp.EncodecModel.from_pretrained(str(FIXTURES / "encodec" / "tiny_24k"), device="tpu")


def test_one_model_from_many_threads():
    m = model("tiny_24k")
    xs = [clip(24_000, 1, 0.5 + 0.1 * i, seed=i)[None] for i in range(4)]
    want = [m.encode(x, bandwidth=1.8).audio_codes for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = m.encode(xs[i], bandwidth=1.8).audio_codes

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)


def test_fortran_order_and_strided_inputs_read_in_logical_order():
    """rust-numpy's `as_slice` accepts Fortran order; its memory order is not the logical one (a `soundfile`
    clip `[T, C]` transposed to `[1, C, T]` is Fortran-ordered): every array input must give what its C-ordered
    copy gives."""
    m = model("tiny_48k")
    x = clip(m.sampling_rate, 2, 0.3)[None]
    want = m.encode(x, bandwidth=3.6)
    for variant in (np.asfortranarray(x), np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0),
                    np.repeat(x, 2, axis=2)[..., ::2]):
        got = m.encode(variant, bandwidth=3.6)
        np.testing.assert_array_equal(got.audio_codes, want.audio_codes)
    codes_f = np.asfortranarray(want.audio_codes)
    np.testing.assert_array_equal(m.decode(codes_f, want.audio_scales).audio_values,
                                  m.decode(want.audio_codes, want.audio_scales).audio_values)
    fe = clvp.EncodecFeatureExtractor(feature_size=2, sampling_rate=m.sampling_rate)
    np.testing.assert_array_equal(fe(np.asfortranarray(x[0]))["input_values"], fe(x[0])["input_values"])
    speech = clvp.ClvpFeatureExtractor.from_pretrained()
    batch = clip(22_050, 2, 1.0)
    np.testing.assert_array_equal(speech(np.asfortranarray(batch), sampling_rate=22_050)["input_features"],
                                  speech(batch, sampling_rate=22_050)["input_features"])
