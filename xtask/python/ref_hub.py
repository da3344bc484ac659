"""Reference checkpoints and outputs for the Rust `clvp-hub` crate (weights machinery, not a real model).

Builds a small `transformers.PreTrainedModel` holding every layer kind the CLVP and EnCodec loaders meet:
  linear        nn.Linear(6, 5)                                   weight [out, in] -> burn Linear transposes
  mlp.c_fc      transformers.pytorch_utils.Conv1D(7, 6)           GPT-2 Conv1D, weight already [in, out]
  embedding     nn.Embedding(11, 6)
  layer_norm    nn.LayerNorm(6)                                   weight/bias -> burn gamma/beta
  wn_old        torch.nn.utils.weight_norm(nn.Conv1d(4, 5, 3))    keys weight_g / weight_v (legacy)
  wn_new        parametrizations.weight_norm(nn.Conv1d(4, 5, 3))  keys parametrizations.weight.original0/1
  wn_tr         weight_norm(nn.ConvTranspose1d(5, 4, 4, stride 2)) g is per *input* channel ([5,1,1])
  lstm          nn.LSTM(6, 6, num_layers=2)                       gate rows [i | f | g | o]
  codebook      EnCodec-style buffers inited [1], cluster_size [8], embed [8, 6], embed_avg [8, 6]
Every weight-norm g is rescaled so that folding g * v / ||v|| is not the identity.

Writes into <out> (all by `save_pretrained` unless said otherwise):
  f32/      config.json, generation_config.json, model.safetensors (f32), plus hand-written
            preprocessor_config.json, tokenizer_config.json, vocab.json, merges.txt (typed-access tests)
  f16/      config.json, model.safetensors with every tensor float16
  bf16/     config.json, model.safetensors with every tensor bfloat16
  sharded/  config.json, model-0000{1,2}-of-00002.safetensors, model.safetensors.index.json (f32)
  pytorch/  config.json, pytorch_model.bin (`torch.save` of the f32 state_dict)
  reference_{f32,f16,bf16}.safetensors  inputs and outputs of every sub-module, computed in float32 with the
            weights rounded to that dtype:
      linear.input [2,6] -> linear.output [2,5];   c_fc.input [2,6] -> c_fc.output [2,7]
      embedding.ids i64 [2,3] -> embedding.output [2,3,6];  layer_norm.input [2,6] -> layer_norm.output
      conv.input [1,4,8] -> wn_old.output, wn_new.output [1,5,6];  wn_tr.input [1,5,6] -> wn_tr.output [1,4,14]
      lstm.input [5,2,6] (seq-first) -> lstm.output [5,2,6];  codebook.embed [8,6]
      folded weights: wn_old.weight, wn_new.weight [5,4,3], wn_tr.weight [5,4,4]

Usage: python ref_hub.py --out fixtures/hub --seed 0
"""

import argparse
import json
import os
import shutil
import warnings

import torch
import torch.nn as nn
from safetensors.torch import save_file
from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel
from transformers.pytorch_utils import Conv1D

warnings.filterwarnings("ignore", category=FutureWarning)


class HubRefConfig(PretrainedConfig):
    model_type = "hub_ref"

    def __init__(self, hidden_size=6, vocab_size=11, num_attention_heads=2, **kwargs):
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.num_attention_heads = num_attention_heads
        super().__init__(**kwargs)


class Codebook(nn.Module):
    def __init__(self, k, d):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.rand(k))
        self.register_buffer("embed", torch.randn(k, d))
        self.register_buffer("embed_avg", torch.randn(k, d))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = Conv1D(7, 6)


class HubRefModel(PreTrainedModel):
    config_class = HubRefConfig
    base_model_prefix = "hub_ref"

    def __init__(self, config):
        super().__init__(config)
        self.linear = nn.Linear(6, 5)
        self.mlp = Mlp()
        self.embedding = nn.Embedding(11, 6)
        self.layer_norm = nn.LayerNorm(6)
        self.wn_old = torch.nn.utils.weight_norm(nn.Conv1d(4, 5, 3))
        self.wn_new = torch.nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 5, 3))
        self.wn_tr = torch.nn.utils.weight_norm(nn.ConvTranspose1d(5, 4, 4, stride=2))
        self.lstm = nn.LSTM(6, 6, num_layers=2)
        self.codebook = Codebook(8, 6)

    def _init_weights(self, module):
        pass


