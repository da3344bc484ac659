"""Reference checkpoints and outputs of Meta's own `encodec` 0.1.1 package (not transformers) for the Rust loader of
Meta's `.th` checkpoints (`EncodecModel::from_meta_file`, `clvp::Encodec::from_pretrained("x.th")`).

Usage: python ref_meta_encodec.py --out DIR --seed S --encodec SDIST_DIR [--full]
(SDIST_DIR = the extracted encodec 0.1.1 sdist: its package is imported from there, its test wavs are the audio)

Models, built with Meta's own classes exactly as `EncodecModel._get_model` builds them (SEANetEncoder/Decoder,
ResidualVectorQuantizer(bins=1024), EncodecModel(..., name=...)), random weights, saved as Meta saved its released
checkpoints: `torch.save(model.state_dict(), path)` (PyTorch's zip format, keys `encoder.model.0.conv.conv.weight_g`,
`quantizer.vq.layers.0._codebook.embed`, ...):
  tiny_24khz.th        encodec_model_24khz in miniature: mono, causal, weight_norm (legacy `weight_g`/`weight_v`:
                       Meta's `torch.nn.utils.weight_norm`), n_filters 2, dimension 8, target_bandwidths
                       [1.5, 3, 6] (n_q = 8 codebooks of 1024 at 75 Hz). Everything else as released.
  tiny_48khz.th        encodec_model_48khz in miniature: stereo, non-causal, time_group_norm, normalize, 1 s segments
                       with 1 % overlap (stride 47520), n_filters 2, dimension 8, target_bandwidths [3, 6, 12]
                       (n_q = 8 at 150 Hz)
  tiny_param_24khz.th  the 24 kHz miniature built with torch's NEW weight norm
                       (`torch.nn.utils.parametrizations.weight_norm` patched into encodec.modules.conv: keys
                       `....conv.conv.parametrizations.weight.original0/1`), target_bandwidths [1.5, 3] (n_q = 4)
  lm_tiny.th           NOT a codec: Meta's own `LMModel` (the entropy-coding LM of encodec 0.1.1) in miniature
                       (n_q 2, card 16, dim 8, 1 layer), state dict saved the same way: a loader must refuse it
  audiocraft_like.th   NOT a flat state dict: {'best_state': <tiny_24khz's encoder.model.{0,1}.* tensors>, 'xp.cfg':
                       str, 'version': str}, the layout audiocraft saves its checkpoints in: a loader must refuse it
  (the miniatures keep ratios, kernels, LSTM depth, bins and bandwidth ladders of the released models: only the
  widths and the top bandwidth are smaller, so the loader's layout detection and the .ecdc container are the
  released models'; the EMA buffers `cluster_size`/`embed_avg`/`inited` are saved as Meta saves them)

Random init: PyTorch's default initialisers (Meta's classes), then every parameter perturbed with seeded noise
(+0.05 * std * randn, +0.1 * randn for constant tensors, every weight-norm g multiplied by exp(0.25 * randn)). Meta's
codebooks start at zero (`kmeans_init`, filled by k-means on the first training batch): they are seeded from real
residual latents as ref_encodec.py does (the encoder on an excerpt no case uses, 48k normalised per 1 s segment;
codebook n = random frames of the residual after codebooks 0..n-1 + 2 % noise; `inited` = 1), repeated with the next
generator until no frame of any case is a near-tie between two codewords (relative top-2 gap >= MIN_GAP).

Cases (16-bit excerpts of the sdist's test wavs, written as <model>.<case>.wav and read back as int16/32768, which is
also what a Rust reader of the wav gets), for every bandwidth listed:
  tiny_24khz        clip 6500 samples (bw 1.5, 3, 6), short 1000 samples (reflect workaround; bw 1.5, 6),
                    long 13337 samples (bw 3)
  tiny_48khz        clip 7200 stereo samples, one short segment (bw 3, 6, 12); two 48200 samples: segments [0, 48000)
                    and [47520, 48200) (680 samples, 3 frames, inside the overlap) (bw 12)
  tiny_param_24khz  clip 6500 samples (bw 1.5, 3)
Per case and bandwidth, in <model>.cases.safetensors:
  <case>.bw<bw>.codes.<i>   i64 [K, T_i]  `model.encode(wav[None])[i][0][0]` (Meta's segments, unpadded)
  <case>.bw<bw>.scales      f32 [n_seg]   48 kHz: every segment's scale
  <case>.bw<bw>.audio       f32 [C, L]    `encodec.decompress(bytes)[0]` (Meta's decode of its own .ecdc file)
and ecdc/<model>.<case>.bw<bw>.ecdc = `encodec.compress(model, wav, use_lm=False)`; cases.json lists every case
({model, case, file, length, channels, bandwidth, segments: [[offset, length, frames]], ecdc}). `compress` only
takes models named encodec_24khz / encodec_48khz (the miniatures are named so) and `decompress` builds its model
through `encodec.compress.MODELS[name]()` (the pretrained download): that factory is patched to return the
miniature for the call.

With --full: full_24khz.th / full_48khz.th from `EncodecModel.encodec_model_24khz(pretrained=False)` / `_48khz`
(released shapes, ~90 MB each: for local runs, never committed), seeded the same way, with full_24khz.cases /
full_48khz.cases: clip 3 s (24k bw 1.5, 24; 48k bw 3, 24 stereo: segments 48000, 48000, 48000 + tail).

Environment: the pinned reference env lacks einops and torchaudio. einops is replaced by a small module that
implements exactly the patterns encodec 0.1.1's inference path uses (transposes and flattening; anything else
raises); torchaudio (used only by `convert_audio`/`save_audio`) by a stub that raises if used.
"""

