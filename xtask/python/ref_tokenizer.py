"""Reference outputs of transformers 5.23 `ClvpTokenizer` for the Rust `clvp-text` crate.

Writes `<out>/tokenizer_cases.json`:
  {"meta": {...}, "cases": [{"text", "normalized", "ids"}], "batches": [{"texts", "input_ids", "attention_mask"}],
   "decode": [{"ids", "text", "clean"}]}
and `<out>/checkpoint/` — the tokenizer files of a checkpoint directory as the hub stores them
(`vocab.json`, `merges.txt` WITH the `#version` header line, `tokenizer_config.json` from `save_pretrained`).

The case list = fixed cases (spec golden table, HF test inputs) + N generated lines from a seeded generator
(prose, numbers, money, decimals, ordinals, dates, abbreviations, punctuation, unicode, whitespace). Run with a
different --seed to get cases the Rust side was not tuned on (`cargo xtask parity-check` does).
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile

import transformers
from transformers import ClvpTokenizer

FIXED = [
    # spec §2.4 golden inputs
    "Hello world",
    " Hello world",
    "This is an example text.",
    "1st 2nd 3rd",
    "café £5 don’t",
    "a_b o'the 'tis it's we'll",
    "x [STOP] y",
    "x@y#z&w",
    "  leading and trailing  ",
    "1984 1500 2000 2005 2015 1905",
    "$1.50 $0.99",
    "3.14 -5 12,345",
    "Dr. Smith lives on Main St. at 5 p.m.",
    # transformers tests/models/clvp/test_tokenization_clvp.py::test_outputs_with_numbers
    "hello and this is an example text and I have $1000. my lucky number is 12345.",
    # edge cases
    "",
    " ",
    "\t\n",
    'a " b',
    "xl-net...) (nlu)",
    "[UNK][STOP]<|endoftext|>",
    "<|endoftext|>hello<|endoftext|>",
    "[stop] lower-case added token is plain text",
    "$",
    "$.5",
    "$5.",
    "$1,000,000.01",
    "$1.2.3",
    "$0.00",
    "$0.01",
    "$1",
    "$1.00",
    "£12 €3 ¥4",
    "0th 11th 12th 13th 21st 22nd 23rd 101st 111th 1000th",
    "1,2 1,234 12,34,567 ,5 5,",
    "999999999999999999 1000000000000000000 123456789012345678901234567890",
    "1001 1999 2001 2009 2010 2999 3000 1000",
    "10.5.3 .5 5. 0.0001",
    "Mrs. Mr. Dr. St. Co. Jr. Maj. Gen. Drs. Rev. Lt. Hon. Sgt. Capt. Esq. Ltd. Col. Ft.",
    "MRS. mr. DR. st.john stone. co.op ltd.",
    "Mr.Smith and mrs.jones",
    "tab\there\nnewline\r\ncrlf\x0bvt\x0cff\x1cfs\x1dgs\x1ers\x1fus end",
    "ÀÉÎÕÜ ñ ß 日本語 😀 emoji",
    "can't won't I'm you're they've we'd he'll it's",
    "CAN'T WON'T I'M",
    "hello!!! what??? (really) [maybe] {no} <yes>",
    "semi;colon:colon/slash-dash—emdash–endash",
    "a\u00a0b\u2003c\u2028d",
    "100% of 50 = 25 + 25 * 1 ^ 2 | 3 ~ 4 \\ 5",
    "   many     spaces    ",
    "'quoted' \"double\" `back`",
]

WORDS = (
    "the quick brown fox jumps over lazy dog speech voice model rank candidate text sound wave "
    "tortoise hare river mountain yesterday tomorrow never always music quiet loud whisper "
    "because although however therefore meanwhile seventeen shoes apple orange market street"
).split()
PROSE = [
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael.",
    "The rain in Spain stays mainly in the plain.",
    "She sells sea shells by the sea shore.",
    "I think, therefore I am.",
    "To be, or not to be: that is the question.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "In the beginning was the word.",
    "We'll meet again, don't know where, don't know when.",
    "Four score and seven years ago our fathers brought forth on this continent a new nation.",
    "The quick brown fox jumps over the lazy dog!",
    "Is this the real life? Is this just fantasy?",
    "Ask not what your country can do for you.",
    "It's a truth universally acknowledged...",
]
ABBRS = ["Mrs.", "Mr.", "Dr.", "St.", "Co.", "Jr.", "Maj.", "Gen.", "Drs.", "Rev.", "Lt.", "Hon.", "Sgt.",
         "Capt.", "Esq.", "Ltd.", "Col.", "Ft."]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
ODD = ["é", "ü", "—", "’", "“", "”", "…", "\u00a0", "\t", "\n", "  ", "ß", "中", "🙂", "\r\n", "\x0b", "@", "#",
       "&", "*", "+", "=", "_", "[", "]", "{", "}", "|", "\\", "^", "~", "%", "<", ">", "`", '"']


def number(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(100))
    if kind == 2:
        return str(rng.randrange(1000, 3000))
    if kind == 3:
        return f"{rng.randrange(1, 10**rng.randrange(1, 19)):,}"
    if kind == 4:
        return str(rng.randrange(10 ** rng.randrange(1, 25)))
    if kind == 5:
        return f"{rng.randrange(1000)}.{rng.randrange(1000)}"
    if kind == 6:
        return "0" * rng.randrange(1, 3) + str(rng.randrange(100))
    return str(rng.choice([1000, 2000, 1500, 2100, 1900, 2999, 1001, 3000, 100, 10**6, 10**9, 10**12, 10**15]))


def money(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return f"${rng.randrange(100000)}"
    if kind == 1:
        return f"${rng.randrange(1000)}.{rng.randrange(100):02d}"
    if kind == 2:
        return f"${rng.randrange(1, 10**7):,}.{rng.randrange(100):02d}"
    if kind == 3:
        return f"$0.{rng.randrange(100):02d}"
    if kind == 4:
        return f"${rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(10)}"
    return f"£{rng.randrange(1000)}"


def ordinal(rng):
    n = rng.choice([rng.randrange(1, 40), rng.randrange(40, 200), rng.randrange(1000, 3000)])
    return f"{n}{rng.choice(['st', 'nd', 'rd', 'th'])}"


def date(rng):
    kind = rng.randrange(4)
    y = rng.randrange(1800, 2100)
    if kind == 0:
        return f"{rng.choice(MONTHS)} {rng.randrange(1, 32)}, {y}"
    if kind == 1:
        return f"{rng.randrange(1, 13)}/{rng.randrange(1, 32)}/{y}"
    if kind == 2:
        return f"the {ordinal(rng)} of {rng.choice(MONTHS)} {y}"
    return f"{y}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def generated_line(rng):
    parts = []
    for _ in range(rng.randrange(2, 12)):
        k = rng.randrange(10)
        if k < 3:
            w = rng.choice(WORDS)
            parts.append(w.capitalize() if rng.random() < 0.3 else (w.upper() if rng.random() < 0.1 else w))
        elif k == 3:
            parts.append(number(rng))
        elif k == 4:
            parts.append(money(rng))
        elif k == 5:
            parts.append(ordinal(rng))
        elif k == 6:
            parts.append(date(rng))
        elif k == 7:
            parts.append(rng.choice(ABBRS) + rng.choice(["", " ", "  "]) + rng.choice(WORDS).capitalize())
        elif k == 8:
            parts.append(rng.choice(PROSE))
        else:
            parts.append(rng.choice(WORDS) + rng.choice(ODD) + rng.choice(WORDS))
    sep = [" ", " ", " ", ", ", "; ", "  ", "\t", " - ", "... "]
    line = parts[0]
    for p in parts[1:]:
        line += rng.choice(sep) + p
    if rng.random() < 0.5:
        line += rng.choice([".", "!", "?", "...", "", "?!"])
    if rng.random() < 0.05:
        line = rng.choice([" ", "  ", "\n"]) + line
    if rng.random() < 0.05:
        line += rng.choice(["[STOP]", "[UNK]", "<|endoftext|>"])
    return line


def json_lines(obj):
    """JSON with one list element per line: small, diffable fixtures."""
    parts = []
    for key, value in obj.items():
        if isinstance(value, list):
            body = ",\n".join(json.dumps(v, ensure_ascii=True) for v in value)
            parts.append(f"{json.dumps(key)}: [\n{body}\n]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# The toy vocabulary of transformers tests/models/clvp/test_tokenization_clvp.py (setUp), with its own `Ġ`,
# `<unk>` and `[SPACE]`: only a standalone `Ġ` becomes `[SPACE]`.
TOY_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "\u0120", "\u0120l", "\u0120n", "\u0120lo", "\u0120low", "er",
             "\u0120lowest", "\u0120newer", "\u0120wider", "<unk>", "<|endoftext|>", "[SPACE]"]
TOY_MERGES = ["#version: 0.2", "\u0120 l", "\u0120l o", "\u0120lo w", "e r", ""]
TOY_TEXTS = ["lower newer", "lowest newer wider", " low", "slow riders", "xyz lower", "[STOP] lower"]


def write_toy(out):
    """The HF test's toy tokenizer as a checkpoint directory, and its ids for a few texts."""
    toy = os.path.join(out, "toy")
    os.makedirs(toy, exist_ok=True)
    with open(os.path.join(toy, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(dict(zip(TOY_VOCAB, range(len(TOY_VOCAB))))) + "\n")
    with open(os.path.join(toy, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(TOY_MERGES))
    tok = ClvpTokenizer(os.path.join(toy, "vocab.json"), os.path.join(toy, "merges.txt"), unk_token="<unk>")
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "tokenizer_config.json"), os.path.join(toy, "tokenizer_config.json"))
    return [{"text": t, "normalized": None, "ids": tok(t)["input_ids"]} for t in TOY_TEXTS]


