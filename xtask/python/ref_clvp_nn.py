"""Reference outputs of the transformers 5.23 CLVP networks for the Rust `clvp-nn` crate.

Writes into <out>:
  tiny/                      a complete random-init checkpoint saved by `save_pretrained` (config.json,
                             model.safetensors, generation_config.json) plus the tokenizer files and the
                             preprocessor_config.json, i.e. the hub's layout of `susnato/clvp_dev` in miniature
  tiny.cases.safetensors     inputs and expected outputs, keyed `<case>.<tensor>` (see CASES below)
  full/, full.cases.safetensors   the same for the real-size config (only with --full; ~665 M parameters)

Random init: HF's initialiser, then every parameter is perturbed by seeded noise so that LayerNorm/RMSNorm
weights are not all ones and biases not all zeros (a swapped weight/bias or a missed norm cannot hide).

Cases (all float32, CPU):
  text_single     text encoder on one unpadded text            -> embeds, last_hidden_state, pooler_output
  text_batch      text encoder on two texts with right padding + attention_mask
  speech_codes    speech encoder on random codes (no mask)
  cond_single     conditioning encoder, 1 clip x 1 text
  cond_broadcast  conditioning encoder, 1 clip x 2 padded texts (mel vector repeated)
  cond_pairs      conditioning encoder, 2 clips x 2 padded texts
  decoder_ids     ClvpForCausalLM on speech ids [2, 9]: logits of the full sequence, and the same sequence fed
                  with a KV cache (prefill 5, then one token per step): logits per step
  decoder_embeds  ClvpForCausalLM(inputs_embeds=conditioning) — the forward() path: logits
  gen_hf523       ClvpModelForConditionalGeneration.generate (5.23 as is: prefill positions [[0]] broadcast),
                  greedy, 2 texts x 2 clips, max_new_tokens GEN_STEPS: per-step logits of the decoder's generate
                  (`output_logits`), raw sequences, fixed speech_ids, text/speech embeds, logits_per_text
  gen_tortoise    the same conditioning decoded greedily by feeding the decoder explicit positions (prefix
                  unchanged, start token at mel position 0, g_k at k+1): per-step logits and sequences
  e2e_*           (tiny) "Hello world, this is a test." + fixtures/audio/speech_mid.wav through the tokenizer, the
                  feature extractor and generate (greedy, both prefill modes): speech_ids and logits_per_text
  gen_beam        (tiny and full) beam search through ClvpModelForConditionalGeneration.generate: the gen texts x the first
                  clip (broadcast), num_beams 3, num_return_sequences 2, length_penalty 1.0, early_stopping False,
                  max_new_tokens BEAM_STEPS: per-step raw logits of the running beams, raw sequences, sequences_scores,
                  fixed speech_ids, text/speech embeds, logits_per_text; pad_* the same with pad_to_max_mel_tokens 16
  gen_beam4       (tiny and full) the gen texts x both clips, 4 beams, 4 return sequences, length_penalty 1.3,
                  early_stopping True (stops before max_new_tokens); pad_* with pad_to_max_mel_tokens 8 (a crop)
  gen_beam_never  (tiny and full) both clips, 3 beams, 3 return sequences, length_penalty 0.7, early_stopping "never",
                  repetition_penalty 1.3, min_new_tokens 2 (the heuristic ends the loop before max_new_tokens)
  e2e_beam        (tiny) the e2e text and clip, 3 beams, 2 return sequences, max_new_tokens GEN_STEPS: speech_ids and
                  logits_per_text, and pad_* the same with pad_to_max_mel_tokens 16
  forward*        (tiny) ClvpModelForConditionalGeneration.forward on the gen inputs (2 padded texts x 2 clips, and
                  1 text x 2 clips): fixed argmax speech_ids, logits_per_text/_speech, normalised embeds, pooled
                  outputs
  speech_features_gen  (tiny) get_speech_features' generate path from its pieces (it fails in 5.23)
  procs.*         (tiny) HF's logits processors, each alone and as `_get_logits_processor`'s chain for Tortoise's
                  sampling settings, on seeded logits with ties, a peaked and a flat row (own generator)
  torch_order.*   (tiny) torch.topk and torch.sort on CPU over values with many exact ties: the order of equal
                  values that beam search's survivors and the top-p cut depend on (own generator)
  The beam, forward and processor cases run last and consume no random numbers of the shared generators, so the
  keys before them do not depend on them.
The tiny checkpoint's lm_head bias of the stop token is raised (searched deterministically) so that greedy
decoding stops mid-sequence in one row and not in the other, exercising fix_speech_decoder_output.
Its generation_config.json carries the decoder's special ids (start, stop = pad) and return_dict_in_generate.
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    ClvpConfig,
    ClvpDecoderConfig,
    ClvpEncoderConfig,
    ClvpFeatureExtractor,
    ClvpModelForConditionalGeneration,
    ClvpTokenizer,
)
from transformers import GenerationConfig
from transformers.cache_utils import DynamicCache
from transformers.models.clvp.modeling_clvp import _pad_extra_bos_eos_tokens

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def tiny_config():
    enc = dict(hidden_size=64, intermediate_size=96, projection_dim=32, num_hidden_layers=2, num_attention_heads=2,
               bos_token_id=255, eos_token_id=0)
    text = ClvpEncoderConfig(vocab_size=256, **enc)
    speech = ClvpEncoderConfig(vocab_size=260, **enc)
    # decoder vocab 260 = 258 codes + start 258 + stop 259; fixing codes (83, 45, 45, 248) stay in range.
    dec = ClvpDecoderConfig(vocab_size=260, max_position_embeddings=48, max_text_tokens=40, hidden_size=64,
                            num_hidden_layers=2, num_attention_heads=2, num_mel_attn_blocks=2,
                            bos_token_id=258, eos_token_id=259)
    return ClvpConfig(text_config=text.to_dict(), speech_config=speech.to_dict(), decoder_config=dec.to_dict(),
                      projection_dim=32)


def full_config():
    text = ClvpEncoderConfig()
    speech = ClvpEncoderConfig(vocab_size=8194)
    dec = ClvpDecoderConfig()
    return ClvpConfig(text_config=text.to_dict(), speech_config=speech.to_dict(), decoder_config=dec.to_dict())


def perturb(model, gen):
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


def save_checkpoint(model, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    # Tokenizer and preprocessor files as the hub has them (merges.txt with its #version header).
    assets = os.path.join(ROOT, "crates", "clvp-text", "assets")
    tok = ClvpTokenizer(os.path.join(assets, "vocab.json"), os.path.join(assets, "merges.txt"))
    tok.save_pretrained(out_dir)
    shutil.copy(os.path.join(assets, "merges.txt"), os.path.join(out_dir, "merges.txt"))
    with open(os.path.join(ROOT, "crates", "clvp-audio", "assets", "mel_norms.json")) as f:
        mel_norms = json.load(f)["mel_norms"]
    ClvpFeatureExtractor(mel_norms=mel_norms).save_pretrained(out_dir)
    return tok


def run_cases(model, tok, gen, n_frames):
    cfg = model.config
    t = {}

    texts = ["Hello world, this is a test.", "Hi."]
    single = torch.tensor([tok(texts[0])["input_ids"]])
    enc = tok(texts, padding=True, return_tensors="pt")
    ids2, mask2 = enc["input_ids"], enc["attention_mask"]
    t["inputs.text_single_ids"] = single
    t["inputs.text_batch_ids"] = ids2
    t["inputs.text_batch_mask"] = mask2

    def encoder_case(name, module, ids, mask=None):
        out = module(input_ids=ids, attention_mask=mask)
        t[f"{name}.embeds"] = out.embeds
        t[f"{name}.last_hidden_state"] = out.last_hidden_state
        t[f"{name}.pooler_output"] = out.pooler_output

    encoder_case("text_single", model.text_encoder_model, single)
    encoder_case("text_batch", model.text_encoder_model, ids2, mask2)
    codes = torch.randint(0, cfg.speech_config.vocab_size, (3, 17), generator=gen)
    t["inputs.speech_codes"] = codes
    encoder_case("speech_codes", model.speech_encoder_model, codes)

    feats = (1.0 + 0.5 * torch.randn((2, cfg.decoder_config.feature_size, n_frames), generator=gen)).float()
    t["inputs.features"] = feats
    ce = model.conditioning_encoder
    t["cond_single.out"] = ce(feats[:1], single)
    t["cond_broadcast.out"] = ce(feats[:1], ids2, attention_mask=mask2)
    t["cond_pairs.out"] = ce(feats, ids2, attention_mask=mask2)

    lm = model.speech_decoder_model
    dvocab = cfg.decoder_config.vocab_size
    sids = torch.randint(0, dvocab, (2, 9), generator=gen)
    t["inputs.decoder_ids"] = sids
    t["decoder_ids.logits"] = lm(input_ids=sids).logits
    cache = DynamicCache(config=cfg.decoder_config)
    steps = [lm(input_ids=sids[:, :5], past_key_values=cache, use_cache=True).logits]
    for i in range(5, sids.shape[1]):
        steps.append(lm(input_ids=sids[:, i:i + 1], past_key_values=cache, use_cache=True).logits)
    t["decoder_ids.cached_logits"] = torch.cat(steps, dim=1)

    t["decoder_embeds.logits"] = lm(inputs_embeds=t["cond_pairs.out"]).logits
    return {k: v.detach().contiguous() for k, v in t.items()}


GEN_STEPS = 12


def gen_inputs(model, tok, gen, n_frames):
    texts = ["Hello world, this is a test.", "Hi."]
    enc = tok(texts, padding=True, return_tensors="pt")
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    feats = (1.0 + 0.5 * torch.randn((2, model.config.decoder_config.feature_size, n_frames), generator=g)).float()
    return enc["input_ids"], enc["attention_mask"], feats


def hf_decoder_generate(model, ids, mask, feats):
    """What ClvpModelForConditionalGeneration.generate does, with the decoder's per-step logits kept."""
    tc = model.config.text_config
    ids1, mask1 = _pad_extra_bos_eos_tokens(ids, mask, add_bos_token=False, bos_token_id=tc.bos_token_id,
                                            eos_token_id=tc.eos_token_id)
    cond = model.conditioning_encoder(input_features=feats, input_ids=ids1, attention_mask=mask1)
    out = model.speech_decoder_model.generate(conditioning_embeds=cond, generation_config=model.generation_config,
                                              max_new_tokens=GEN_STEPS, do_sample=False, output_logits=True)
    return cond, out


