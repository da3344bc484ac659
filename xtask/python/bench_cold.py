"""Cold-process timing for `cargo xtask bench` P8: run a command `--warmup` times untimed, then `--runs` times, each
as a fresh process, and print the one JSON result line of `bench_common.report`: the median wall-clock seconds
from spawn to exit, and the largest peak RSS of the timed processes (`wait4`'s `ru_maxrss`, KiB on Linux).

Usage: python bench_cold.py --runs N --warmup W -- COMMAND [ARG ...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def once(cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{cmd[0]} exited with {code}:\n{err}")
    return dt, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        sys.exit("no command")
    for _ in range(args.warmup):
        once(cmd)
    results = [once(cmd) for _ in range(args.runs)]
    print(json.dumps({"median_s": statistics.median(t for t, _ in results), "runs": len(results),
                      "peak_rss_bytes": max(r for _, r in results)}))


if __name__ == "__main__":
    main()
