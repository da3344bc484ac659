#!/usr/bin/env python3
"""Tokenize an audio corpus to EnCodec codes with Hugging Face ``datasets``, resumably.

    python datasets_encodec.py --manifest clips.jsonl --output codes/ --model facebook/encodec_24khz \
        --bandwidth 6 --num-proc 4 --shard-size 1000

The same manifest, plan, shard files and columns as ray_encodec.py (see its docstring): the ids are sorted and
cut into shards of ``--shard-size``; each missing shard is one ``Dataset.map(..., num_proc=N)`` over its rows,
written to ``OUTPUT/part-<i>-<digest>.parquet`` (a temporary file, then a rename) before the next shard starts,
so a rerun encodes only the shards whose file is missing. Each worker process loads one model, lazily, on its
first batch (the parent never runs clvp: its thread pool would not survive the fork).
"""

import argparse
import os
import sys
import time

from datasets import Dataset, Features

from shards import SCHEMA, add_job_arguments, encode_row, pending_shards, plan_shards, write_shard

FEATURES = Features.from_arrow_schema(SCHEMA)


# ---- The manifest; the plan, the shard files and the rows are in shards.py (shared with ray_encodec.py) ----


def read_manifest(path):
    """The manifest as a ``Dataset`` sorted by id, with relative paths taken from the manifest's folder."""
    ds = (Dataset.from_parquet if path.endswith(".parquet") else Dataset.from_json)(path, keep_in_memory=True)
    base = os.path.dirname(os.path.abspath(path))
    ds = ds.map(lambda r: {"id": str(r["id"]), "path": os.path.join(base, r["path"])}, keep_in_memory=True)
    if len(set(ds["id"])) != len(ds):
        raise SystemExit(f"{path}: the ids are not unique")
    return ds.sort("id")


# ---- The work: one model per worker process, loaded on its first batch ----

_LOADED = {}


def encode_batch(batch, model, bandwidth):
    """``datasets.map`` function (batched): columns ``id, path`` in, the output columns out."""
    if model not in _LOADED:
        import clvp

        _LOADED[model] = (clvp.EncodecFeatureExtractor.from_pretrained(model), clvp.EncodecModel.from_pretrained(model))
    fe, encodec = _LOADED[model]
    rows = [encode_row(fe, encodec, i, p, bandwidth) for i, p in zip(batch["id"], batch["path"])]
    return {name: [r.get(name) for r in rows] for name in SCHEMA.names}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_job_arguments(ap)
    ap.add_argument("--num-proc", type=int, default=2, help="worker processes, one model each")
    args = ap.parse_args(argv)

    manifest = read_manifest(args.manifest)
    shards = plan_shards(manifest["id"], args.shard_size, args.model, args.bandwidth)
    todo = pending_shards(args.output, shards)
    print(f"{len(shards)} shards: {len(shards) - len(todo)} complete, {len(todo)} to encode", file=sys.stderr)
    # Each worker's share of the cores, read by clvp's thread pool when it starts (in the worker).
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.num_proc)))
    start, items, errors = time.perf_counter(), 0, 0
    for name, (first, end) in todo.items():
        part = manifest.select(range(first, min(end, len(manifest))), keep_in_memory=True)
        out = part.map(
            encode_batch,
            fn_kwargs={"model": args.model, "bandwidth": args.bandwidth},
            batched=True,
            batch_size=args.batch_size,
            num_proc=min(args.num_proc, len(part)),
            remove_columns=part.column_names,
            features=FEATURES,
            keep_in_memory=True,
            load_from_cache_file=False,
            desc=name,
        )
        table = out.with_format("arrow")[:]
        write_shard(args.output, name, table)
        items, errors = items + table.num_rows, errors + table.num_rows - table.column("error").null_count
    seconds = time.perf_counter() - start
    print(f"encoded {items} items ({errors} errors) into {len(todo)} shards in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