def tortoise_greedy(model, cond):
    """Greedy decoding with explicit positions: the conditioning unchanged, start at 0, g_k at k + 1."""
    lm = model.speech_decoder_model
    dec = lm.model.decoder
    dcfg = model.config.decoder_config
    n, length, _ = cond.shape
    start = dec.input_embeds_layer(torch.full((n, 1), dcfg.bos_token_id)) + dec.position_embeds_layer(
        torch.zeros((n, 1), dtype=torch.long))
    prefix = torch.cat([cond, start], dim=1)
    pos = torch.arange(length + 1).unsqueeze(0)
    cache = DynamicCache(config=dcfg)
    # The decoder adds P[pos]; pre-subtract it so the prefix enters unchanged.
    out = lm(inputs_embeds=prefix - dec.position_embeds_layer(pos), position_ids=pos, past_key_values=cache,
             use_cache=True)
    seqs = torch.full((n, 1), dcfg.bos_token_id)
    finished = torch.zeros(n, dtype=torch.bool)
    logits = []
    for k in range(1, GEN_STEPS + 1):
        step = out.logits[:, -1, :]
        logits.append(step)
        tok = step.argmax(-1)
        tok = torch.where(finished, torch.full_like(tok, dcfg.eos_token_id), tok)
        seqs = torch.cat([seqs, tok[:, None]], dim=1)
        finished |= tok == dcfg.eos_token_id
        if finished.all() or k == GEN_STEPS:
            break
        out = lm(input_ids=tok[:, None], position_ids=torch.tensor([[k + 1]]), past_key_values=cache, use_cache=True)
    return seqs, torch.stack(logits, dim=1)


