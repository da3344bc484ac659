"""P1, P2, P3 and P7 of `cargo xtask bench`: transformers 5.23 CLVP on a full-size random-init checkpoint, timed in
this process (torch 2.15 CPU, float32, `torch.set_num_threads(THREADS)`).

Usage:
  python bench_clvp.py --make DIR [--seed S]      write the full-size random-init checkpoint (the hub's layout)
  python bench_clvp.py --workload p1|p2|p3|p7 --model DIR --voice WAV [--runs N --warmup W --threads T]

Workloads (the Rust side is `crates/clvp/examples/clvp_bench_worker.rs`, with the same inputs):
  p1  generate, batch 1, the 24-token bench text, 100 new tokens, greedy, fixed length (min = max = 100)
  p2  generate 16 candidates x 100 tokens, Tortoise's ultra_fast sampling (temperature 0.8, top_k 50, top_p 0.8,
      repetition penalty 2.0), fixed length
  p3  rank 16 candidates x 500 codes ((7919 i + 104729 j) mod 8192) against the text: get_text_features,
      get_speech_features, the normalised similarity times exp(logit_scale)
  p7  cold load (`from_pretrained`) to first use (get_text_features of the text)
  p8  the main job once, for `bench_cold.py` (see `main_job`): --output FILE
--dtype bf16 (p1, p2): PyTorch in bfloat16, both ways it offers on the CPU -- the model cast
(`model.to(torch.bfloat16)`, features too) and `torch.autocast("cpu", dtype=torch.bfloat16)` over the f32
model -- each timed with its warm-up; the faster one's times are reported. (The cast does not run in transformers
5.23's CLVP on the CPU -- a float32 tensor meets a bf16 weight -- so autocast is what is measured.)
--dtype int8 (p1, p2): PyTorch's own int8 on the speech decoder (`quantize_dynamic`, see `int8_decoder`): all of
its matmuls, the MLP's Conv1D rewritten as Linear first; `--dtype int8-linear` only the Linear layers it finds.
Prints one JSON line: {"median_s": ..., "runs": N, "peak_rss_bytes": ...}.
"""

import argparse
import gc
import os
import statistics
import sys
import time

import torch

from bench_common import report, time_runs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TEXT = "The quick brown fox jumps over the dog."
TEXT_TOKENS = 24
NEW_TOKENS = 100
CANDIDATES = 16
RANK_CODES = 500


def make(out, seed):
    from transformers import ClvpModelForConditionalGeneration, GenerationConfig

    import ref_clvp_nn as ref

    torch.manual_seed(seed)
    model = ClvpModelForConditionalGeneration(ref.full_config()).eval()
    ref.perturb(model, torch.Generator().manual_seed(seed))
    d = model.config.decoder_config
    model.generation_config = GenerationConfig(bos_token_id=d.bos_token_id, eos_token_id=d.eos_token_id,
                                               pad_token_id=d.eos_token_id, return_dict_in_generate=True)
    ref.save_checkpoint(model, out)
    print(f"full-size CLVP: {sum(p.numel() for p in model.parameters())} parameters -> {out}")