import argparse
import json
import math
import os
import sys
import types
import warnings

import numpy as np
import soundfile as sf
import torch
from ref_common import save_st

warnings.filterwarnings("ignore")

MIN_GAP = 1e-5
MAX_ATTEMPTS = 300




# ------------------------------------------------------------------------------------------------ encodec import


def _einops_module():
    """einops.rearrange / repeat for the patterns encodec 0.1.1 runs at inference (and only those)."""

    def rearrange(x, pattern, **kw):
        p = " ".join(pattern.split())
        if p == "... d -> (...) d":
            return x.reshape(-1, x.shape[-1])
        if p in ("b d n -> b n d", "b n d -> b d n"):
            return x.transpose(1, 2)
        if p == "n d -> n () d":
            return x[:, None, :]
        if p == "c d -> () c d":
            return x[None]
        raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")

    def repeat(x, pattern, **kw):
        if " ".join(pattern.split()) == "n -> n d":
            return x[:, None].expand(-1, kw["d"])
        raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")

    mod = types.ModuleType("einops")
    mod.rearrange = rearrange
    mod.repeat = repeat
    return mod


def import_encodec(sdist):
    """The sdist's encodec package with the einops stand-in and a torchaudio stub."""

    def unavailable(*_a, **_k):
        raise RuntimeError("stub: torchaudio is not available in the reference environment")

    added = []
    for name, mod in (("einops", _einops_module()), ("torchaudio", None)):
        try:
            __import__(name)
        except ImportError:
            if mod is None:
                mod = types.ModuleType(name)
                mod.__getattr__ = lambda attr: unavailable
            sys.modules[name] = mod
            added.append(name)
    sys.path.insert(0, sdist)
    try:
        import encodec  # noqa: F401
        import encodec.compress
        import encodec.model
        import encodec.modules
        import encodec.modules.conv
        import encodec.quantization
    finally:
        sys.path.remove(sdist)
        for name in added:
            del sys.modules[name]
    assert os.path.dirname(os.path.dirname(encodec.__file__)) == os.path.abspath(sdist)
    return sys.modules["encodec"]


# ------------------------------------------------------------------------------------------------ models

SPECS = {
    # name: (released factory's settings, n_filters, dimension, target_bandwidths, new weight norm)
    "tiny_24khz": ("encodec_24khz", 2, 8, [1.5, 3.0], False),
    "tiny_48khz": ("encodec_48khz", 2, 8, [3.0, 6.0], False),
    "tiny_param_24khz": ("encodec_24khz", 2, 8, [1.5], True),
}

RELEASED = {
    # as EncodecModel.encodec_model_24khz / _48khz call _get_model
    "encodec_24khz": dict(sample_rate=24000, channels=1, causal=True, model_norm="weight_norm",
                          audio_normalize=False, segment=None),
    "encodec_48khz": dict(sample_rate=48000, channels=2, causal=False, model_norm="time_group_norm",
                          audio_normalize=True, segment=1.0),
}


