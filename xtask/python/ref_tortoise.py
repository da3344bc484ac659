"""Tortoise TTS's own code (the tortoise-tts 3.0.0 sdist, run on transformers 4.31.0 as its setup.py pins) as the
reference for the Rust loader of Tortoise's released checkpoints (`autoregressive.pth`, `clvp2.pth`) and for
Tortoise's generation loop.

Usage: target/pyenv-tortoise/bin/python ref_tortoise.py --out DIR --seed S --tortoise SDIST_DIR [--full]
(SDIST_DIR = the extracted tortoise-tts 3.0.0 sdist: `tortoise` is imported from there, never from an install;
the environment is `target/pyenv-tortoise`, see xtask/python/requirements-tortoise.txt)

Models, built with the sdist's classes, random init (the classes' own initialisers), then perturbed with seeded
noise (`perturb`), saved as Tortoise's released files are: `torch.save(model.state_dict(), path)` (zip format).
  DIR/tiny/autoregressive.pth  UnifiedVoice(layers=2, model_dim=64, heads=4, max_text_tokens=38, max_mel_tokens=44,
                               max_conditioning_inputs=2, number_text_tokens=255, start_text_token=255,
                               number_mel_codes=260, start_mel_token=258, stop_mel_token=259, checkpointing=False,
                               train_solo_embeddings=False): the released layout in miniature; the mel vocabulary
                               is 260 (not 8194) with start/stop 258/259 (Tortoise takes both ids as arguments
                               everywhere, so nothing depends on 8192/8193; the files stay small). The state dict
                               is taken before `post_init_gpt2_config` (no `inference_model.*` / `gpt.wte.*` keys,
                               as released) and gets the GPT-2 buffers old transformers saved and the release has:
                               `gpt.h.{i}.attn.bias` (bool causal tril [1, 1, n_pos, n_pos], n_pos =
                               max_mel_tokens + 2 + max_conditioning_inputs + max_text_tokens + 2) and
                               `gpt.h.{i}.attn.masked_bias` (f32 scalar -1e4); transformers 4.31 no longer saves them.
  DIR/tiny/clvp2.pth           CLVP(dim_text=64, dim_speech=64, dim_latent=32, num_text_tokens=256, text_enc_depth=2,
                               text_heads=2, num_speech_tokens=258, speech_enc_depth=2, speech_heads=2,
                               use_xformers=True) with x-transformers' head width set to 32 (`attn_dim_head=32`
                               passed to Tortoise's `Encoder`; the released model has 768 / 12 = 64, the default):
                               HF's ClvpEncoder has head_dim = hidden / heads, and both codes rotate
                               max(.., 32) = 32 dims (Tortoise: max(dim_head // 2, 32); HF:
                               max(projection_dim // (2 heads), 32)), so a head must be >= 32 wide.
                               num_speech_tokens = number_mel_codes - 2 as released (8192 of 8194).
  DIR/tiny/config.json         transformers 5.23's ClvpConfig describing the two files (HF field names; speech
                               vocab = the rows of CLVP's speech_emb, 258 (8192 released, as HF's clvp_dev says);
                               decoder vocab 260, bos/eos 258/259, max_position_embeddings = max_mel_tokens + 2 + 2
                               conditioning inputs, max_text_tokens = max_text_tokens + 2: the sizes of Tortoise's
                               position tables).
With --full: DIR/full/{autoregressive.pth, clvp2.pth, config.json} with api.py's hyper-parameters (never committed).

Perturbation (`perturb`, one generator per size): every parameter += 0.05 * std * randn (constant tensors: + 0.1 *
randn, so LayerNorm/GroupNorm/RMSNorm gains are not 1, biases not 0, the zero-initialised AttentionBlock.proj_out
not 0, CLVP's temperature not 1); the token and position embeddings are multiplied by 5 (spread); mel_head's weight
by MEL_HEAD_GAIN (logits with a std of a few units, so that greedy decoding has clear margins) and its bias at the
start token lowered by 20 (a trained model never predicts it: Tortoise's CLVP has no row for it); GPT-2's
projections rescaled to 1/sqrt(fan_in) (c_proj: half that), so that the logits depend on the conditioning and the
text, not only on the last token. The stop token keeps its random logit (samples may end). If a greedy step has a
top-1/top-2 margin below MIN_MARGIN, or a sampling step a top-k gap (50th vs 51st score) below MIN_TOPK_GAP or a
top-p edge within MIN_TOP_P_GAP of 1 - top_p, the model is perturbed again from the next generator state (the
attempt count is printed and written to cases.json).

Cases (CPU, float32, eval(), no_grad()); texts tokenized with Tortoise's own VoiceBpeTokenizer; per case in
DIR/<size>.cases.safetensors:
  {case}.mel               f32 [n_clips, 80, T]  seeded log-mel-like conditioning input (clips of one length)
  {case}.cond_latent       f32 [1, dim]          UnifiedVoice.get_conditioning(mel[None]) (mean over the clips of
                                                  the conditioning encoder's frame 0)
  {case}.tokens            i64 [Lt]              VoiceBpeTokenizer().encode(text)
  {case}.text_ids          i64 [L]               F.pad(tokens, (0, 1)) (value 0: what tts() does), the text_inputs
                                                  given to inference_speech; it then appends stop_text_token (0)
                                                  and prepends start_text_token (255)
  {case}.greedy_codes      i64 [n]               inference_speech(cond_latent, text_ids[None], do_sample=False,
                                                  repetition_penalty=2.0, max_generate_length=N,
                                                  num_return_sequences=1), kv_cache=True
  {case}.greedy_codes_rp1  i64 [n]               the same with repetition_penalty=1.0
  {case}.greedy_codes_nokv i64 [n]               repetition_penalty=2.0 with kv_cache=False (TextToSpeech's default)
  {case}.tf_logits         f32 [n, V]            raw logits along greedy_codes on the cached path (first call on
                                                  fake_inputs, then one token a call with past_key_values and the
                                                  growing attention mask, through GPT2InferenceModel's own
                                                  prepare_inputs_for_generation); row i predicts code i. Equal to the
                                                  logits generate() computed (checked)
  {case}.tf_logits_rp1     f32 [n, V]            the same along greedy_codes_rp1
  {case}.tf_logits_nokv    f32 [n, V]            raw logits along greedy_codes_nokv on the uncached path (the
                                                  whole sequence every call)
  {case}.sample_input_ids  i64 [S, R, P + S - 1] the input_ids the logits processors (and warpers) saw at each
                                                  step: fake_inputs (P = len(fake_inputs): ones, then the start mel
                                                  token) followed by the codes so far, padded with -1 at the end
  {case}.sample_raw_logits f32 [S, R, V]         next-token logits before any processor
  {case}.sample_processed  f32 [S, R, V]         after the processors alone (the repetition penalty over those
                                                  input_ids), before the warpers
  {case}.sample_scores     f32 [S, R, V]         after the processors and the warpers (what softmax -> multinomial
                                                  used; -inf kept)
  {case}.sample_codes      i64 [R, S]            inference_speech(..., do_sample=True, top_p=0.8, temperature=0.8,
                                                  num_return_sequences=R, length_penalty=1.0, repetition_penalty=2.0,
                                                  max_generate_length=N) (api.py's tts() with ultra_fast), after
                                                  torch.manual_seed(sample_seed); rows that met the stop token go on
                                                  with the stop token (pad = eos)
  {case}.clvp_text         i64 [1, L]            text_ids: tts() gives CLVP the same padded tokens
  {case}.clvp_codes        i64 [R, N]            sample_codes padded to N with the stop token, then
                                                  fix_autoregressive_output row by row (api.py's own function)
  {case}.clvp_sim          f32 [R]               CLVP(clvp_text.repeat(R, 1), clvp_codes, return_loss=False)
  {case}.clvp_text_latent / clvp_speech_latent f32 [R, latent]  the normalised latents of that call
cases.json describes every case and setting, the processors and warpers generate() built, and the mel positions
(position-embedding indices) that each call of GPT2InferenceModel used.

torchaudio: tortoise/models/arch_util.py imports it (for TorchMelSpectrogram, which no case uses: the mels are
inputs) and PyPI has no torchaudio for torch 2.15; a stub module stands in while tortoise is imported and raises if
any attribute of it is used.
"""

