"""The Ray Data and datasets examples against the `clvp` command (scripts/test-python-examples.sh).

40 seeded clips (0.3 to 8 s, 16 to 48 kHz, mono and stereo) and 2 broken files: every good clip's codes equal
the CLI's, the broken ones are rows with an error, a rerun encodes only the missing shard, and datasets.map gives
the same files as Ray.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TINY_24K = ROOT / "fixtures" / "encodec" / "tiny_24k"
TINY_48K = ROOT / "fixtures" / "encodec" / "tiny_48k"
BROKEN = {"broken_text": "not a recognised audio file", "broken_trunc": "truncated file"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 clips and 2 broken files, with manifest.jsonl (relative paths) listing them shuffled."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(24)
    rows = []
    for k in range(40):
        rate = int(rng.choice([16000, 22050, 24000, 44100, 48000]))
        channels = int(rng.integers(1, 3))
        n = int(rng.uniform(0.3, 8.0) * rate)
        wav = (0.3 * rng.standard_normal((n, channels))).astype(np.float32)
        soundfile.write(d / f"clip{k:02d}.wav", wav, rate, subtype="PCM_16" if k % 2 else "FLOAT")
        rows.append({"id": f"clip{k:02d}", "path": f"clip{k:02d}.wav"})
    (d / "broken_text.wav").write_text("not audio\n")
    (d / "broken_trunc.wav").write_bytes((d / "clip00.wav").read_bytes()[:30])
    rows += [{"id": b, "path": f"{b}.wav"} for b in BROKEN]
    rng.shuffle(rows)
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def run_example(script, *args):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HF_DATASETS_CACHE=str(Path(args[-1]).parent / "hf-cache"))
    cmd = [sys.executable, str(HERE / script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stderr


def cli_codes(clips, model, bandwidth, out_dir):
    """``{id: safetensors dict}`` of ``clvp encodec encode`` on each clip (CLVP_BIN, else the debug build)."""
    exe = os.environ.get("CLVP_BIN") or str(ROOT / "target" / "debug" / "clvp")

    def one(clip):
        out = out_dir / f"{clip.stem}.safetensors"
        cmd = [exe, "encodec", "encode", str(clip), str(out), "--model", str(model), "--bandwidth", str(bandwidth)]
        subprocess.run(cmd, check=True, capture_output=True)
        return clip.stem, load_file(out)

    out_dir.mkdir(exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, clips))


def check_against_cli(table, cli):
    rows = {r["id"]: r for r in table.to_pylist()}
    for item, ref in cli.items():
        row = rows[item]
        assert row["error"] is None, row["error"]
        codes = np.array(row["audio_codes"], dtype=np.int64)  # [chunks, n_q, frames]
        assert ref["audio_codes"].shape == (codes.shape[0], 1, *codes.shape[1:]), item
        np.testing.assert_array_equal(codes, ref["audio_codes"][:, 0], err_msg=item)
        assert row["audio_length"] == int(ref["audio_length"][0]), item
        assert row["last_frame_pad_length"] == int(ref["last_frame_pad_length"][0]), item
        if "audio_scales" in ref:
            np.testing.assert_allclose(row["audio_scales"], ref["audio_scales"][:, 0], rtol=1e-6, err_msg=item)
        else:
            assert row["audio_scales"] is None, item


def shard_times(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}


def test_ray_then_rerun_then_datasets(corpus, tmp_path):
    model, bw = TINY_24K, 3.6  # the tiny checkpoint offers 0.9, 1.8 and 3.6 kbps
    common = ["--manifest", corpus / "manifest.jsonl", "--model", model, "--bandwidth", bw, "--shard-size", 8]
    ray_out = tmp_path / "ray"
    log = run_example("ray_encodec.py", *common, "--actors", 2, "--num-cpus", 2, "--output", ray_out)
    assert "6 shards: 0 complete, 6 to encode" in log and "encoded 42 items (2 errors)" in log, log
    first = pq.read_table(ray_out)
    assert first.num_rows == 42 and first.column("id").to_pylist() == sorted(first.column("id").to_pylist())
    assert str(first.schema.field("audio_codes").type) == "list<element: list<element: list<element: int64>>>"

    # The broken clips are rows with the clvp message; their codes are null.
    for row in first.filter(first.column("error").is_valid()).to_pylist():
        assert row["id"] in BROKEN and BROKEN[row["id"]] in row["error"], row
        assert f"{row['id']}.wav" in row["error"] and row["audio_codes"] is None, row
    assert first.column("error").null_count == 40

    # Every good clip: the CLI's codes, length and pad.
    cli = cli_codes(sorted(corpus.glob("clip*.wav")), model, bw, tmp_path / "cli")
    check_against_cli(first, cli)

    # A rerun with everything there starts nothing; one without a shard encodes only that shard.
    before = shard_times(ray_out)
    assert len(before) == 6 and not [p for p in ray_out.iterdir() if p.name.startswith(".")]
    log = run_example("ray_encodec.py", *common, "--output", ray_out)
    assert "6 shards: 6 complete, 0 to encode" in log and shard_times(ray_out) == before, log
    lost = sorted(before)[2]
    (ray_out / lost).unlink()
    log = run_example("ray_encodec.py", *common, "--actors", 1, "--num-cpus", 2, "--output", ray_out)
    assert "6 shards: 5 complete, 1 to encode" in log and "encoded 8 items (0 errors) into 1 shards" in log, log
    after = shard_times(ray_out)
    assert after.keys() == before.keys() and after[lost] > before[lost]
    assert {k: v for k, v in after.items() if k != lost} == {k: v for k, v in before.items() if k != lost}
    assert pq.read_table(ray_out).equals(first)

    # datasets.map(num_proc=2): the same shard files, the same rows.
    ds_out = tmp_path / "datasets"
    log = run_example("datasets_encodec.py", *common, "--num-proc", 2, "--output", ds_out)
    assert "encoded 42 items (2 errors) into 6 shards" in log, log
    assert sorted(shard_times(ds_out)) == sorted(before)
    assert pq.read_table(ds_out).equals(first)


def test_stereo_48k_chunked_datasets(corpus, tmp_path):
    """The 48 kHz stereo layout (chunks, scales) through datasets.map, on a part of the corpus (Parquet manifest)."""
    import pyarrow as pa

    items = ["clip03", "clip09", "clip20", "clip29", "broken_text"]
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"id": items, "path": [str(corpus / f"{i}.wav") for i in items]}), manifest)
    out = tmp_path / "out"
    log = run_example(
        "datasets_encodec.py", "--manifest", manifest, "--model", TINY_48K, "--bandwidth", 7.2, "--output", out
    )
    assert "1 shards: 0 complete, 1 to encode" in log and "encoded 5 items (1 errors)" in log, log
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == sorted(items)
    cli = cli_codes([corpus / f"{i}.wav" for i in items[:-1]], TINY_48K, 7.2, tmp_path / "cli")
    assert all(ref["audio_codes"].shape[0] > 1 for ref in cli.values())  # chunked
    check_against_cli(table, cli)