def build(enc, released, n_filters, dimension, bandwidths, new_weight_norm):
    """`EncodecModel._get_model` with n_filters / dimension passed to SEANet (everything else as released)."""
    m, qt, EncodecModel = enc.modules, enc.quantization, enc.model.EncodecModel
    r = RELEASED[released]
    conv = enc.modules.conv
    saved = conv.weight_norm
    if new_weight_norm:
        conv.weight_norm = torch.nn.utils.parametrizations.weight_norm
    try:
        encoder = m.SEANetEncoder(channels=r["channels"], norm=r["model_norm"], causal=r["causal"],
                                  n_filters=n_filters, dimension=dimension)
        decoder = m.SEANetDecoder(channels=r["channels"], norm=r["model_norm"], causal=r["causal"],
                                  n_filters=n_filters, dimension=dimension)
    finally:
        conv.weight_norm = saved
    n_q = int(1000 * bandwidths[-1] // (math.ceil(r["sample_rate"] / encoder.hop_length) * 10))
    quantizer = qt.ResidualVectorQuantizer(dimension=encoder.dimension, n_q=n_q, bins=1024)
    model = EncodecModel(encoder, decoder, quantizer, bandwidths, r["sample_rate"], r["channels"],
                         normalize=r["audio_normalize"], segment=r["segment"], name=released)
    return model.eval()


def perturb(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("weight_g") or name.endswith("original0"):
                p.mul_(torch.exp(0.25 * noise))
                continue
            std = float(p.std()) if p.numel() > 1 else 0.0
            p.add_(0.05 * std * noise if std > 1e-8 else 0.1 * noise)


def rescale_encoder(model, x):
    """Layer by layer in forward order, scale each encoder conv's weight (its weight-norm g) and bias so that its
    output has unit standard deviation on x (1, C, L) (LSUV-style). PyTorch's default conv init shrinks activations
    by about 3x a layer, so a random-init weight-norm encoder's latent is its last bias plus ~1e-3 of signal: every
    frame would be a near-tie between codewords. (GroupNorm models are left at unit scale by their norms.)"""
    convs = [m for m in model.encoder.modules() if type(m).__name__ == "NormConv1d"]
    for nc in convs:
        seen = []
        hook = nc.register_forward_hook(lambda _m, _i, out: seen.append(out))
        model.encoder(x)
        hook.remove()
        std = float(seen[0].std())
        conv = nc.conv
        names = dict(conv.named_parameters())
        g = next((names[k] for k in ("weight_g", "parametrizations.weight.original0", "weight") if k in names))
        g.div_(std)
        conv.bias.div_(std)


def segments(model, length):
    """Meta's segmentation in `EncodecModel.encode`: (offset, length) of every segment."""
    seg = model.segment_length or length
    stride = model.segment_stride or length
    return [(off, min(seg, length - off)) for off in range(0, length, stride)]


def normalised(model, frame):
    """`_encode_frame`'s normalisation."""
    if not model.normalize:
        return frame
    mono = frame.mean(dim=1, keepdim=True)
    return frame / (1e-8 + mono.pow(2).mean(dim=2, keepdim=True).sqrt())


def latent_frames(model, x, whole_only=False):
    """Every latent frame (N, D) Meta's encode quantizes for x (1, C, L)."""
    out = []
    for off, n in segments(model, x.shape[-1]):
        if whole_only and model.segment_length and n < model.segment_length:
            continue
        lat = model.encoder(normalised(model, x[..., off:off + n]))
        out.append(lat[0].t())
    return torch.cat(out, dim=0)


def seed_codebooks(model, residual, gen):
    """Codebook n := random frames of the residual after codebooks 0..n-1 (+ 2 % noise), drawn from the frames whose
    residual is not ~0 (the frames an earlier codebook was seeded from): 1024 codewords need a pool several times as
    large, or later codebooks fill up with near-identical codewords near 0 and every frame is a near-tie."""
    for layer in model.quantizer.vq.layers:
        cb = layer._codebook
        k = cb.embed.shape[0]
        norms = residual.norm(dim=1)
        pool = torch.nonzero(norms >= 0.1 * norms.median()).flatten()
        assert pool.numel() >= k, (pool.numel(), k)
        idx = pool[torch.randperm(pool.numel(), generator=gen)[:k]]
        embed = residual[idx] + 0.02 * float(residual.std()) * torch.randn((k, residual.shape[1]), generator=gen)
        cb.embed.copy_(embed)
        cb.inited.fill_(1.0)
        counts = 1.0 + torch.rand(k, generator=gen)
        cb.cluster_size.copy_(counts)
        cb.embed_avg.copy_(embed * counts[:, None])
        residual = residual - embed[cb.quantize(residual)]


def min_gap(model, frames):
    """Smallest relative top-2 gap of Meta's distance over frames (N, D) and every codebook."""
    residual, worst = frames, float("inf")
    for layer in model.quantizer.vq.layers:
        e = layer._codebook.embed
        dist = -(residual.pow(2).sum(1, keepdim=True) - 2 * residual @ e.t() + e.pow(2).sum(1)[None])
        top = dist.topk(2, dim=-1).values
        best = e[dist.argmax(-1)]
        gap = (top[:, 0] - top[:, 1]) / (residual.pow(2).sum(1) + best.pow(2).sum(1) + 1e-30)
        worst = min(worst, float(gap.min()))
        residual = residual - best
    return worst


# ------------------------------------------------------------------------------------------------ audio and cases


def excerpt(sdist, file, start_s, n):
    """int16 excerpt (C, n) of a test wav."""
    x, sr = sf.read(os.path.join(sdist, file), dtype="int16", always_2d=True)
    start = int(round(start_s * sr))
    assert start + n <= x.shape[0]
    return np.ascontiguousarray(x[start:start + n].T)


TINY_CASES = {
    "tiny_24khz": {
        "seed": ("test_24k.wav", 4.0, 360000),
        "cases": [("clip", ("test_24k.wav", 1.0, 6500), [1.5, 3.0]),
                  ("short", ("test_24k.wav", 2.5, 1000), [1.5, 3.0]),
                  ("long", ("test_24k.wav", 3.0, 13337), [3.0])],
    },
    "tiny_48khz": {
        "seed": ("test_48k.wav", 5.0, 432000),
        "cases": [("clip", ("test_48k.wav", 1.0, 7200), [3.0, 6.0]),
                  ("two", ("test_48k.wav", 2.0, 48200), [6.0])],
    },
    "tiny_param_24khz": {
        "seed": ("test_24k.wav", 4.5, 360000),
        "cases": [("clip", ("test_24k.wav", 0.5, 6500), [1.5])],
    },
}

FULL_CASES = {
    "full_24khz": ("encodec_24khz", {"seed": ("test_24k.wav", 4.0, 360000),
                                     "cases": [("clip", ("test_24k.wav", 1.0, 72000), [1.5, 24.0])]}),
    "full_48khz": ("encodec_48khz", {"seed": ("test_48k.wav", 5.0, 432000),
                                     "cases": [("clip", ("test_48k.wav", 1.0, 144000), [3.0, 24.0])]}),
}


def bw_key(bw):
    return f"bw{float(bw)}"


def make(enc, name, model, spec, out, seed, sdist):
    torch.manual_seed(seed)
    perturb(model, torch.Generator().manual_seed(seed))
    compress = sys.modules["encodec.compress"]
    inputs = {}
    for case, (file, start, n), _ in spec["cases"]:
        pcm = excerpt(sdist, file, start, n)
        inputs[case] = pcm
        sf.write(os.path.join(out, f"{name}.{case}.wav"), pcm.T, model.sample_rate, subtype="PCM_16")
    to_float = lambda pcm: torch.from_numpy(pcm.astype(np.float32) / 32768.0)  # noqa: E731
    with torch.no_grad():
        seed_audio = to_float(excerpt(sdist, *spec["seed"]))[None]
        rescale_encoder(model, seed_audio[..., :model.sample_rate])
        # 8 phases of the hop: 8x as many distinct frames as the excerpt has
        hop = int(np.prod(model.encoder.ratios))
        seeding = torch.cat([latent_frames(model, seed_audio[..., s:], whole_only=True)
                             for s in range(0, hop, hop // 8)], dim=0)
        case_frames = torch.cat([latent_frames(model, to_float(p)[None]) for p in inputs.values()], dim=0)
        for attempt in range(MAX_ATTEMPTS):
            seed_codebooks(model, seeding, torch.Generator().manual_seed(seed * 100003 + attempt))
            gap = min_gap(model, case_frames)
            if gap >= MIN_GAP or name.startswith("full"):
                break
        else:
            raise RuntimeError(f"{name}: no codebook seeding without near-ties in {MAX_ATTEMPTS} attempts")

    torch.save(model.state_dict(), os.path.join(out, f"{name}.th"))

    tensors, listing = {}, []
    ecdc_dir = os.path.join(out, "ecdc")
    os.makedirs(ecdc_dir, exist_ok=True)
    for case, _, bws in spec["cases"]:
        wav = to_float(inputs[case])
        for bw in bws:
            model.set_target_bandwidth(bw)
            key = f"{case}.{bw_key(bw)}"
            with torch.no_grad():
                frames = model.encode(wav[None])
            for i, (codes, _) in enumerate(frames):
                tensors[f"{key}.codes.{i}"] = codes[0].to(torch.int64).contiguous()
            if model.normalize:
                tensors[f"{key}.scales"] = torch.cat([s.reshape(1) for _, s in frames]).contiguous()
            data = compress.compress(model, wav, use_lm=False)
            ecdc = f"{name}.{case}.{bw_key(bw)}.ecdc"
            with open(os.path.join(ecdc_dir, ecdc), "wb") as f:
                f.write(data)
            saved = compress.MODELS[model.name]
            compress.MODELS[model.name] = lambda: model
            try:
                audio, sr = compress.decompress(data)
            finally:
                compress.MODELS[model.name] = saved
            assert sr == model.sample_rate and audio.shape == wav.shape, (audio.shape, wav.shape)
            tensors[f"{key}.audio"] = audio.contiguous()
            listing.append({
                "model": name, "case": case, "wav": f"{name}.{case}.wav", "length": int(wav.shape[-1]),
                "channels": int(wav.shape[0]), "bandwidth": float(bw),
                "segments": [[o, n_, int(codes.shape[-1])]
                             for (o, n_), (codes, _) in zip(segments(model, wav.shape[-1]), frames)],
                "ecdc": f"ecdc/{ecdc}",
            })
    meta = {"generator": "xtask/python/ref_meta_encodec.py", "seed": str(seed), "torch": torch.__version__,
            "min_gap": f"{gap:.3e}", "codebook_attempt": str(attempt)}
    save_st(tensors, os.path.join(out, f"{name}.cases.safetensors"), meta)
    n_weights = sum(t.numel() for t in model.state_dict().values())
    print(f"meta encodec {name}: {n_weights} values in the state dict, codebook attempt {attempt}, "
          f"min gap {gap:.3e}, {len(listing)} case x bandwidth")
    return listing


def make_refusals(enc, out, seed, tiny_state):
    """Checkpoints a codec loader must refuse: Meta's LM, and an audiocraft-style nested checkpoint."""
    torch.manual_seed(seed + 77)
    lm = enc.model.LMModel(n_q=2, card=16, dim=8, num_layers=1, num_heads=2, past_context=10)
    torch.save(lm.state_dict(), os.path.join(out, "lm_tiny.th"))
    # the first two encoder layers are enough to show the nesting (and keep the file small)
    head = {k: v for k, v in tiny_state.items() if k.startswith(("encoder.model.0.", "encoder.model.1."))}
    nested = {"best_state": head, "xp.cfg": "sample_rate: 24000\nchannels: 1\n", "version": "1.0"}
    torch.save(nested, os.path.join(out, "audiocraft_like.th"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encodec", required=True)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    sdist = os.path.abspath(args.encodec)
    enc = import_encodec(sdist)

    listing = []
    for i, (name, (released, nf, dim, bws, new_wn)) in enumerate(SPECS.items()):
        torch.manual_seed(args.seed + i)
        model = build(enc, released, nf, dim, bws, new_wn)
        listing += make(enc, name, model, TINY_CASES[name], args.out, args.seed + i, sdist)
        if name == "tiny_24khz":
            tiny_state = model.state_dict()
    make_refusals(enc, args.out, args.seed, tiny_state)
    if args.full:
        factories = {"encodec_24khz": enc.model.EncodecModel.encodec_model_24khz,
                     "encodec_48khz": enc.model.EncodecModel.encodec_model_48khz}
        for j, (name, (released, spec)) in enumerate(FULL_CASES.items()):
            torch.manual_seed(args.seed + 10 + j)
            model = factories[released](pretrained=False)
            model.name = released
            listing += make(enc, name, model, spec, args.out, args.seed + 10 + j, sdist)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