import argparse
import functools
import importlib.machinery
import json
import os
import sys
import time
import types
import warnings

import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Model, LogitsProcessorList  # noqa: F401  (imported before the torchaudio stub)
from ref_common import save_st

warnings.filterwarnings("ignore")

MAX_GEN = 24          # max_generate_length of every generation case (and tts()'s max_mel_tokens: CLVP's N)
SAMPLE_ROWS = 4       # num_return_sequences of the sampling cases
MEL_HEAD_GAIN = 4.0
MIN_MARGIN = {"tiny": 2e-3, "full": 2e-4}  # smallest top-1/top-2 gap (processed scores) a greedy step may have
MIN_TOPK_GAP = 2e-5   # smallest gap between the 50th and 51st score (after temperature) of a sampling step
MIN_TOP_P_GAP = 2e-6  # smallest |cumulative probability - (1 - top_p)| at a sampling step's top-p edge
# The greedy margin guards decisions on logits a Rust model computes itself (f32 error measured ~5e-6 tiny,
# ~1.5e-5 full: 2e-4 is over ten times that, where 2e-3 redrew the full-size weights for several attempts of
# 5 minutes each at 216 greedy steps over 8194 codes);
# the sampling gaps guard the warpers' decisions on the recorded sample_raw_logits (rounding differences only).
MAX_ATTEMPTS = 20
ULTRA_FAST = dict(temperature=0.8, top_p=0.8, repetition_penalty=2.0, length_penalty=1.0)