def _stop_steps(out, eos):
    """First stop index of each generated row (None when the row never stops)."""
    firsts = []
    for r in out.sequences[:, 1:]:
        s = (r == eos).nonzero()
        firsts.append(int(s[0]) if len(s) else None)
    return firsts


def _one_mid_stop(firsts):
    """Exactly one row stops mid-sequence and the other runs to the end."""
    mid = [f is not None and 2 <= f <= GEN_STEPS - 4 for f in firsts]
    return sum(mid) == 1 and sum(f is None for f in firsts) == 1


# Far enough below every logit of the random-init models that the stop token is never the argmax.
_NEVER_STOP = -1.0e3


def _stop_thresholds(model, tok, state, n_frames, base, eos):
    """Bias offsets at which each row's stop token first becomes the greedy argmax, per step, and lm_head's inputs.

    With lm_head.bias[stop] = base + delta, greedy decoding of row r is the same as with the stop token suppressed
    until the first step k with delta > thr[r][k]: the bias moves only the stop token's logit, so nothing before
    that step can differ. One generation with the stop token suppressed gives every threshold, and lm_head's input
    vectors h [2, steps, hidden] of that generation (for `_stop_by_weights`)."""
    lm = model.speech_decoder_model
    lm.lm_head.bias[eos] = base + _NEVER_STOP
    seen = []
    hook = lm.lm_head.register_forward_pre_hook(lambda _m, args: seen.append(args[0][:, -1, :].double()))
    try:
        ids, mask, feats = gen_inputs(model, tok, torch.Generator().manual_seed(state), n_frames)
        _, out = hf_decoder_generate(model, ids, mask, feats)
    finally:
        hook.remove()
    logits = torch.stack(out.logits, dim=1).double()  # [2, steps, V]
    if logits.shape[1] != GEN_STEPS or len(seen) != GEN_STEPS or any(f is not None for f in _stop_steps(out, eos)):
        return None, None
    other = logits.clone()
    other[:, :, eos] = -float("inf")
    margin = other.max(dim=-1).values - logits[:, :, eos]  # [2, steps]
    return (margin + _NEVER_STOP).tolist(), torch.stack(seen, dim=1)


