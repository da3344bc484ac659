#!/usr/bin/env bash
# Throughput of `clvp batch encodec-encode` (docs/corpus.md, "Throughput"): a generated corpus encoded
#   1. by a shell loop over `clvp encodec encode` (a process, and a model load, per file),
#   2. by `clvp batch` in one process (one load, every core),
#   3. by `clvp batch` as 2 shards at once, each with --threads $(nproc)/2 (as 2 array tasks on one node).
# Prints items/s and audio-seconds/s of each, and checks that the batch runs' codes equal the loop's.
#
#   scripts/corpus-throughput.sh MODEL_DIR [CLIPS]     # CLVP=target/release/clvp (built here when missing)
#
# MODEL_DIR: a 24 kHz EnCodec checkpoint, e.g. the full-size random-init one of
# `cargo xtask bench` (target/bench/encodec/full_24k). CLIPS (default 40): clips of 3 to 15 s, mixed rates and
# channels, seeded.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: scripts/corpus-throughput.sh MODEL_DIR [CLIPS]}
CLIPS=${2:-40}
CLVP=${CLVP:-target/release/clvp}
BW=${CLVP_BANDWIDTH:-6}
[ -x "$CLVP" ] || cargo build --release -p clvp-cli --bin clvp
WORK=$(mktemp -d /tmp/clvp-throughput.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CPUS=$(nproc)
# pyarrow for the comparison of the codes: the examples' venv when there is one.
PY=${CLVP_TEST_PYTHON:-python3}
[ -x target/pyexamples/bin/python ] && PY=${CLVP_TEST_PYTHON:-target/pyexamples/bin/python}
HALF=$(((CPUS + 1) / 2))

python3 - "$WORK" "$CLIPS" <<'EOF'
import json, math, random, struct, sys, wave
from pathlib import Path
work, n = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(2025)
(work / "clips").mkdir()
lines, total = [], 0.0
for k in range(n):
    rate = rng.choice([16000, 22050, 24000, 44100, 48000])
    ch = rng.choice([1, 2])
    secs = rng.uniform(3.0, 15.0)
    frames = int(secs * rate)
    f0 = rng.uniform(90, 300)
    buf = bytearray()
    for i in range(frames):
        t = i / rate
        x = 0.3 * math.sin(2 * math.pi * f0 * t * (1 + 0.1 * math.sin(3 * t))) + 0.05 * (rng.random() - 0.5)
        buf += struct.pack("<h", int(x * 32767)) * ch
    with wave.open(str(work / "clips" / f"c{k:03d}.wav"), "wb") as w:
        w.setnchannels(ch); w.setsampwidth(2); w.setframerate(rate); w.writeframes(bytes(buf))
    lines.append(json.dumps({"id": f"c{k:03d}", "audio": f"clips/c{k:03d}.wav"}))
    total += frames / rate
(work / "manifest.jsonl").write_text("\n".join(lines) + "\n")
(work / "seconds").write_text(f"{total:.3f}\n")
EOF
SECONDS_OF_AUDIO=$(cat "$WORK/seconds")
echo "corpus: $CLIPS clips, $SECONDS_OF_AUDIO s of audio; model $MODEL; $CPUS cores; $BW kbps"

now() { date +%s.%N; }
report() { # name start end
  python3 -c "import sys; n, s, a, b = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]); w = b - a; \
print(f'| {n} | {w:.1f} s | {$CLIPS / w:.2f} | {s / w:.1f} |')" "$1" "$SECONDS_OF_AUDIO" "$2" "$3"
}

echo "| run | wall | items/s | audio-s/s |"
echo "|---|---|---|---|"
mkdir -p "$WORK/loop"
t0=$(now)
for f in "$WORK"/clips/*.wav; do
  "$CLVP" encodec encode --model "$MODEL" -b "$BW" "$f" "$WORK/loop/$(basename "$f" .wav).safetensors" 2>/dev/null
done
t1=$(now)
report "shell loop over \`clvp encodec encode\`" "$t0" "$t1"

t0=$(now)
"$CLVP" batch encodec-encode --manifest "$WORK/manifest.jsonl" --output "$WORK/one" --model "$MODEL" -b "$BW" 2>"$WORK/one.log"
t1=$(now)
report "\`clvp batch\`, 1 shard" "$t0" "$t1"

t0=$(now)
for i in 0 1; do
  "$CLVP" batch encodec-encode --manifest "$WORK/manifest.jsonl" --output "$WORK/two" --model "$MODEL" -b "$BW" \
    --shard "$i" --num-shards 2 --threads "$HALF" 2>"$WORK/two-$i.log" &
done
wait
t1=$(now)
report "\`clvp batch\`, 2 shards at once (--threads $HALF each)" "$t0" "$t1"

# The batch rows equal the loop's files (audio_codes [1, 1, K, T] vs [[K][T]]).
"$PY" - "$WORK" <<'EOF'
import json, struct, sys, subprocess
from pathlib import Path
work = Path(sys.argv[1])
def st_codes(path):
    raw = path.read_bytes(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
    a, b = head["audio_codes"]["data_offsets"]; body = raw[8 + n:][a:b]
    return list(struct.unpack(f"<{len(body) // 8}q", body))
try:
    import pyarrow.parquet as pq
except ImportError:
    print("(pyarrow missing: the codes were not compared)"); sys.exit(0)
for out in ["one", "two"]:
    rows = pq.read_table(work / out).to_pylist()
    assert len(rows) == len(list((work / "loop").iterdir())), out
    for r in rows:
        ours = [c for chunk in r["audio_codes"] for q in chunk for c in q]
        assert ours == st_codes(work / "loop" / f"{r['id']}.safetensors"), (out, r["id"])
print("codes: the batch runs equal the loop's, item for item")
EOF
