"""Reference values for `clvp_kernels::torch_sum`: torch's float32 `sum` of a contiguous row, and EnCodec's chunk
scale built on it, as PyTorch 2.15 computes them on the CPU with ONE thread (the order the kernel reproduces;
with more threads torch splits rows longer than 32768 into one cascade per thread).

The inputs are formulas the Rust test computes to the same float32 bits (integer arithmetic, then one rounding
to float32 and exact or correctly rounded float32 steps), so only the results (and the seed, `seed` [1]) are stored:
  ramp(n)      ((i * 7919) % 1000) / 1000 for n in LENGTHS: lengths that leave a scalar tail, vectors outside the
               ILP groups, and several cascade levels; torch.sum in sum.ramp_<n> [1]
  hash(n, s)   ((i * 2654435761 + s * 40503) mod 2^32) / 2^32 − 0.5, the salt s = seed: values of both signs;
               torch.sum in sum.hash_<n> [1]
  chunk(c, l)  0.1 · hash(c·l, seed + 1) laid out [c, l]: its scale `1e-8 + sqrt(mean(mean_c(x)²))` exactly as
               encodec's `_encode_frame` writes it (x.mean(dim=1) then pow(2).mean(dim=2).sqrt()) in
               scale.chunk_<c>x<l> [1], and the mean square before the root in mean_square.chunk_<c>x<l> [1]

Usage: python ref_torch_sum.py --out fixtures/kernels --seed 0
"""

import argparse
import os

import torch

from ref_common import save_st

LENGTHS = [1, 7, 37, 64, 1000, 4800, 32768, 48_000, 300_000, 5_000_000]
CHUNKS = [(1, 24_000), (2, 48_000), (2, 47_520), (1, 5)]


def ramp(n):
    return ((torch.arange(n, dtype=torch.int64) * 7919) % 1000).to(torch.float32) / 1000.0


def hashed(n, salt):
    k = (torch.arange(n, dtype=torch.int64) * 2654435761 + salt * 40503) % (1 << 32)
    return k.to(torch.float32) / 4294967296.0 - 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="accepted for the parity driver; no size here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t = {"seed": torch.tensor([args.seed], dtype=torch.int64)}
    for n in LENGTHS:
        t[f"sum.ramp_{n}"] = torch.sum(ramp(n)).reshape(1)
        t[f"sum.hash_{n}"] = torch.sum(hashed(n, args.seed)).reshape(1)
    for c, l in CHUNKS:
        x = (hashed(c * l, args.seed + 1) * 0.1).reshape(1, c, l)
        mono = x.mean(dim=1, keepdim=True)
        mean_square = mono.pow(2).mean(dim=2, keepdim=True)
        scale = 1e-8 + mean_square.sqrt()
        t[f"mean_square.chunk_{c}x{l}"] = mean_square.reshape(1).contiguous()
        t[f"scale.chunk_{c}x{l}"] = scale.reshape(1).contiguous()
    os.makedirs(args.out, exist_ok=True)
    meta = {
        "seed": str(args.seed),
        "torch": torch.__version__,
        "threads": "1",
        "lengths": ",".join(map(str, LENGTHS)),
        "chunks": ",".join(f"{c}x{l}" for c, l in CHUNKS),
    }
    save_st(t, os.path.join(args.out, "torch_sum.safetensors"), meta)


if __name__ == "__main__":
    main()