def _delta_candidates(thr):
    """Offsets for which exactly one row stops at a step in [2, GEN_STEPS - 4] and the other never stops.

    Row a stops first at step k iff delta lies in (thr[a][k], min(thr[a][:k])]; row b never stops iff
    delta < min(thr[b]). Returns the open intervals, each with its smallest multiple of 0.25 >= 0 (the grid the
    earlier search walked, so that seeds it served keep their fixtures) and its midpoint."""
    grid, mids = [], []
    for a in (0, 1):
        never_b = min(thr[1 - a])
        for k in range(2, GEN_STEPS - 3):
            lo = thr[a][k]
            hi = min([never_b] + thr[a][:k])
            if hi - lo < 1e-4:
                continue
            g = max(0.0, 0.25 * math.ceil(lo / 0.25))
            while g <= lo:
                g += 0.25
            if g < hi and g < 0.25 * 200:
                grid.append(g)
            mids.append(0.5 * (lo + hi))
    return sorted(grid), mids


def _stops_one_mid(model, tok, state, n_frames, eos):
    ids, mask, feats = gen_inputs(model, tok, torch.Generator().manual_seed(state), n_frames)
    _, out = hf_decoder_generate(model, ids, mask, feats)
    return _one_mid_stop(_stop_steps(out, eos))


# How far the constructed stop logit sits above (at the stop step) or below (elsewhere) the best other logit.
_STOP_GAP = 0.5


def _stop_by_weights(model, tok, state, n_frames, base, eos, thr, h):
    """Where no bias alone works (a row's stop logit is closest to winning at its first step, as for many seeds),
    construct the stop directly: change lm_head's stop row (weight and bias) so that at every step before the
    chosen one the stop logit is _STOP_GAP below the best other logit, and _STOP_GAP above it at the chosen step.

    Until its first stop a row's greedy path is the stop-suppressed one, so with x = [Δw, Δb] the stop logit moves
    by h·Δw + Δb: one linear equation per constrained step (at most 2 · GEN_STEPS of them) in hidden + 1 unknowns,
    solved exactly by least norm. Every (row, step) choice is tried, smallest change first; each is confirmed by
    a real generation, and the weights are restored when none works."""
    lm = model.speech_decoder_model
    w0 = lm.lm_head.weight[eos].clone()
    hb = torch.cat([h, torch.ones(*h.shape[:2], 1, dtype=h.dtype)], dim=-1)  # [2, steps, hidden + 1]
    margin = torch.tensor(thr, dtype=torch.float64)  # stop-logit rise needed to win, per row and step
    plans = []
    for a in (0, 1):
        for k in range(2, GEN_STEPS - 3):
            rows = [hb[a, :k + 1], hb[1 - a]]
            want = [margin[a, :k] - _STOP_GAP, margin[a, k:k + 1] + _STOP_GAP, margin[1 - a] - _STOP_GAP]
            x = torch.linalg.lstsq(torch.cat(rows), torch.cat(want).unsqueeze(1)).solution.squeeze(1)
            plans.append((float(x.norm()), x))
    for _, x in sorted(plans, key=lambda p: p[0]):
        lm.lm_head.weight[eos] = w0 + x[:-1].float()
        lm.lm_head.bias[eos] = base + float(x[-1])
        if _stops_one_mid(model, tok, state, n_frames, eos):
            return True
    lm.lm_head.weight[eos] = w0
    return False


