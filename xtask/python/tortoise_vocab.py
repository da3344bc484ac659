"""Re-serialise the Tortoise BPE tokenizer as the `vocab.json` + `merges.txt` pair that HF `ClvpTokenizer` reads.

Usage:
    python3 xtask/python/tortoise_vocab.py SOURCE [--out DIR]

SOURCE is either the tortoise-tts 3.0.0 sdist (`tortoise-tts-3.0.0.tar.gz`, as fetched by
`pip download --no-deps --no-binary :all: tortoise-tts==3.0.0 -d /tmp/tortoise`) or an extracted
`tortoise/data/tokenizer.json`. DIR defaults to `crates/clvp-text/assets` of this repository.

Writes:
  * `vocab.json`: token -> id, in id order (255 entries, ids 0-254);
  * `merges.txt`: the hub's format: a `#version: 0.2` first line (HF skips the first line), one merge per line
    as "a b", and a trailing newline (HF also drops the text after the last newline). 215 merges.

Standard library only. The output is checked (contiguous ids, every merge made of two vocabulary tokens whose
concatenation is also in the vocabulary) before anything is written.
"""

import argparse
import json
import os
import sys
import tarfile

MEMBER_SUFFIX = "tortoise/data/tokenizer.json"
EXPECTED_VOCAB = 255
EXPECTED_MERGES = 215


def load_tokenizer_json(source):
    """The parsed Tortoise `tokenizer.json`, from the sdist or from the file itself."""
    if tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if m.name.endswith(MEMBER_SUFFIX)]
            if len(members) != 1:
                raise SystemExit(f"{source}: expected exactly one */{MEMBER_SUFFIX}, found {len(members)}")
            handle = tar.extractfile(members[0])
            if handle is None:
                raise SystemExit(f"{source}: {members[0].name} is not a regular file")
            return json.loads(handle.read().decode("utf-8"))
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def vocab_and_merges(data):
    """(vocab as [(token, id)] in id order, merges as [(a, b)]) from a tokenizers BPE `tokenizer.json`."""
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise SystemExit(f"model type is {model.get('type')!r}, expected 'BPE'")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = []
    for m in model["merges"]:
        pair = m.split(" ") if isinstance(m, str) else list(m)
        if len(pair) != 2 or not all(pair):
            raise SystemExit(f"malformed merge {m!r}")
        merges.append((pair[0], pair[1]))
    return vocab, merges


def check(vocab, merges):
    ids = [i for _, i in vocab]
    if ids != list(range(len(vocab))):
        raise SystemExit("vocabulary ids are not contiguous from 0")
    if len(vocab) != EXPECTED_VOCAB or len(merges) != EXPECTED_MERGES:
        raise SystemExit(
            f"expected {EXPECTED_VOCAB} tokens and {EXPECTED_MERGES} merges, got {len(vocab)} and {len(merges)}"
        )
    tokens = {t for t, _ in vocab}
    for a, b in merges:
        for t in (a, b, a + b):
            if t not in tokens:
                raise SystemExit(f"merge {a} {b}: {t!r} is not in the vocabulary")
            if any(c.isspace() for c in t):
                raise SystemExit(f"merge {a} {b}: {t!r} contains whitespace")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="tortoise-tts-3.0.0.tar.gz or tokenizer.json")
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "crates", "clvp-text", "assets"))
    args = ap.parse_args()

    vocab, merges = vocab_and_merges(load_tokenizer_json(args.source))
    check(vocab, merges)

    os.makedirs(args.out, exist_ok=True)
    lines = [f"  {json.dumps(t, ensure_ascii=False)}: {i}" for t, i in vocab]
    with open(os.path.join(args.out, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    with open(os.path.join(args.out, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    print(f"{len(vocab)} tokens, {len(merges)} merges -> {os.path.normpath(args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
