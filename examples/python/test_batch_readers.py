"""`clvp batch` output read without our code: pyarrow, HF datasets and Ray Data see the same rows
(scripts/test-python-examples.sh; docs/corpus.md).

A manifest of 12 seeded clips and a broken one, encoded in 3 shards by the `clvp` command (CLVP_BIN, else the
debug build); the directory reads as the results alone (the `_errors`, `_records`, `_job.json` names are
skipped by all three readers), and the error table as its own.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile

ROOT = Path(__file__).resolve().parent.parent.parent
TINY_24K = ROOT / "fixtures" / "encodec" / "tiny_24k"


def clvp(*args):
    exe = os.environ.get("CLVP_BIN") or str(ROOT / "target" / "debug" / "clvp")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_pyarrow_datasets_and_ray_read_the_shards(tmp_path):
    rng = np.random.default_rng(25)
    rows = []
    for k in range(12):
        rate = int(rng.choice([16000, 24000, 44100]))
        wav = (0.3 * rng.standard_normal((int(rng.uniform(0.2, 1.5) * rate), 1 + k % 2))).astype(np.float32)
        soundfile.write(tmp_path / f"c{k:02d}.wav", wav, rate)
        rows.append({"id": f"c{k:02d}", "audio": f"c{k:02d}.wav"})
    (tmp_path / "bad.wav").write_text("not audio\n")
    rows.append({"id": "bad", "audio": "bad.wav"})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    for shard in range(3):
        proc = clvp("batch", "encodec-encode", "--manifest", manifest, "--output", out, "--model", TINY_24K,
                    "--bandwidth", 1.8, "--shard", shard, "--num-shards", 3)
        assert proc.returncode in (0, 2), proc.stderr

    table = pq.read_table(out).sort_by("id")
    assert table.column("id").to_pylist() == [f"c{k:02d}" for k in range(12)]
    import pyarrow as pa

    assert table.schema.field("audio_codes").type.value_type.value_type.value_type == pa.int64()
    errors = pq.read_table(out / "_errors").to_pylist()
    assert [e["id"] for e in errors] == ["bad"] and "bad.wav" in errors[0]["message"], errors
    records = [json.loads(p.read_text()) for p in sorted((out / "_records").glob("*.json"))]
    assert sum(r["counts"]["ok"] for r in records) == 12 and sum(r["counts"]["failed"] for r in records) == 1

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(out / "shard-*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(ds["id"]) == table.column("id").to_pylist()
    by_id = {r["id"]: r for r in table.to_pylist()}
    for r in ds:
        assert r["audio_codes"] == by_id[r["id"]]["audio_codes"], r["id"]

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        got = ray.data.read_parquet(str(out)).to_pandas().sort_values("id")
    finally:
        ray.shutdown()
    assert got["id"].tolist() == table.column("id").to_pylist()
    for item, codes in zip(got["id"], got["audio_codes"]):
        assert [[list(q) for q in chunk] for chunk in codes] == by_id[item]["audio_codes"], item