def bias_stop_token(model, tok, gen_state, n_frames):
    """Set lm_head.bias[stop] so that greedy 5.23 generation stops mid-sequence in exactly one of the two rows.

    The offset is constructed, not searched for: one generation with the stop token suppressed gives, per row and
    step, the bias at which the stop token becomes the argmax (`_stop_thresholds`), and from those the intervals
    that stop one row mid-sequence and never the other (`_delta_candidates`). Each candidate is confirmed by a real
    generation. The generation inputs come from `gen_state`; the smallest non-negative multiple of 0.25 that works
    is preferred (what the earlier grid search found, so the committed seed-0 fixtures keep their inputs), then
    the intervals' midpoints. Where no bias alone can do it (for many seeds a row's stop logit is nearest to
    winning at the first step, so any bias that stops a row stops it there), lm_head's stop row is constructed
    instead (`_stop_by_weights`). The next input seeds are only a last resort (seeds 100-400 all work on the
    first). Returns the input seed that worked."""
    eos = model.config.decoder_config.eos_token_id
    base = model.speech_decoder_model.lm_head.bias[eos].item()
    for attempt in range(64):
        state = gen_state + attempt
        thr, h = _stop_thresholds(model, tok, state, n_frames, base, eos)
        if thr is None:
            continue
        grid, mids = _delta_candidates(thr)
        for delta in grid + mids:
            model.speech_decoder_model.lm_head.bias[eos] = base + delta
            if _stops_one_mid(model, tok, state, n_frames, eos):
                return state
        if _stop_by_weights(model, tok, state, n_frames, base, eos, thr, h):
            return state
    raise SystemExit("no lm_head.bias[stop] stops exactly one row mid-sequence for 64 input seeds")


def gen_cases(model, tok, gen, n_frames):
    t = {}
    ids, mask, feats = gen_inputs(model, tok, gen, n_frames)
    t["gen.input_ids"], t["gen.attention_mask"], t["gen.features"] = ids, mask, feats
    cond, out = hf_decoder_generate(model, ids, mask, feats)
    t["gen_hf523.sequences"] = out.sequences
    t["gen_hf523.logits"] = torch.stack(out.logits, dim=1)
    full = model.generate(input_ids=ids, input_features=feats, attention_mask=mask, max_new_tokens=GEN_STEPS,
                          do_sample=False)
    assert torch.equal(full.speech_ids, model.fix_speech_decoder_output(out.sequences))
    t["gen_hf523.speech_ids"] = full.speech_ids
    t["gen_hf523.logits_per_text"] = full.logits_per_text
    t["gen_hf523.text_embeds"] = full.text_embeds
    t["gen_hf523.speech_embeds"] = full.speech_embeds
    seqs, logits = tortoise_greedy(model, cond)
    t["gen_tortoise.sequences"] = seqs
    t["gen_tortoise.logits"] = logits
    t["gen_tortoise.speech_ids"] = model.fix_speech_decoder_output(seqs)
    return t


E2E_TEXT = "Hello world, this is a test."
E2E_VOICE = os.path.join(ROOT, "fixtures", "audio", "speech_mid.wav")


def e2e_cases(model, tok):
    """End to end as a user runs it: the tokenizer, the extractor on a real clip, generate, the similarity."""
    import soundfile as sf

    with open(os.path.join(ROOT, "crates", "clvp-audio", "assets", "mel_norms.json")) as f:
        fe = ClvpFeatureExtractor(mel_norms=json.load(f)["mel_norms"])
    clip, sr = sf.read(E2E_VOICE, dtype="float32")
    feats = torch.from_numpy(fe(clip, sampling_rate=sr, return_tensors="np")["input_features"])
    ids = torch.tensor([tok(E2E_TEXT)["input_ids"]])
    t = {}
    full = model.generate(input_ids=ids, input_features=feats, max_new_tokens=GEN_STEPS, do_sample=False)
    t["e2e_hf523.speech_ids"] = full.speech_ids
    t["e2e_hf523.logits_per_text"] = full.logits_per_text
    tc = model.config.text_config
    ids1, mask1 = _pad_extra_bos_eos_tokens(ids, None, add_bos_token=False, bos_token_id=tc.bos_token_id,
                                            eos_token_id=tc.eos_token_id)
    cond = model.conditioning_encoder(input_features=feats, input_ids=ids1, attention_mask=mask1)
    seqs, _ = tortoise_greedy(model, cond)
    codes = model.fix_speech_decoder_output(seqs)
    s = model.speech_encoder_model(input_ids=codes).embeds
    x = model.text_encoder_model(input_ids=ids1).embeds
    s, x = s / s.norm(dim=-1, keepdim=True), x / x.norm(dim=-1, keepdim=True)
    t["e2e_tortoise.speech_ids"] = codes
    t["e2e_tortoise.logits_per_text"] = x @ s.t() * model.logit_scale.exp()
    return t


