"""The Python half of scripts/test-slurm.sh: makes the test corpus and checks what `clvp batch` left behind.

    slurm_check.py gen DIR                      # DIR/data/manifest.jsonl, the clips, DIR/expected.json
    slurm_check.py check-ref REF CORPUS RUN     # the single-process reference (--shard 0 --num-shards 1)
    slurm_check.py check-run OUT REF CORPUS N RUN [--resumed TASK RUN2]

RUN is a folder holding, per array task I, `task-I.err` (the task's stderr) and `rc-I` (its exit status, written by
the job script); for the reference, task 0. With --resumed, task TASK of RUN was cancelled mid-way and resubmitted
alone into RUN2: its first stderr must show a start and no end, and RUN2's must show `D already done` with D > 0.

Failed checks are printed (passed ones too with CLVP_TEST_VERBOSE=1); any failure makes the exit status 1.
The corpus generator is the standard library only (wave, struct, random with a fixed seed). The row comparisons need
pyarrow: without it they print SKIP and every other check still runs.
"""

import importlib.util
import json
import math
import os
import random
import re
import struct
import sys
import wave
from pathlib import Path

SEED = 20240611
N_ITEMS = 60  # manifest lines, the broken three included
RATES = [8000, 16000, 22050, 24000, 44100, 48000]
BROKEN = ["broken_missing", "broken_text", "broken_trunc"]

START = re.compile(r"^batch: shard (\d+)/(\d+): (\d+) items, (\d+) already done, (\d+) to compute\s*$")
DONE = re.compile(r"^batch: shard (\d+)/(\d+): done, (\d+) ok, (\d+) failed\s*$")

VERBOSE = bool(os.environ.get("CLVP_TEST_VERBOSE"))
failures, passed = [], []


def check(cond, what, key=False):
    """Records a check: a failed one is printed at once (all are listed again at the end, then the exit status is
    1); a passed one if it is a key one, else only with CLVP_TEST_VERBOSE set."""
    if cond:
        passed.append(what)
        if VERBOSE or key:
            print(f"  ok: {what}")
    else:
        print(f"  FAIL: {what}")
        failures.append(what)
    return cond


def finish():
    if failures:
        print(f"  {len(failures)} check(s) failed, {len(passed)} passed:")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print(f"  all {len(passed)} checks passed")


# ---------------------------------------------------------------------------------------------------------------
# gen


def write_wav(path, rate, channels, seconds, width, rng):
    """A seeded tone-plus-noise clip: each channel its own frequency; 16-bit or 24-bit PCM."""
    n = max(1, int(seconds * rate))
    freqs = [rng.uniform(80.0, min(4000.0, rate / 2.5)) for _ in range(channels)]
    amp = rng.uniform(0.2, 0.6)
    full = (1 << (8 * width - 1)) - 1
    out = bytearray()
    for t in range(n):
        for c in range(channels):
            x = amp * math.sin(2.0 * math.pi * freqs[c] * t / rate) + 0.05 * (rng.random() - 0.5)
            v = int(round(max(-1.0, min(1.0, x)) * full))
            out += struct.pack("<h", v) if width == 2 else struct.pack("<i", v)[:3]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(out))
    return n