CASES = [
    # name, text, clips, frames
    ("short", "Hi there!", 1, 48),
    ("mid", "Hello world, this is a test.", 2, 64),
    ("long", "The quick brown fox jumps over the lazy dog, twice.", 2, 40),
]

SIZES = {
    "tiny": dict(
        ar=dict(layers=2, model_dim=64, heads=4, max_text_tokens=38, max_mel_tokens=44, max_conditioning_inputs=2,
                number_text_tokens=255, start_text_token=255, number_mel_codes=260, start_mel_token=258,
                stop_mel_token=259, checkpointing=False, train_solo_embeddings=False),
        clvp=dict(dim_text=64, dim_speech=64, dim_latent=32, num_text_tokens=256, text_enc_depth=2, text_seq_len=350,
                  text_heads=2, num_speech_tokens=258, speech_enc_depth=2, speech_heads=2, speech_seq_len=430,
                  use_xformers=True),
        clvp_dim_head=32,
    ),
    # tortoise/api.py's TextToSpeech.__init__.
    "full": dict(
        ar=dict(max_mel_tokens=604, max_text_tokens=402, max_conditioning_inputs=2, layers=30, model_dim=1024,
                heads=16, number_text_tokens=255, start_text_token=255, checkpointing=False,
                train_solo_embeddings=False),
        clvp=dict(dim_text=768, dim_speech=768, dim_latent=768, num_text_tokens=256, text_enc_depth=20,
                  text_seq_len=350, text_heads=12, num_speech_tokens=8192, speech_enc_depth=20, speech_heads=12,
                  speech_seq_len=430, use_xformers=True),
        clvp_dim_head=None,
    ),
}


# ------------------------------------------------------------------------------------------------ tortoise import


class _TorchaudioStub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"stub: torchaudio.{name} is not available in the Tortoise reference environment")


def import_tortoise(sdist):
    """The sdist's tortoise package (models and tokenizer) with a torchaudio stub while it is imported."""
    sdist = os.path.abspath(sdist)
    if not os.path.isfile(os.path.join(sdist, "tortoise", "models", "autoregressive.py")):
        sys.exit(f"{sdist} is not the tortoise-tts 3.0.0 sdist")
    stub = _TorchaudioStub("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    had = sys.modules.get("torchaudio")
    sys.modules["torchaudio"] = stub
    sys.path.insert(0, sdist)
    try:
        from tortoise.models import autoregressive, clvp
        from tortoise.utils import tokenizer
    finally:
        if had is None:
            del sys.modules["torchaudio"]
        else:
            sys.modules["torchaudio"] = had
    for mod in (autoregressive, clvp, tokenizer):
        assert os.path.abspath(mod.__file__).startswith(sdist), mod.__file__
    return types.SimpleNamespace(UnifiedVoice=autoregressive.UnifiedVoice, CLVP=clvp.CLVP, clvp_module=clvp,
                                 VoiceBpeTokenizer=tokenizer.VoiceBpeTokenizer,
                                 fix_autoregressive_output=load_fix_autoregressive_output(sdist))


def load_fix_autoregressive_output(sdist):
    """api.py's `fix_autoregressive_output`, taken from its source (importing api.py would pull in the diffusion
    models, the vocoder, torchaudio and wav2vec2)."""
    import ast
    path = os.path.join(sdist, "tortoise", "api.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fix_autoregressive_output")
    ns = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), ns)
    return ns["fix_autoregressive_output"]


# ------------------------------------------------------------------------------------------------ models


def build(tt, size):
    spec = SIZES[size]
    ar = tt.UnifiedVoice(**spec["ar"])
    enc = tt.clvp_module.Encoder
    if spec["clvp_dim_head"] is not None:
        tt.clvp_module.Encoder = functools.partial(enc, attn_dim_head=spec["clvp_dim_head"])
    try:
        clvp = tt.CLVP(**spec["clvp"])
    finally:
        tt.clvp_module.Encoder = enc
    return ar.eval(), clvp.eval()


def perturb(ar, clvp, gen):
    with torch.no_grad():
        for model in (ar, clvp):
            for _, p in model.named_parameters():
                if p.numel() > 1 and float(p.std()) > 0:
                    p.add_(0.05 * float(p.std()) * torch.randn(p.shape, generator=gen))
                elif p.dim() >= 2:  # a zero-initialised weight (AttentionBlock.proj_out)
                    p.add_(0.5 / p[0].numel() ** 0.5 * torch.randn(p.shape, generator=gen))
                else:
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
        # GPT-2's projections at 1/sqrt(fan_in) (c_proj at half that): attention that is not uniform and blocks
        # whose outputs outweigh the token's own embedding, so that the logits depend on the conditioning and the
        # text. (GPT-2's Conv1D weights are [fan_in, fan_out].)
        for block in ar.gpt.h:
            for lin, gain in ((block.attn.c_attn, 1.0), (block.attn.c_proj, 0.5), (block.mlp.c_fc, 1.0),
                              (block.mlp.c_proj, 0.5)):
                lin.weight.mul_(gain / lin.weight.shape[0] ** 0.5 / float(lin.weight.std()))
        for emb in (ar.text_embedding, ar.mel_embedding, ar.mel_pos_embedding.emb, ar.text_pos_embedding.emb,
                    clvp.text_emb, clvp.speech_emb):
            emb.weight.mul_(5.0)
        ar.mel_head.weight.mul_(MEL_HEAD_GAIN)
        ar.mel_head.bias[ar.start_mel_token] -= 20.0