BEAM_CASES = {
    # name: (clips, max_new_tokens, decoding kwargs, pad_to_max_mel_tokens)
    "gen_beam": (slice(0, 1), 10, dict(num_beams=3, num_return_sequences=2, length_penalty=1.0,
                                       early_stopping=False), 16),
    "gen_beam4": (slice(0, 2), 12, dict(num_beams=4, num_return_sequences=4, length_penalty=1.3,
                                        early_stopping=True), 8),
    "gen_beam_never": (slice(0, 2), 16, dict(num_beams=3, num_return_sequences=3, length_penalty=0.7,
                                             early_stopping="never", repetition_penalty=1.3, min_new_tokens=2), None),
}


def beam_cases(model, inputs):
    """Beam search, HF 5.23 as is (prefill positions [[0]] broadcast). Uses the gen.* inputs; no RNG."""
    ids, mask, feats = inputs["gen.input_ids"], inputs["gen.attention_mask"], inputs["gen.features"]
    tc = model.config.text_config
    eos = model.config.decoder_config.eos_token_id
    ids1, mask1 = _pad_extra_bos_eos_tokens(ids, mask, add_bos_token=False, bos_token_id=tc.bos_token_id,
                                            eos_token_id=tc.eos_token_id)
    t = {}
    for name, (clips, steps, kw, pad_to) in BEAM_CASES.items():
        f = feats[clips]
        cond = model.conditioning_encoder(input_features=f, input_ids=ids1, attention_mask=mask1)
        out = model.speech_decoder_model.generate(conditioning_embeds=cond, generation_config=model.generation_config,
                                                  max_new_tokens=steps, do_sample=False, output_logits=True,
                                                  output_scores=True, **kw)
        seqs = out.sequences
        # The point of these cases: some returned hypotheses end with the stop token before max_new_tokens (true
        # for the committed seed-0 fixtures; other seeds give another tiny model, so only warn).
        if not any((r[1:] == eos).any() for r in seqs):
            print(f"warning: {name}: no returned beam hypothesis stopped before max_new_tokens", file=sys.stderr)
        t[f"{name}.sequences"] = seqs
        t[f"{name}.sequences_scores"] = out.sequences_scores
        t[f"{name}.logits"] = torch.stack(out.logits, dim=1)  # [B * num_beams, steps, vocab], running beams
        full = model.generate(input_ids=ids, input_features=f, attention_mask=mask, max_new_tokens=steps,
                              do_sample=False, **kw)
        assert torch.equal(full.speech_ids, model.fix_speech_decoder_output(seqs)), name
        t[f"{name}.speech_ids"] = full.speech_ids
        t[f"{name}.text_embeds"] = full.text_embeds
        t[f"{name}.speech_embeds"] = full.speech_embeds
        t[f"{name}.logits_per_text"] = full.logits_per_text
        if pad_to is not None:
            padded = model.generate(input_ids=ids, input_features=f, attention_mask=mask, max_new_tokens=steps,
                                    do_sample=False, pad_to_max_mel_tokens=pad_to, **kw)
            t[f"{name}.pad_to_max_mel_tokens"] = torch.tensor([pad_to])
            t[f"{name}.pad_speech_ids"] = padded.speech_ids
            t[f"{name}.pad_logits_per_text"] = padded.logits_per_text
    return t


E2E_BEAM = dict(num_beams=3, num_return_sequences=2)
E2E_BEAM_PAD = 16


def e2e_beam_cases(model, tok):
    """The e2e input decoded by beam search (what `clvp generate --beams 3 --candidates 2` must print)."""
    with open(os.path.join(ROOT, "crates", "clvp-audio", "assets", "mel_norms.json")) as f:
        fe = ClvpFeatureExtractor(mel_norms=json.load(f)["mel_norms"])
    import soundfile as sf

    clip, sr = sf.read(E2E_VOICE, dtype="float32")
    feats = torch.from_numpy(fe(clip, sampling_rate=sr, return_tensors="np")["input_features"])
    ids = torch.tensor([tok(E2E_TEXT)["input_ids"]])
    t = {}
    full = model.generate(input_ids=ids, input_features=feats, max_new_tokens=GEN_STEPS, do_sample=False, **E2E_BEAM)
    t["e2e_beam.speech_ids"] = full.speech_ids
    t["e2e_beam.logits_per_text"] = full.logits_per_text
    padded = model.generate(input_ids=ids, input_features=feats, max_new_tokens=GEN_STEPS, do_sample=False,
                            pad_to_max_mel_tokens=E2E_BEAM_PAD, **E2E_BEAM)
    t["e2e_beam.pad_speech_ids"] = padded.speech_ids
    t["e2e_beam.pad_logits_per_text"] = padded.logits_per_text
    return t


PROC_STEPS_DONE = 6  # the running ids of the processor cases: start token + 6 generated ids


