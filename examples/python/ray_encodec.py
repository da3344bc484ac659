#!/usr/bin/env python3
"""Tokenize an audio corpus to EnCodec codes on Ray Data, resumably.

    python ray_encodec.py --manifest clips.jsonl --output codes/ --model facebook/encodec_24khz \
        --bandwidth 6 --actors 4 --shard-size 1000

The manifest (JSONL or Parquet) has the columns ``id`` (unique) and ``path`` (an audio file; a relative path is
taken from the manifest's folder). The ids are sorted and cut into shards of ``--shard-size`` items; shard ``i``
is written, once all its items are encoded, to ``OUTPUT/part-<i>-<digest>.parquet`` (a temporary file, then a
rename), where the digest covers the shard's ids, the model and the bandwidth. A rerun over the same folder
encodes only the shards whose file is missing; ``part-*.parquet`` files of another plan (a changed manifest,
model, bandwidth or shard size) are removed. Columns: ``id``, ``audio_codes`` (int64 ``[chunks][n_q][frames]``),
``audio_scales`` (float32 ``[chunks]``, null when the model does not normalise), ``audio_length`` (samples per
channel at the model's rate), ``last_frame_pad_length``, and ``error``: null, or the message of a clip that
could not be read or encoded (its other columns are then null). A broken clip never fails the job.
"""

import argparse
import os
import sys
import time

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

import shards as plan
from shards import SCHEMA, add_job_arguments, encode_row, pending_shards, write_shard

# ---- The manifest; the plan, the shard files and the rows are in shards.py (shared with datasets_encodec.py) ----


def read_manifest(path):
    """``[(id, path)]`` sorted by id; relative paths are taken from the manifest's folder."""
    table = pq.read_table(path) if path.endswith(".parquet") else pajson.read_json(path)
    base = os.path.dirname(os.path.abspath(path))
    ids = [str(i) for i in table.column("id").to_pylist()]
    paths = [os.path.join(base, p) for p in table.column("path").to_pylist()]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: the ids are not unique")
    return sorted(zip(ids, paths))


# ---- The work: one model per actor ----


class EncodecUDF:
    """Holds one ``clvp.EncodecModel`` and its feature extractor; encodes a batch of ``id, path`` rows."""

    def __init__(self, model, bandwidth, threads):
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))  # before clvp's thread pool starts
        import clvp

        self.model = clvp.EncodecModel.from_pretrained(model)
        self.fe = clvp.EncodecFeatureExtractor.from_pretrained(model)
        self.bandwidth = bandwidth

    def __call__(self, batch):
        rows = [
            encode_row(self.fe, self.model, i, p, self.bandwidth)
            for i, p in zip(batch["id"].to_pylist(), batch["path"].to_pylist())
        ]
        return pa.Table.from_pylist(rows, schema=SCHEMA)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_job_arguments(ap)
    ap.add_argument("--actors", type=int, default=1, help="actors, one model each")
    ap.add_argument("--threads", type=int, help="compute threads (and Ray CPUs) per actor (default: CPUs / actors)")
    ap.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    args = ap.parse_args(argv)

    items = read_manifest(args.manifest)
    shards = plan.plan_shards([i for i, _ in items], args.shard_size, args.model, args.bandwidth)
    todo = {name: items[a:b] for name, (a, b) in pending_shards(args.output, shards).items()}
    print(f"{len(shards)} shards: {len(shards) - len(todo)} complete, {len(todo)} to encode", file=sys.stderr)
    if not todo:
        return 0

    import ray

    # The actors run the UDF and `encode_row` of shards.py: ship that module's code with them, as the script's is.
    ray.cloudpickle.register_pickle_by_value(plan)
    ray.init(**({"num_cpus": args.num_cpus} if args.num_cpus else {}))
    threads = args.threads or max(1, int(ray.cluster_resources().get("CPU", 1)) // args.actors)
    shard_of = {i: name for name, items in todo.items() for i, _ in items}
    missing = {name: len(items) for name, items in todo.items()}
    rows = [{"id": i, "path": p} for items in todo.values() for i, p in items]
    start = time.perf_counter()
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // args.batch_size)))
    ds = ds.map_batches(
        EncodecUDF,
        fn_constructor_kwargs={"model": args.model, "bandwidth": args.bandwidth, "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=threads,  # each actor reserves the cores its threads use
        batch_size=args.batch_size,
        batch_format="pyarrow",
    )
    parts, errors = {name: [] for name in todo}, 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        errors += batch.num_rows - batch.column("error").null_count
        names = [shard_of[i] for i in batch.column("id").to_pylist()]
        for name in set(names):
            part = batch.take([k for k, n in enumerate(names) if n == name])
            parts[name].append(part)
            missing[name] -= part.num_rows
            if missing[name] == 0:  # the shard is whole: write it now, so a killed job keeps it
                write_shard(args.output, name, pa.concat_tables(parts.pop(name)))
    seconds = time.perf_counter() - start
    print(f"encoded {len(rows)} items ({errors} errors) into {len(todo)} shards in {seconds:.2f} s", file=sys.stderr)
    if any(missing.values()):
        raise SystemExit(f"incomplete shards: {[n for n, m in missing.items() if m]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