def released_state_dict(ar):
    """The state dict as the released autoregressive.pth has it: 4.31's keys plus the GPT-2 attention buffers."""
    sd = ar.state_dict()
    assert not any(k.startswith(("inference_model.", "gpt.wte.", "gpt.wpe.")) for k in sd), "post_init keys"
    n_pos = ar.gpt.config.n_positions
    out = {}
    for k, v in sd.items():
        # Where old transformers put them: GPT2Attention's own buffers before its sub-modules' parameters.
        if k.startswith("gpt.h.") and k.endswith(".attn.c_attn.weight"):
            pre = k[: -len("c_attn.weight")]
            assert pre + "bias" not in sd
            out[pre + "bias"] = torch.tril(torch.ones((n_pos, n_pos), dtype=torch.bool)).view(1, 1, n_pos, n_pos)
            out[pre + "masked_bias"] = torch.tensor(-1e4)
        out[k] = v
    return out


def hf_config(size, ar, clvp_spec):
    """transformers 5.23's ClvpConfig (as `ClvpConfig(...).to_dict()` writes it) for the two Tortoise files."""
    c = clvp_spec
    mel_vocab = ar.number_mel_codes

    def encoder(dim, depth, heads, vocab):
        return {"attention_dropout": 0.1, "bos_token_id": 255, "dropout": 0.1, "eos_token_id": 0,
                "hidden_act": "gelu", "hidden_size": dim, "initializer_factor": 1.0, "intermediate_size": 2 * dim,
                "layer_norm_eps": 1e-05, "model_type": "clvp_encoder", "num_attention_heads": heads,
                "num_hidden_layers": depth, "pad_token_id": None, "projection_dim": c["dim_latent"],
                "summary_type": "mean", "use_attention_bias": False, "use_rotary_embedding": True,
                "vocab_size": vocab}

    decoder = {
        "activation_function": "gelu_new", "add_cross_attention": False, "attention_dropout": 0.1,
        "bos_token_id": ar.start_mel_token, "decoder_fixing_codes": [83, 45, 45, 248], "embd_pdrop": 0.1,
        "eos_token_id": ar.stop_mel_token, "feature_size": 80, "hidden_size": ar.model_dim,
        "initializer_factor": 1.0, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "max_position_embeddings": ar.max_mel_tokens + 2 + ar.max_conditioning_inputs,
        "max_text_tokens": ar.max_text_tokens + 2, "model_type": "clvp_decoder", "n_inner": None,
        "num_attention_heads": ar.heads, "num_hidden_layers": ar.layers, "num_mel_attn_blocks": 6,
        "pad_token_id": None, "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
        "use_attention_bias": True, "use_cache": True, "vocab_size": mel_vocab,
    }
    assert ar.mel_pos_embedding.emb.weight.shape[0] == decoder["max_position_embeddings"]
    assert ar.text_pos_embedding.emb.weight.shape[0] == decoder["max_text_tokens"]
    return {
        "architectures": ["ClvpModelForConditionalGeneration"],
        "decoder_config": decoder,
        "dtype": "float32",
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clvp",
        "projection_dim": c["dim_latent"],
        "speech_config": encoder(c["dim_speech"], c["speech_enc_depth"], c["speech_heads"], c["num_speech_tokens"]),
        "text_config": encoder(c["dim_text"], c["text_enc_depth"], c["text_heads"], c["num_text_tokens"]),
        "transformers_version": "5.23.0",
    }


# ------------------------------------------------------------------------------------------------ recording


class Recording(LogitsProcessorList):
    """A LogitsProcessorList that records what it saw and returned at every call."""

    def __init__(self, items, log):
        super().__init__(items)
        self.log = log

    def __call__(self, input_ids, scores, **kwargs):
        before = scores.detach().clone()
        out = super().__call__(input_ids, scores, **kwargs)
        self.log.append((input_ids.detach().clone(), before, out.detach().clone()))
        return out


def describe(lst):
    out = []
    for p in lst:
        attrs = {k: v for k, v in vars(p).items() if isinstance(v, (int, float, bool, str))}
        out.append({"class": type(p).__name__, **attrs})
    return out