def randomize(model):
    """Random values everywhere (LayerNorm and Conv1D are constant at init), g rescaled away from ||v||."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        for g in (model.wn_old.weight_g, model.wn_new.parametrizations.weight.original0, model.wn_tr.weight_g):
            g.copy_(torch.rand_like(g) * 1.5 + 0.25)


def rounded_copy(model, dtype):
    """A float32 copy whose parameters and buffers went through `dtype` and back."""
    m = HubRefModel(model.config)
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            t.copy_(t.to(dtype).to(torch.float32))
    return m


def reference(model, inputs):
    m = model.eval()
    with torch.no_grad():
        out = dict(inputs)
        out["linear.output"] = m.linear(inputs["linear.input"])
        out["c_fc.output"] = m.mlp.c_fc(inputs["c_fc.input"])
        out["embedding.output"] = m.embedding(inputs["embedding.ids"])
        out["layer_norm.output"] = m.layer_norm(inputs["layer_norm.input"])
        out["wn_old.output"] = m.wn_old(inputs["conv.input"])
        out["wn_new.output"] = m.wn_new(inputs["conv.input"])
        out["wn_tr.output"] = m.wn_tr(inputs["wn_tr.input"])
        out["lstm.output"] = m.lstm(inputs["lstm.input"])[0]
        out["codebook.embed"] = m.codebook.embed.clone()
        out["wn_old.weight"] = m.wn_old.weight.clone()
        out["wn_new.weight"] = m.wn_new.weight.clone()
        out["wn_tr.weight"] = m.wn_tr.weight.clone()
    return {k: v.contiguous() for k, v in out.items()}


def write_side_files(d):
    """Small hand-written files for the typed-access tests (not used by any model)."""
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump({"feature_extractor_type": "HubRefFeatureExtractor", "sampling_rate": 22050, "feature_size": 4}, f, indent=2)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 32, "bos_token": "a", "eos_token": "b"}, f, indent=2)
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump({"a": 0, "b": 1, "ab": 2}, f)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\na b\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    model = HubRefModel(HubRefConfig())
    randomize(model)
    model.eval()

    inputs = {
        "linear.input": torch.randn(2, 6),
        "c_fc.input": torch.randn(2, 6),
        "embedding.ids": torch.tensor([[0, 3, 10], [7, 7, 1]], dtype=torch.int64),
        "layer_norm.input": torch.randn(2, 6) * 2.0 + 0.5,
        "conv.input": torch.randn(1, 4, 8),
        "wn_tr.input": torch.randn(1, 5, 6),
        "lstm.input": torch.randn(5, 2, 6),
    }

    out = args.out
    for sub in ("f32", "f16", "bf16", "sharded", "pytorch"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)

    model.save_pretrained(os.path.join(out, "f32"))
    GenerationConfig(max_length=20, do_sample=True, top_p=0.8, bos_token_id=0, eos_token_id=1).save_pretrained(
        os.path.join(out, "f32"))
    write_side_files(os.path.join(out, "f32"))

    for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        m = rounded_copy(model, dtype).to(dtype)
        m.save_pretrained(os.path.join(out, name))

    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    model.save_pretrained(os.path.join(out, "sharded"), max_shard_size=int(total * 0.6))
    shards = sorted(f for f in os.listdir(os.path.join(out, "sharded")) if f.endswith(".safetensors"))
    if len(shards) != 2:
        raise SystemExit(f"expected 2 shards, got {shards}")

    os.makedirs(os.path.join(out, "pytorch"), exist_ok=True)
    shutil.copy(os.path.join(out, "f32", "config.json"), os.path.join(out, "pytorch", "config.json"))
    torch.save(model.state_dict(), os.path.join(out, "pytorch", "pytorch_model.bin"))

    for name, dtype in (("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        m = model if dtype is None else rounded_copy(model, dtype)
        save_file(reference(m, inputs), os.path.join(out, f"reference_{name}.safetensors"))

    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out}: {size} bytes")


if __name__ == "__main__":
    main()