def processor_cases(model, seed):
    """HF's logits processors on the same raw logits as ours (tiny; own generator, run last).

    procs.logits [6, V]: two normal rows, one with many exact ties, one peaked, one flat, one wide; procs.history
    [6, 1 + PROC_STEPS_DONE] running ids (start token first). Each processor alone (repetition penalty 2.0,
    temperature 0.8, top-k 50 and 5, top-p 0.8 and 0.3, min_new_tokens 10 -> stop masked), then the chain
    `_get_logits_processor` builds for Tortoise's sampling settings, with min_new_tokens 10 (active) and 3 (not).
    """
    from transformers.generation.logits_process import (MinNewTokensLengthLogitsProcessor,
                                                        RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    g = torch.Generator().manual_seed(seed * 1000 + 17)
    dcfg = model.config.decoder_config
    v = dcfg.vocab_size
    rows = [2.0 * torch.randn(v, generator=g), 2.0 * torch.randn(v, generator=g),
            torch.round(2.0 * torch.randn(v, generator=g)) / 2.0,
            0.1 * torch.randn(v, generator=g), torch.zeros(v), 5.0 * torch.randn(v, generator=g)]
    rows[3][int(torch.randint(0, v, (1,), generator=g))] += 10.0
    logits = torch.stack(rows).float()
    hist = torch.randint(0, v, (len(rows), 1 + PROC_STEPS_DONE), generator=g)
    hist[:, 0] = dcfg.bos_token_id
    hist[0, 3] = dcfg.eos_token_id  # the stop id in the history is penalised like any other
    eos = dcfg.eos_token_id
    t = {"procs.logits": logits, "procs.history": hist}
    single = {
        "rep": RepetitionPenaltyLogitsProcessor(penalty=2.0),
        "temp": TemperatureLogitsWarper(temperature=0.8),
        "topk50": TopKLogitsWarper(top_k=50),
        "topk5": TopKLogitsWarper(top_k=5),
        "topp08": TopPLogitsWarper(top_p=0.8),
        "topp03": TopPLogitsWarper(top_p=0.3),
        "minnew": MinNewTokensLengthLogitsProcessor(prompt_length_to_skip=1, min_new_tokens=10, eos_token_id=eos),
    }
    for k, proc in single.items():
        t[f"procs.{k}"] = proc(hist, logits.clone())
    lm = model.speech_decoder_model
    for k, min_new in [("chain_min10", 10), ("chain_min3", 3)]:
        gc = GenerationConfig(do_sample=True, temperature=0.8, top_k=50, top_p=0.8, repetition_penalty=2.0,
                              min_new_tokens=min_new, bos_token_id=dcfg.bos_token_id, eos_token_id=eos,
                              pad_token_id=eos)
        lm._prepare_special_tokens(gc, kwargs_has_attention_mask=False, device="cpu")  # as generate() does
        chain = lm._get_logits_processor(generation_config=gc, input_ids_seq_length=1,
                                         encoder_input_ids=hist[:, :1], device="cpu", model_kwargs={})
        print(f"{k}: {[type(p).__name__ for p in chain]}", file=sys.stderr)
        t[f"procs.{k}"] = chain(hist, logits.clone())
    return t


def forward_cases(model, inputs):
    """ClvpModelForConditionalGeneration.forward on the gen.* inputs (2 padded texts x 2 clips, and 1 text x 2
    clips), and get_speech_features's generate path rebuilt from its pieces (5.23 fails on it: it hands the text
    attention mask to the speech encoder)."""
    ids, mask, feats = inputs["gen.input_ids"], inputs["gen.attention_mask"], inputs["gen.features"]
    t = {}
    for name, (i, m) in {"forward": (ids, mask), "forward_broadcast": (ids[:1], mask[:1])}.items():
        out = model(input_ids=i, input_features=feats, attention_mask=m)
        cond = model.conditioning_encoder(input_features=feats, input_ids=i, attention_mask=m)
        argmax = model.speech_decoder_model(inputs_embeds=cond).logits.argmax(2)
        t[f"{name}.speech_ids"] = model.fix_speech_decoder_output(argmax)
        t[f"{name}.logits_per_text"] = out.logits_per_text
        t[f"{name}.logits_per_speech"] = out.logits_per_speech.clone()
        t[f"{name}.text_embeds"] = out.text_embeds
        t[f"{name}.speech_embeds"] = out.speech_embeds
        t[f"{name}.text_model_output"] = out.text_model_output
        t[f"{name}.speech_model_output"] = out.speech_model_output
    try:
        model.get_speech_features(input_ids=ids, input_features=feats, attention_mask=mask, max_new_tokens=GEN_STEPS)
        print("note: get_speech_features' generate path did not fail", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the point is that it fails
        print(f"get_speech_features' generate path fails in transformers 5.23 as expected: {type(e).__name__}: {e}",
              file=sys.stderr)
    cond = model.conditioning_encoder(input_features=feats, input_ids=ids, attention_mask=mask)
    out = model.speech_decoder_model.generate(conditioning_embeds=cond, generation_config=model.generation_config,
                                              max_new_tokens=GEN_STEPS, do_sample=False)
    codes = model.fix_speech_decoder_output(out.sequences)
    t["speech_features_gen.speech_ids"] = codes
    t["speech_features_gen.embeds"] = model.speech_encoder_model(input_ids=codes).embeds
    return t


def torch_order_cases(seed):
    """torch.topk (largest, sorted) and torch.sort on CPU over values with many exact ties (own generator, run
    last): which of equal values comes first is the order of libstdc++'s partial_sort / nth_element / sort
    that ATen uses, and beam search's survivors depend on it. Sizes cover both topk paths (k * 64 <= n:
    partial_sort; else nth_element + sort) and the beam cases' shapes (2k of k*V, k of 2k, k of 3k)."""
    g = torch.Generator().manual_seed(seed * 1000 + 29)
    t = {}
    topk_shapes = [(2, 1), (6, 3), (8, 4), (9, 3), (12, 4), (16, 8), (17, 5), (40, 6), (100, 30), (384, 6),
                   (780, 6), (1032, 8), (3000, 8), (24582, 6)]
    for i, (n, k) in enumerate(topk_shapes):
        levels = 2 + i % 5
        v = (torch.randint(0, levels, (n,), generator=g).float() / 2.0 - 7.0)
        if i == 5:
            v[3] = float("nan")
        t[f"torch_order.topk{i}.values"] = v
        t[f"torch_order.topk{i}.indices"] = torch.topk(v, k).indices
    for i, n in enumerate([5, 16, 17, 40, 300, 2000]):
        v = torch.randint(0, 3 + i, (n,), generator=g).float()
        t[f"torch_order.sort{i}.values"] = v
        t[f"torch_order.sort{i}.indices"] = torch.sort(v).indices
    return t


def make(name, config, out, seed, n_frames):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ClvpModelForConditionalGeneration(config).eval()
    perturb(model, gen)
    dcfg = model.config.decoder_config
    model.generation_config = GenerationConfig(bos_token_id=dcfg.bos_token_id, eos_token_id=dcfg.eos_token_id,
                                               pad_token_id=dcfg.eos_token_id, return_dict_in_generate=True)
    gen_state = int(torch.randint(0, 2**31, (1,), generator=gen))
    with torch.no_grad():
        if name == "tiny":
            gen_state = bias_stop_token(model, ClvpTokenizer(os.path.join(ROOT, "crates", "clvp-text", "assets", "vocab.json"),
                                                 os.path.join(ROOT, "crates", "clvp-text", "assets", "merges.txt")),
                            gen_state, n_frames)
    tok = save_checkpoint(model, os.path.join(out, name))
    with torch.no_grad():
        tensors = run_cases(model, tok, gen, n_frames)
        gen_t = gen_cases(model, tok, torch.Generator().manual_seed(gen_state), n_frames)
        tensors.update({k: v.detach().contiguous() for k, v in gen_t.items()})
        if name == "tiny":
            tensors.update({k: v.detach().contiguous() for k, v in e2e_cases(model, tok).items()})
        tensors.update({k: v.detach().contiguous() for k, v in beam_cases(model, tensors).items()})
        if name == "tiny":
            tensors.update({k: v.detach().contiguous() for k, v in e2e_beam_cases(model, tok).items()})
            # Appended last; own generator: the keys above do not depend on them.
            tensors.update({k: v.detach().contiguous() for k, v in forward_cases(model, tensors).items()})
            tensors.update({k: v.detach().contiguous() for k, v in processor_cases(model, seed).items()})
            tensors.update({k: v.detach().contiguous() for k, v in torch_order_cases(seed).items()})
    meta = {"generator": "xtask/python/ref_clvp_nn.py", "seed": str(seed), "torch": torch.__version__,
            "transformers": transformers.__version__}
    save_file(tensors, os.path.join(out, f"{name}.cases.safetensors"), metadata=meta)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"clvp-nn {name}: {n_params} parameters, {len(tensors)} tensors -> {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    make("tiny", tiny_config(), args.out, args.seed, n_frames=50)
    if args.full:
        make("full", full_config(), args.out, args.seed + 1, n_frames=517)


if __name__ == "__main__":
    sys.exit(main())