def int8_decoder(decoder, swap_conv1d):
    """PyTorch's own int8 for the speech decoder, in place: `torch.ao.quantization.quantize_dynamic` (int8
    weights per tensor, activations quantized per call) on its `nn.Linear` modules -- q/k/v, `out_proj` and
    `lm_head`, 35 % of the decoder's matmul weights (`--dtype int8-linear`). The MLP's `c_fc` / `c_proj` are
    GPT-2 `Conv1D` modules, which it leaves in f32; with `swap_conv1d` (`--dtype int8`, the faster, the one the
    bench compares against) they are first rewritten as the equivalent `nn.Linear` (transposed weight), so all
    of them are quantized. The encoders stay f32 in both, as ours do."""
    import warnings

    from torch.ao.quantization import quantize_dynamic
    from transformers.pytorch_utils import Conv1D

    if swap_conv1d:
        for parent in list(decoder.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, Conv1D):
                    n_in, n_out = child.weight.shape
                    lin = torch.nn.Linear(n_in, n_out)
                    lin.weight.data = child.weight.data.t().contiguous()
                    lin.bias.data = child.bias.data.clone()
                    setattr(parent, name, lin)
    total = sum(m.weight.numel() for m in decoder.modules() if isinstance(m, (torch.nn.Linear, Conv1D)))
    covered = sum(m.weight.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.15 marks torch.ao.quantization deprecated (moving to torchao)
        q = quantize_dynamic(decoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    print(f"int8 ({'Conv1D as Linear' if swap_conv1d else 'as loaded'}): {covered / total:.0%} of the decoder's "
          f"matmul weights quantized", file=sys.stderr)
    return q


P8_TEXT = "Hello world, this is a test."


def main_job(model_dir, voice, output):
    """P8, once (`bench_cold.py` times the whole process, interpreter start and imports included): the README's
    first command done with transformers -- load the checkpoint and its processor, read the voice file, 16
    candidates with Tortoise's `ultra_fast` sampling up to 100 new tokens, ranked by CLVP -- and the ids and
    scores written to `output` (safetensors), as `clvp generate --output` writes them."""
    import soundfile as sf
    from safetensors.torch import save_file
    from transformers import ClvpModelForConditionalGeneration, ClvpProcessor

    processor = ClvpProcessor.from_pretrained(model_dir)
    model = ClvpModelForConditionalGeneration.from_pretrained(model_dir).eval()
    clip, sr = sf.read(voice, dtype="float32")
    inputs = processor(audio=clip, sampling_rate=sr, text=P8_TEXT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(input_ids=inputs["input_ids"], input_features=inputs["input_features"],
                             do_sample=True, temperature=0.8, top_k=50, top_p=0.8, repetition_penalty=2.0,
                             num_return_sequences=CANDIDATES, max_new_tokens=NEW_TOKENS, return_dict_in_generate=True)
    ranking = torch.argsort(out.logits_per_text[0], descending=True, stable=True)
    save_file({"speech_ids": out.speech_ids.contiguous(), "logits_per_text": out.logits_per_text.contiguous(),
               "ranking": ranking.contiguous()}, output)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workload", choices=["p1", "p2", "p3", "p7", "p8"])
    ap.add_argument("--output")
    ap.add_argument("--model")
    ap.add_argument("--voice")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16", "int8", "int8-linear"], default="f32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.make:
        make(args.make, args.seed)
        return
    if args.workload == "p8":
        main_job(args.model, args.voice, args.output)
        return
    import soundfile as sf
    from transformers import ClvpFeatureExtractor, ClvpModelForConditionalGeneration, ClvpTokenizer

    tok = ClvpTokenizer.from_pretrained(args.model)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert ids.shape[1] == TEXT_TOKENS, f"the bench text has {ids.shape[1]} tokens, not {TEXT_TOKENS}"

    def load():
        return ClvpModelForConditionalGeneration.from_pretrained(args.model).eval()

    times = []
    if args.workload == "p7":
        for i in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            model = load()
            with torch.no_grad():
                model.get_text_features(input_ids=ids)
            dt = time.perf_counter() - t0
            del model
            gc.collect()
            if i >= args.warmup:
                times.append(dt)
    else:
        model = load()
        fe = ClvpFeatureExtractor.from_pretrained(args.model)
        clip, sr = sf.read(args.voice, dtype="float32")
        feats = torch.from_numpy(fe(clip, sampling_rate=sr, return_tensors="np")["input_features"])
        fixed = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, return_dict_in_generate=True)
        codes = torch.tensor([[(7919 * i + 104729 * j) % 8192 for j in range(RANK_CODES)] for i in range(CANDIDATES)])

        def once():
            with torch.no_grad():
                if args.workload == "p1":
                    return model.generate(input_ids=ids, input_features=feats, do_sample=False, **fixed)
                if args.workload == "p2":
                    return model.generate(input_ids=ids, input_features=feats, do_sample=True, temperature=0.8,
                                          top_k=50, top_p=0.8, repetition_penalty=2.0,
                                          num_return_sequences=CANDIDATES, **fixed)
                t = model.get_text_features(input_ids=ids).embeds
                s = model.get_speech_features(speech_ids=codes)
                t, s = t / t.norm(dim=-1, keepdim=True), s / s.norm(dim=-1, keepdim=True)
                return t @ s.t() * model.logit_scale.exp()

        if args.dtype == "f32":
            times = time_runs(once, args.runs, args.warmup)
        elif args.dtype in ("int8", "int8-linear"):
            assert args.workload in ("p1", "p2"), "--dtype int8 is for p1 and p2"
            model.speech_decoder_model = int8_decoder(model.speech_decoder_model, args.dtype == "int8")
            times = time_runs(once, args.runs, args.warmup)
        else:
            assert args.workload in ("p1", "p2"), "--dtype bf16 is for p1 and p2"

            def autocast():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return once()

            variants = {"autocast": time_runs(autocast, args.runs, args.warmup)}
            model = model.to(torch.bfloat16)
            feats = feats.to(torch.bfloat16)
            try:
                variants["model.to(bfloat16)"] = time_runs(once, args.runs, args.warmup)
            except RuntimeError as e:
                # transformers 5.23's CLVP does not run cast to bf16 on the CPU (a float32 tensor meets a
                # bf16 weight: "mat1 and mat2 must have the same dtype"); autocast is then the one bf16 path.
                print(f"model.to(bfloat16) does not run: {str(e).splitlines()[0]}", file=sys.stderr)
            best = min(variants, key=lambda k: statistics.median(variants[k]))
            print(f"bf16 variants (median s): " + ", ".join(f"{k} {statistics.median(v):.3f}"
                                                       for k, v in variants.items()), file=sys.stderr)
            times = variants[best]
    report(times)


if __name__ == "__main__":
    main()