class Recorder:
    """Wraps the inference model's `_get_logits_processor` / `_get_logits_warper` and the mel position embedding."""

    def __init__(self, ar):
        self.ar = ar
        im = ar.inference_model
        self.proc_log, self.warp_log, self.positions = [], [], []
        self.processors, self.warpers = None, None
        cls = type(im)

        def get_proc(*a, **k):
            lst = cls._get_logits_processor(im, *a, **k)
            self.processors = describe(lst)
            return Recording(lst, self.proc_log)

        def get_warp(*a, **k):
            lst = cls._get_logits_warper(im, *a, **k)
            self.warpers = describe(lst)
            return Recording(lst, self.warp_log)

        im._get_logits_processor = get_proc
        im._get_logits_warper = get_warp
        pos = im.text_pos_embedding  # == ar.mel_pos_embedding
        assert pos is ar.mel_pos_embedding
        fwd, fixed = pos.forward, pos.get_fixed_embedding

        def forward(x):
            self.positions.append(list(range(x.shape[1])))
            return fwd(x)

        def get_fixed_embedding(ind, dev):
            self.positions.append([int(ind)])
            return fixed(ind, dev)

        pos.forward = forward
        pos.get_fixed_embedding = get_fixed_embedding
        self.undo = lambda: (delattr(pos, "forward"), delattr(pos, "get_fixed_embedding"))

    def reset(self):
        self.proc_log.clear()
        self.warp_log.clear()
        self.positions.clear()
        self.processors, self.warpers = None, None


# ------------------------------------------------------------------------------------------------ cases