def write_checkpoint(tok, vocab_dir, out):
    """A tokenizer checkpoint as the hub stores it (merges.txt keeps its #version header)."""
    ckpt = os.path.join(out, "checkpoint")
    os.makedirs(ckpt, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "tokenizer_config.json"), os.path.join(ckpt, "tokenizer_config.json"))
    shutil.copy(os.path.join(vocab_dir, "vocab.json"), os.path.join(ckpt, "vocab.json"))
    shutil.copy(os.path.join(vocab_dir, "merges.txt"), os.path.join(ckpt, "merges.txt"))
    with open(os.path.join(ckpt, "merges.txt"), encoding="utf-8") as f:
        assert f.readline().startswith("#version"), "merges.txt must start with the #version header"
    # Loading the checkpoint back must give the same tokenizer.
    back = ClvpTokenizer.from_pretrained(ckpt)
    assert back("This is an example text.")["input_ids"] == tok("This is an example text.")["input_ids"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines", type=int, default=320)
    ap.add_argument("--vocab-dir", default=os.path.join(os.path.dirname(__file__), "../../crates/clvp-text/assets"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    tok = ClvpTokenizer(os.path.join(args.vocab_dir, "vocab.json"), os.path.join(args.vocab_dir, "merges.txt"))
    rng = random.Random(args.seed)
    texts = list(FIXED) + [generated_line(rng) for _ in range(args.lines)]

    cases = []
    for t in texts:
        ids = tok(t)["input_ids"]
        has_added = any(s in t for s in ("[STOP]", "[UNK]", "<|endoftext|>"))
        cases.append({"text": t, "normalized": None if has_added else tok.normalizer(t), "ids": ids})

    batches = []
    batch_texts = [
        ["This is an example text.", "Hi."],
        # transformers tests/models/clvp/test_tokenization_clvp.py::test_tokenizer_integration
        [
            "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides "
            "general-purpose architectures (BERT, RoBERTa, XLM, DistilBert, XLNet...) for Natural "
            "Language Understanding (NLU) and Natural Language Generation (NLG) with over multiple pretrained "
            "models and deep interoperability between Jax, PyTorch and TensorFlow.",
            "BERT is designed to pre-train deep bidirectional representations from unlabeled text by jointly "
            "conditioning on both left and right context in all layers.",
            "The quick brown fox jumps over the lazy dog.",
        ],
        [generated_line(rng) for _ in range(5)],
        ["", "a"],
    ]
    for bt in batch_texts:
        enc = tok(bt, padding=True)
        batches.append({"texts": bt, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})

    decode = []
    for c in cases[:60]:
        ids = c["ids"]
        decode.append({
            "ids": ids,
            "text": tok.decode(ids, clean_up_tokenization_spaces=False),
            "clean": tok.decode(ids, clean_up_tokenization_spaces=True),
            "skip_special": tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
        })

    meta = {
        "generator": "xtask/python/ref_tokenizer.py",
        "seed": args.seed,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }
    toy = write_toy(args.out)
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        f.write(json_lines({"meta": meta, "cases": cases, "batches": batches, "decode": decode, "toy": toy}))
    write_checkpoint(tok, args.vocab_dir, args.out)
    print(f"tokenizer: {len(cases)} cases, {len(batches)} batches, {len(decode)} decodes -> {args.out}")


if __name__ == "__main__":
    main()
