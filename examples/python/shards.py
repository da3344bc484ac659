"""What ray_encodec.py and datasets_encodec.py share: the output schema, the plan (which ids go to which shard
file), the atomic shard writes, and one clip's row. Either script can finish a job the other started."""

import hashlib
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("audio_codes", pa.list_(pa.list_(pa.list_(pa.int64())))),
        ("audio_scales", pa.list_(pa.float32())),
        ("audio_length", pa.int64()),
        ("last_frame_pad_length", pa.int64()),
        ("error", pa.string()),
    ]
)


def add_job_arguments(ap):
    """The options both pipelines take: the manifest, the output folder, the model and bandwidth, the shard
    and batch sizes."""
    ap.add_argument("--manifest", required=True, help="JSONL or .parquet with columns id, path")
    ap.add_argument("--output", required=True, help="folder of the Parquet shards")
    ap.add_argument("--model", default="facebook/encodec_24khz", help="checkpoint folder or hub id")
    ap.add_argument("--bandwidth", type=float, default=6.0)
    ap.add_argument("--shard-size", type=int, default=1000, help="items per output shard")
    ap.add_argument("--batch-size", type=int, default=4, help="items per batch of a worker")


def plan_shards(ids, shard_size, model, bandwidth):
    """``{file name: (first row, end row)}`` of the sorted ``ids`` cut into runs of ``shard_size``, each file
    named by its index and a digest of the model, the bandwidth and its ids."""
    model = os.path.abspath(model) if os.path.isdir(model) else model
    shards = {}
    for n, start in enumerate(range(0, len(ids), shard_size)):
        key = json.dumps([model, float(bandwidth), list(ids[start : start + shard_size])])
        name = f"part-{n:05d}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.parquet"
        shards[name] = (start, min(start + shard_size, len(ids)))
    return shards


def pending_shards(output, shards):
    """The shards whose file is missing; removes leftover temporaries and the files of another plan."""
    os.makedirs(output, exist_ok=True)
    for name in os.listdir(output):
        stale = name.startswith("part-") and name.endswith(".parquet") and name not in shards
        if stale or name.startswith(".part-"):
            print(f"removing {name} (not in this plan)" if stale else f"removing {name}", file=sys.stderr)
            os.remove(os.path.join(output, name))
    return {name: rows for name, rows in shards.items() if not os.path.exists(os.path.join(output, name))}


def write_shard(output, name, table):
    """Rows sorted by id, written to a temporary file then renamed: a shard file is complete or absent."""
    table = table.sort_by("id").cast(SCHEMA)
    tmp = os.path.join(output, f".{name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, os.path.join(output, name))


def encode_row(fe, model, item_id, path, bandwidth):
    """One output row; any failure (an unreadable file, a bad clip) is the row's ``error``."""
    try:
        # One clip, unpadded: chunked as the clvp command chunks it (transformers' default padding would add a
        # chunk to the 48 kHz model's codes).
        values = fe(path, padding=False, return_tensors="np")["input_values"]  # [1, channels, samples]
        out = model.encode(values, bandwidth=bandwidth)
        scales = out.audio_scales
        return {
            "id": item_id,
            "audio_codes": out.audio_codes[:, 0].tolist(),
            "audio_scales": None if scales is None else scales[:, 0].tolist(),
            "audio_length": values.shape[-1],
            "last_frame_pad_length": int(out.last_frame_pad_length),
            "error": None,
        }
    except Exception as e:  # noqa: BLE001: every per-clip failure becomes a row
        return {"id": item_id, "error": f"{type(e).__name__}: {e}"}