def log_mel(gen, n_clips, frames):
    """Log-mel-like values: a per-bin spectral envelope, slow temporal variation and noise (about -9 .. 1)."""
    bins = torch.arange(80, dtype=torch.float32)[:, None]
    env = -2.0 - 4.0 * bins / 80.0
    out = []
    for _ in range(n_clips):
        slow = torch.randn(1, frames // 8 + 2, generator=gen)
        slow = F.interpolate(slow[None], size=frames, mode="linear", align_corners=False)[0]
        formant = torch.randn(80, 1, generator=gen) * 1.0
        noise = torch.randn(80, frames, generator=gen) * 0.7
        out.append((env + formant + 1.5 * slow + noise).clamp(-11.5, 2.0))
    return torch.stack(out)


def teacher_forced(ar, cond_latent, text_ids, codes, kv):
    """Raw logits predicting each of `codes`, computed as 4.31's generate() calls GPT2InferenceModel after
    inference_speech's set-up (cached: one token a call after the first; uncached: the whole sequence a call)."""
    im = ar.inference_model
    im.kv_cache = kv
    text = F.pad(text_ids[None], (0, 1), value=ar.stop_text_token)
    text, _ = ar.build_aligned_inputs_and_targets(text, ar.start_text_token, ar.stop_text_token)
    emb = torch.cat([cond_latent[:, None], ar.text_embedding(text) + ar.text_pos_embedding(text)], dim=1)
    im.store_mel_emb(emb)
    ids = torch.full((1, emb.shape[1] + 1), 1, dtype=torch.long)
    ids[:, -1] = ar.start_mel_token
    mask = torch.ones_like(ids)
    past, rows = None, []
    for code in codes.tolist():
        inputs = im.prepare_inputs_for_generation(ids, past_key_values=past, attention_mask=mask, use_cache=True)
        out = im(**inputs, return_dict=True)
        rows.append(out.logits[0, -1])
        past = out.past_key_values
        ids = torch.cat([ids, torch.tensor([[code]])], dim=1)
        mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
    return torch.stack(rows)


def margins(scores):
    top = scores.topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def greedy(ar, rec, cond_latent, text_ids, rp, kv):
    ar.inference_model.kv_cache = kv
    rec.reset()
    codes = ar.inference_speech(cond_latent, text_ids[None], do_sample=False, max_generate_length=MAX_GEN,
                                num_return_sequences=1, repetition_penalty=rp)[0]
    raw = torch.stack([r[1][0] for r in rec.proc_log])
    processed = torch.stack([r[2][0] for r in rec.proc_log])
    return codes, raw, processed, list(rec.processors), [list(p) for p in rec.positions]


def sample(ar, rec, cond_latent, text_ids, seed):
    ar.inference_model.kv_cache = True
    rec.reset()
    torch.manual_seed(seed)
    codes = ar.inference_speech(cond_latent, text_ids[None], do_sample=True, top_p=ULTRA_FAST["top_p"],
                                temperature=ULTRA_FAST["temperature"], num_return_sequences=SAMPLE_ROWS,
                                length_penalty=ULTRA_FAST["length_penalty"],
                                repetition_penalty=ULTRA_FAST["repetition_penalty"], max_generate_length=MAX_GEN)
    steps = len(rec.proc_log)
    assert steps == len(rec.warp_log) == codes.shape[1]
    p = rec.proc_log[0][0].shape[1]
    ids = torch.full((steps, SAMPLE_ROWS, p + steps - 1), -1, dtype=torch.long)
    for s, ((inp, raw, _), (winp, _, _)) in enumerate(zip(rec.proc_log, rec.warp_log)):
        assert torch.equal(inp, winp) and inp.shape[1] == p + s
        ids[s, :, : p + s] = inp
    raw = torch.stack([r[1] for r in rec.proc_log])
    final = torch.stack([w[2] for w in rec.warp_log])
    # The warpers' input is the processors' output.
    for (_, _, pout), (_, win, _) in zip(rec.proc_log, rec.warp_log):
        assert torch.equal(pout, win)
    info = {"processors": list(rec.processors), "warpers": list(rec.warpers),
            "positions": [list(x) for x in rec.positions], "prompt_len": p}
    processed = torch.stack([r[2] for r in rec.proc_log])
    return codes, ids, raw, final, info, processed


def sampling_stats(raw, ids):
    """Margins of the sampling warpers' decisions, recomputed from the raw logits: the top-k gap (50th vs 51st
    processed/temperature score) and the top-p boundary distance (|cumulative probability - (1 - top_p)| at the
    kept/dropped edge)."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor
    rp = RepetitionPenaltyLogitsProcessor(ULTRA_FAST["repetition_penalty"])
    k_gap, p_gap = float("inf"), float("inf")
    for s in range(raw.shape[0]):
        p = int((ids[s, 0] >= 0).sum())
        scores = rp(ids[s, :, :p], raw[s].clone()) / ULTRA_FAST["temperature"]
        top = scores.topk(51, dim=-1).values
        k_gap = min(k_gap, float((top[:, 49] - top[:, 50]).min()))
        kept = scores.masked_fill(scores < top[:, 49:50], float("-inf"))
        srt = kept.sort(dim=-1).values
        cum = srt.softmax(dim=-1).cumsum(dim=-1)
        finite = torch.isfinite(srt)
        d = (cum - (1 - ULTRA_FAST["top_p"])).abs().masked_fill(~finite, float("inf"))
        p_gap = min(p_gap, float(d.min()))
    return k_gap, p_gap


def run_clvp(clvp, text_ids, codes):
    lat = {}
    h1 = clvp.to_text_latent.register_forward_hook(lambda m, i, o: lat.__setitem__("text", o))
    h2 = clvp.to_speech_latent.register_forward_hook(lambda m, i, o: lat.__setitem__("speech", o))
    try:
        sim = clvp(text_ids[None].repeat(codes.shape[0], 1), codes, return_loss=False)
    finally:
        h1.remove()
        h2.remove()
    return sim, F.normalize(lat["text"], p=2, dim=-1), F.normalize(lat["speech"], p=2, dim=-1)


def greedy_cases(ar, rec, inputs):
    """The greedy generations of every case; the smallest top-1/top-2 margin of the processed scores."""
    out, worst = {}, float("inf")
    for name, d in inputs.items():
        for key, rp, kv in (("greedy_codes", 2.0, True), ("greedy_codes_rp1", 1.0, True),
                            ("greedy_codes_nokv", 2.0, False)):
            codes, raw, processed, procs, positions = greedy(ar, rec, d["cond_latent"], d["text_ids"], rp, kv)
            m = float(margins(processed).min())
            worst = min(worst, m)
            out[(name, key)] = dict(codes=codes, raw=raw, margin=m, processors=procs, positions=positions)
    return out, worst


def make(tt, size, out, seed):
    t0 = time.time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tok = tt.VoiceBpeTokenizer()
    with torch.no_grad():
        ar, clvp = build(tt, size)
        # Inputs first (own generator): they do not depend on the attempt.
        in_gen = torch.Generator().manual_seed(seed * 1000 + 7)
        inputs = {}
        for name, text, clips, frames in CASES:
            tokens = torch.tensor(tok.encode(text), dtype=torch.long)
            inputs[name] = dict(text=text, clips=clips, frames=frames, tokens=tokens, text_ids=F.pad(tokens, (0, 1)),
                                mel=log_mel(in_gen, clips, frames))
        t_build = time.time() - t0
        base = {k: v.clone() for k, v in list(ar.state_dict().items()) + [("clvp." + k, v) for k, v in clvp.state_dict().items()]}
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                rec.undo()
                del ar.inference_model
                del ar.gpt.wte
                ar.load_state_dict({k: v for k, v in base.items() if not k.startswith("clvp.")}, strict=False)
                clvp.load_state_dict({k[5:]: v for k, v in base.items() if k.startswith("clvp.")})
            perturb(ar, clvp, gen)
            sd_ar = released_state_dict(ar)
            sd_clvp = {k: v.clone() for k, v in clvp.state_dict().items()}
            ar.post_init_gpt2_config(kv_cache=True)
            rec = Recorder(ar)
            for d in inputs.values():
                d["cond_latent"] = ar.get_conditioning(d["mel"][None])
            gres, worst = greedy_cases(ar, rec, inputs)
            sres, k_worst, p_worst = {}, float("inf"), float("inf")
            for ci, name in enumerate(inputs):
                d = inputs[name]
                sres[name] = sample(ar, rec, d["cond_latent"], d["text_ids"], seed * 100 + ci)
                _, ids, raw, final, _, _ = sres[name]
                k_gap, p_gap = sampling_stats(raw, ids)
                sres[name] += (k_gap, p_gap)
                k_worst, p_worst = min(k_worst, k_gap), min(p_worst, p_gap)
            # How much the first step's logits depend on the case (conditioning, text) vs on the token.
            first = torch.stack([gres[(n, "greedy_codes")]["raw"][0] for n in inputs])
            spread = float((first - first.mean(0)).std() / first.std())
            lens = [len(gres[(n, "greedy_codes")]["codes"]) for n in inputs]
            print(f"tortoise {size}: attempt {attempt}: smallest greedy top-1/top-2 margin {worst:.4g}, top-k gap "
                  f"{k_worst:.3g}, top-p boundary {p_worst:.3g}; logit std {float(first.std()):.3g}, across cases "
                  f"{spread:.3g} of it; greedy lengths {lens}, sampled steps "
                  f"{[sres[n][0].shape[1] for n in inputs]}")
            if worst >= MIN_MARGIN[size] and k_worst >= MIN_TOPK_GAP and p_worst >= MIN_TOP_P_GAP:
                break
        else:
            sys.exit(f"no attempt of {MAX_ATTEMPTS} met the margins")
        t_attempts = time.time() - t0 - t_build

        d_out = os.path.join(out, size)
        os.makedirs(d_out, exist_ok=True)
        torch.save(sd_ar, os.path.join(d_out, "autoregressive.pth"))
        torch.save(sd_clvp, os.path.join(d_out, "clvp2.pth"))
        cfg = hf_config(size, ar, SIZES[size]["clvp"])
        with open(os.path.join(d_out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        if size == "tiny":
            print("autoregressive.pth keys:", ", ".join(f"{k} {tuple(v.shape)} {str(v.dtype)[6:]}" for k, v in sd_ar.items()))
            print("clvp2.pth keys:", ", ".join(f"{k} {tuple(v.shape)}" for k, v in sd_clvp.items()))

        tensors, described = {}, []
        for ci, (name, d) in enumerate(inputs.items()):
            t = {"mel": d["mel"], "cond_latent": d["cond_latent"], "tokens": d["tokens"], "text_ids": d["text_ids"]}
            case = {"name": name, "text": d["text"], "clips": d["clips"], "frames": d["frames"],
                    "tokens": d["tokens"].tolist(), "text_ids": d["text_ids"].tolist()}
            for key, tf_key, kv in (("greedy_codes", "tf_logits", True), ("greedy_codes_rp1", "tf_logits_rp1", True),
                                    ("greedy_codes_nokv", "tf_logits_nokv", False)):
                g = gres[(name, key)]
                tf = teacher_forced(ar, d["cond_latent"], d["text_ids"], g["codes"], kv)
                diff = float((tf - g["raw"]).abs().max())
                assert diff <= 1e-5, f"{name} {key}: teacher-forced logits differ from generate()'s by {diff}"
                t[key], t[tf_key] = g["codes"], tf
                case[key] = {"codes": g["codes"].tolist(), "min_margin": g["margin"],
                             "repetition_penalty": 2.0 if key != "greedy_codes_rp1" else 1.0, "kv_cache": kv,
                             "processors": g["processors"], "positions": g["positions"],
                             "tf_logits": tf_key, "tf_vs_generate_max_abs": diff}
            sample_seed = seed * 100 + ci
            codes, ids, raw, final, info, processed, k_gap, p_gap = sres[name]
            t.update({"sample_input_ids": ids, "sample_raw_logits": raw, "sample_scores": final,
                      "sample_processed": processed,
                      "sample_codes": codes})
            case["sample"] = {"torch_manual_seed": sample_seed, "do_sample": True, **ULTRA_FAST,
                              "num_return_sequences": SAMPLE_ROWS, "max_generate_length": MAX_GEN,
                              "steps": int(codes.shape[1]), "kv_cache": True, **info,
                              "input_ids_pad": -1, "codes": codes.tolist(),
                              "min_topk_gap": k_gap, "min_top_p_boundary": p_gap}
            # tts(): pad to max_mel_tokens with the stop token, fix_autoregressive_output row by row, CLVP.
            fixed = F.pad(codes, (0, MAX_GEN - codes.shape[1]), value=ar.stop_mel_token)
            for i in range(fixed.shape[0]):
                fixed[i] = tt.fix_autoregressive_output(fixed[i], ar.stop_mel_token, complain=False)
            assert int(fixed.max()) < clvp.speech_emb.num_embeddings, fixed
            sim, tl, sl = run_clvp(clvp, d["text_ids"], fixed)
            t.update({"clvp_text": d["text_ids"][None].clone(), "clvp_codes": fixed, "clvp_sim": sim,
                      "clvp_text_latent": tl, "clvp_speech_latent": sl})
            case["clvp"] = {"codes": fixed.tolist(), "sim": sim.tolist()}
            tensors.update({f"{name}.{k}": v.detach().contiguous() for k, v in t.items()})
            described.append(case)
            print(f"tortoise {size} {name}: {len(d['tokens'])} tokens, greedy {g['codes'].tolist()[:8]}..., "
                  f"margins rp2 {gres[(name, 'greedy_codes')]['margin']:.3g} rp1 "
                  f"{gres[(name, 'greedy_codes_rp1')]['margin']:.3g} nokv "
                  f"{gres[(name, 'greedy_codes_nokv')]['margin']:.3g}; sampled {codes.shape[1]} steps, "
                  f"top-k gap {k_gap:.3g}, top-p boundary {p_gap:.3g}; clvp sim {[round(x, 4) for x in sim.tolist()]}")
    meta = {"generator": "xtask/python/ref_tortoise.py", "seed": str(seed), "torch": torch.__version__,
            "transformers": transformers.__version__, "tortoise": "3.0.0"}
    save_st(tensors, os.path.join(out, f"{size}.cases.safetensors"), meta)
    n_ar = sum(p.numel() for p in ar.parameters())
    n_clvp = sum(p.numel() for p in clvp.parameters())
    elapsed = time.time() - t0
    print(f"tortoise {size}: UnifiedVoice {n_ar} + CLVP {n_clvp} parameters, {len(tensors)} tensors -> {out} "
          f"({elapsed:.1f} s: build {t_build:.1f} s, attempts {t_attempts:.1f} s)")
    spec = SIZES[size]
    return {"seed": seed, "attempts": attempt + 1, "files": [f"{size}/autoregressive.pth", f"{size}/clvp2.pth",
                                                             f"{size}/config.json", f"{size}.cases.safetensors"],
            "autoregressive": spec["ar"], "clvp": spec["clvp"], "clvp_dim_head": spec["clvp_dim_head"] or 64,
            "start_mel_token": ar.start_mel_token, "stop_mel_token": ar.stop_mel_token,
            "start_text_token": ar.start_text_token, "stop_text_token": ar.stop_text_token,
            "cases": described}




NOTES = {
    "text": "text_ids = F.pad(tokens, (0, 1)) with value 0, as tts() pads them; inference_speech then does "
            "F.pad(text, (0, 1), value=stop_text_token=0) and F.pad(text, (1, 0), value=start_text_token=255), so "
            "the GPT sees [cond_latent, 255, tokens..., 0, 0] with text positions 0..L+1",
    "fake_inputs": "inference_speech builds fake_inputs = ones of length 1 + (1 + L + 2) (one per conditioning "
                   "latent and text embedding, plus one) with the last set to start_mel_token: generate() and every "
                   "logits processor see these ones and the start token as the prompt (the repetition penalty "
                   "penalises token 1 and the start token)",
    "positions": "per generation, one entry per call of GPT2InferenceModel: the indices of mel_pos_embedding used "
                 "(the whole-sequence path embeds input_ids[:, mel_len:] at 0..n-1; the one-token path uses "
                 "get_fixed_embedding(attention_mask.shape[1] - mel_len))",
    "positions_found": "cached path (kv_cache=True): the call on fake_inputs embeds the start mel token at mel "
                       "position 0; the k-th generated code (k = 1, 2, ...) is then fed at position k + 1 (2, 3, ...: "
                       "get_fixed_embedding(attention_mask.shape[1] - mel_len), and fake_inputs is one longer than "
                       "the stored embedding), so position 1 is never used. Uncached path (kv_cache=False, "
                       "TextToSpeech's default): every call embeds [start, codes...] at 0, 1, 2, ...",
    "tf_logits": "row i = raw logits (no processor) predicting code i, given the prompt and codes[:i]",
    "sample_input_ids": "[steps, rows, prompt_len + steps - 1]: step s saw the first prompt_len + s columns; the "
                        "rest is -1",
    "top_k": "generate() in transformers 4.31 adds TopKLogitsWarper(top_k=50) (GenerationConfig's default) to "
             "Tortoise's temperature and top_p: see each case's sample.warpers",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tortoise", required=True, help="the extracted tortoise-tts 3.0.0 sdist")
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    assert transformers.__version__ == "4.31.0", transformers.__version__
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    tt = import_tortoise(args.tortoise)
    doc = {"generator": "xtask/python/ref_tortoise.py", "torch": torch.__version__,
           "transformers": transformers.__version__, "tortoise": "3.0.0", "max_generate_length": MAX_GEN,
           "notes": NOTES, "sizes": {}}
    doc["sizes"]["tiny"] = make(tt, "tiny", args.out, args.seed)
    if args.full:
        doc["sizes"]["full"] = make(tt, "full", args.out, args.seed + 1)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
