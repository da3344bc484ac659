"""What the `cargo xtask bench` reference scripts share: the timing loop and the one JSON result line."""

import json
import resource
import statistics
import time


def time_runs(once, runs, warmup):
    """Call `once` `warmup` times untimed, then `runs` times; the wall-clock seconds of each counted call."""
    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return times


def report(times):
    """Print {"median_s", "runs", "peak_rss_bytes"} (peak RSS of this process; ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"median_s": statistics.median(times), "runs": len(times), "peak_rss_bytes": peak}))