def gen(root):
    """57 good clips and 3 broken entries under ROOT, listed shuffled in ROOT/data/manifest.jsonl.

    Most paths are relative to the manifest's folder (ROOT/data), some in a subfolder; every 8th good clip lives
    outside that folder (ROOT/elsewhere) and is listed by absolute path. The broken ones: a WAV cut to 20 bytes, a
    text file named .wav, and a path that does not exist."""
    rng = random.Random(SEED)
    root = Path(root).resolve()
    data, sub, elsewhere = root / "data", root / "data" / "audio" / "sub", root / "elsewhere"
    for d in (sub, elsewhere):
        d.mkdir(parents=True, exist_ok=True)
    rows, stats = [], []
    n_good = N_ITEMS - len(BROKEN)
    for k in range(n_good):
        ident = f"clip_{k:03d}"
        rate = RATES[k % len(RATES)] if k < len(RATES) * 2 else rng.choice(RATES)  # every rate, mono and stereo
        channels = 1 + (k // len(RATES)) % 2 if k < len(RATES) * 2 else rng.choice([1, 2])
        seconds = rng.uniform(0.2, 4.0)
        width = 3 if k % 5 == 4 else 2
        if k % 8 == 7:
            path = elsewhere / f"{ident}.wav"
            listed = str(path)  # absolute
        elif k % 3 == 1:
            path = sub / f"{ident}.wav"
            listed = f"audio/sub/{ident}.wav"
        else:
            path = data / "audio" / f"{ident}.wav"
            listed = f"audio/{ident}.wav"
        frames = write_wav(path, rate, channels, seconds, width, rng)
        rows.append({"id": ident, "audio": listed})
        stats.append((ident, rate, channels, 8 * width, frames / rate, listed))
    good_bytes = (data / "audio" / "clip_000.wav").read_bytes()
    (data / "audio" / "broken_trunc.wav").write_bytes(good_bytes[:20])
    (data / "audio" / "broken_text.wav").write_text("this is not a WAV file\n")
    rows += [
        {"id": "broken_trunc", "audio": "audio/broken_trunc.wav"},
        {"id": "broken_text", "audio": "audio/broken_text.wav"},
        {"id": "broken_missing", "audio": "audio/does_not_exist.wav"},
    ]
    rng.shuffle(rows)
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = {"items": len(rows), "ok": n_good, "failed": len(BROKEN), "broken": BROKEN}
    (root / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    n_abs = sum(1 for r in rows if r["audio"].startswith("/"))
    seconds = sum(s[4] for s in stats)
    print(
        f"corpus: {len(rows)} manifest lines ({n_good} clips, {len(BROKEN)} broken, {n_abs} absolute paths), "
        f"{seconds:.1f} s of audio, rates {sorted({s[1] for s in stats})}, channels {sorted({s[2] for s in stats})}, "
        f"bits {sorted({s[3] for s in stats})}, lengths {min(s[4] for s in stats):.2f}-{max(s[4] for s in stats):.2f} s"
    )


# ---------------------------------------------------------------------------------------------------------------
# checks


def shard_name(i, n):
    return f"shard-{i:05d}-of-{n:05d}"


def load_expected(corpus):
    return json.loads((Path(corpus) / "expected.json").read_text())


def parse_stderr(path):
    """(start lines, done lines) of a task's stderr, each as a tuple of ints."""
    starts, dones = [], []
    text = Path(path).read_text(errors="replace") if Path(path).exists() else ""
    for line in text.splitlines():
        if m := START.match(line):
            starts.append(tuple(map(int, m.groups())))
        elif m := DONE.match(line):
            dones.append(tuple(map(int, m.groups())))
    return starts, dones


def manifest_ids(corpus):
    text = (Path(corpus) / "data" / "manifest.jsonl").read_text()
    return [json.loads(line)["id"] for line in text.splitlines() if line.strip()]


def check_order(what, ids, corpus, key=False):
    """The rows come sorted by id or in manifest order (the manifest is shuffled, so the two differ): returns the
    set of those the rows satisfy (a short list may satisfy both)."""
    pos = {i: k for k, i in enumerate(manifest_ids(corpus))}
    orders = set()
    if ids == sorted(ids):
        orders.add("sorted by id")
    if ids == sorted(ids, key=lambda i: pos.get(i, -1)):
        orders.add("in manifest order")
    got = " and ".join(sorted(orders)) or "neither sorted by id nor in manifest order"
    check(orders, f"{what}: {len(ids)} rows, {got}", key)
    return orders


def read_rc(run, task):
    p = Path(run) / f"rc-{task}"
    return int(p.read_text().strip()) if p.exists() else None


def check_layout(out, n, expected):
    """Every shard's result, error and record files, _job.json, no .partial; the record counts; returns them."""
    out = Path(out)
    counts = {}
    check((out / "_job.json").is_file(), f"{out.name}/_job.json exists")
    check(not (out / ".partial").exists(), f"{out.name}/.partial is gone")
    for i in range(n):
        name = shard_name(i, n)
        check((out / f"{name}.parquet").is_file(), f"{out.name}/{name}.parquet exists")
        check((out / "_errors" / f"{name}.parquet").is_file(), f"{out.name}/_errors/{name}.parquet exists")
        rec = out / "_records" / f"{name}.json"
        if check(rec.is_file(), f"{out.name}/_records/{name}.json exists"):
            c = json.loads(rec.read_text())["counts"]
            counts[i] = (c["items"], c["ok"], c["failed"])
            what = f"shard {i}: items {c['items']} = ok {c['ok']} + failed {c['failed']}"
            check(c["items"] == c["ok"] + c["failed"], what)
    if len(counts) == n:
        tot = tuple(sum(c[k] for c in counts.values()) for k in range(3))
        want = (expected["items"], expected["ok"], expected["failed"])
        check(tot == want, f"{out.name}: record counts add up to items/ok/failed {tot}, want {want}", key=True)
    return counts


def check_task_log(task, n, run, counts, resumed=False):
    """The task's start and done lines on stderr and its exit status agree with its record."""
    starts, dones = parse_stderr(Path(run) / f"task-{task}.err")
    what = f"task {task} ({Path(run).name}): one start and one done line on stderr"
    if not check(len(starts) == 1 and len(dones) == 1, what):
        return None
    (i, nn, t, d, c), (i2, nn2, ok, failed) = starts[0], dones[0]
    what = f"task {task}: lines name shard {task}/{n} (got {i}/{nn}, {i2}/{nn2})"
    check((i, nn, i2, nn2) == (task, n, task, n), what)
    if resumed:
        check(d > 0, f"task {task} resumed: {d} already done > 0", key=True)
        check(c == t - d, f"task {task} resumed: {c} to compute = {t} items - {d} done", key=True)
    else:
        check(d == 0 and c == t, f"task {task}: fresh start ({t} items, {d} already done, {c} to compute)")
    if task in counts:
        what = f"task {task}: stderr items/ok/failed {(t, ok, failed)} = record {counts[task]}"
        check((t, ok, failed) == counts[task], what)
    rc = read_rc(run, task)
    want = 0 if failed == 0 else 2
    check(rc == want, f"task {task}: exit status {rc}, want {want} ({failed} failed)")
    return starts[0]


def read_rows(paths):
    """(schema, rows) of the parquet files: each row a canonical string of its (field, value) pairs in order."""
    import pyarrow.parquet as pq

    schema, rows = None, []
    for p in paths:
        table = pq.read_table(p)
        if schema is None:
            schema = table.schema.remove_metadata()
        elif not table.schema.remove_metadata().equals(schema):
            check(False, f"{p} has the schema of the first file ({table.schema} vs {schema})")
        names = table.schema.names
        rows += [repr([(k, r[k]) for k in names]) for r in table.to_pylist()]
    return schema, rows


def ids_of(paths):
    import pyarrow.parquet as pq

    return [i for p in paths for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


def have_pyarrow():
    if importlib.util.find_spec("pyarrow") is None:
        print("  SKIP: row comparisons (no pyarrow in this Python: target/pyexamples/bin/python has it)")
        return False
    return True


def check_ref(ref, corpus, run):
    print(f"checking the reference {ref}")
    expected = load_expected(corpus)
    counts = check_layout(ref, 1, expected)
    check_task_log(0, 1, run, counts)
    if have_pyarrow():
        ref = Path(ref)
        ids = ids_of([ref / f"{shard_name(0, 1)}.parquet"])
        check(len(ids) == expected["ok"], f"reference: {len(ids)} result rows, want {expected['ok']}")
        check_order("reference", ids, corpus, key=True)
        err = sorted(ids_of([ref / "_errors" / f"{shard_name(0, 1)}.parquet"]))
        want = sorted(expected["broken"])
        check(err == want, f"reference: error ids {err}, want {want}", key=True)
    finish()


def check_run(out, ref, corpus, n, run, resumed=None, run2=None):
    print(f"checking the {n}-task array output {out}")
    expected = load_expected(corpus)
    counts = check_layout(out, n, expected)
    for task in range(n):
        if task != resumed:
            check_task_log(task, n, run, counts)
            continue
        # The cancelled try: it started fresh and never finished; then the resubmitted one resumed.
        starts, dones = parse_stderr(Path(run) / f"task-{task}.err")
        check(len(starts) == 1 and starts[0][3] == 0, f"task {task} first try: one fresh start line ({starts})")
        check(not dones, f"task {task} first try: no done line (it was cancelled mid-way)")
        got = check_task_log(task, n, run2, counts, resumed=True)
        if got and starts:
            check(got[2] == starts[0][2], f"task {task}: same item count on both tries ({starts[0][2]}, {got[2]})")
    if not have_pyarrow():
        finish()
        return
    out, ref = Path(out), Path(ref)
    shards = [out / f"{shard_name(i, n)}.parquet" for i in range(n)]
    if not all(p.is_file() for p in shards):
        finish()
        return
    orders = {"sorted by id", "in manifest order"}
    for i, p in enumerate(shards):
        ids = ids_of([p])
        orders &= check_order(f"shard {i}", ids, corpus)
        if i in counts:
            check(len(ids) == counts[i][1], f"shard {i}: {len(ids)} rows = record's ok {counts[i][1]}")
    check(orders, f"every shard's rows are {' and '.join(sorted(orders)) or 'in one same order'}", key=True)
    all_ids = ids_of(shards)
    check(len(all_ids) == len(set(all_ids)), "no id in two shards")
    ref_schema, ref_rows = read_rows([ref / f"{shard_name(0, 1)}.parquet"])
    schema, rows = read_rows(shards)
    check(schema is not None and schema.equals(ref_schema), "the shards' schema equals the reference's", key=True)
    ref_rows.sort()
    rows.sort()
    same = rows == ref_rows
    if not same:
        only_ref = sorted(set(ref_rows) - set(rows))
        only_out = sorted(set(rows) - set(ref_rows))
        print(f"    {len(only_ref)} rows only in the reference, {len(only_out)} only in the shards; first ones:")
        for r in only_ref[:2]:
            print(f"    ref: {r[:300]}")
        for r in only_out[:2]:
            print(f"    out: {r[:300]}")
    what = f"the union of the {n} shards equals the reference row for row ({len(rows)} vs {len(ref_rows)} rows)"
    check(same, what, key=True)
    errs = [out / "_errors" / f"{shard_name(i, n)}.parquet" for i in range(n)]
    if all(p.is_file() for p in errs):
        got = sorted(ids_of(errs))
        want = sorted(ids_of([ref / "_errors" / f"{shard_name(0, 1)}.parquet"]))
        check(got == want, f"the shards' error ids {got} equal the reference's {want}", key=True)
        _, err_rows = read_rows(errs)
        _, ref_err_rows = read_rows([ref / "_errors" / f"{shard_name(0, 1)}.parquet"])
        if sorted(err_rows) != sorted(ref_err_rows):
            print("  note: the error messages differ from the reference's (only the ids must match):")
            for r in sorted(set(err_rows) ^ set(ref_err_rows)):
                print(f"    {r[:300]}")
    finish()


def main(argv):
    if len(argv) >= 2 and argv[0] == "gen":
        gen(argv[1])
    elif len(argv) == 4 and argv[0] == "check-ref":
        check_ref(*argv[1:])
    elif len(argv) in (6, 9) and argv[0] == "check-run":
        out, ref, corpus, n, run = argv[1:6]
        resumed, run2 = (int(argv[7]), argv[8]) if len(argv) == 9 and argv[6] == "--resumed" else (None, None)
        check_run(out, ref, corpus, int(n), run, resumed, run2)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
