#!/usr/bin/env python3
"""Write a long 16-bit PCM WAV file on the fly, for the memory measurements of docs/memory.md.

    python3 scripts/long_wav.py SECONDS [RATE [CHANNELS [OUT]]]

RATE defaults to 24000 Hz, CHANNELS to 1, OUT to `-` (standard output), so the audio can be piped straight
into `clvp ... -` without touching the disk. The header is written first with the final length (no seek),
then the samples block by block: the generator's own memory stays at one block (a few MB) whatever the length.
The signal is a gliding tone plus noise (a 7.3 s block, computed once at eight gains, the gains cycled), loud
enough to be a real workload for a codec, never clipping. Standard library only; 10 h take about a minute.
"""

import array
import math
import random
import struct
import sys


def header(frames: int, rate: int, channels: int) -> bytes:
    data = frames * channels * 2
    if data + 36 > 0xFFFFFFFF:
        sys.exit(f"{frames} frames of {channels} channel(s) do not fit a WAV file (4 GiB)")
    return (
        b"RIFF" + struct.pack("<I", data + 36) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
        + b"data" + struct.pack("<I", data)
    )


def block(rate: int, channels: int) -> list:
    """One 7.3 s block per channel: a tone gliding from 110 Hz up to 880 Hz, plus noise."""
    rng = random.Random(20261206)
    n = int(7.3 * rate)
    out = []
    for c in range(channels):
        phase, samples = 0.0, []
        for i in range(n):
            f = 110.0 * 8 ** (i / n) * (1 + 0.25 * c)
            phase += 2 * math.pi * f / rate
            samples.append(0.35 * math.sin(phase) + 0.05 * (rng.random() - 0.5))
        out.append(samples)
    return out


def main() -> None:
    args = sys.argv[1:]
    if not 1 <= len(args) <= 4:
        sys.exit(__doc__)
    seconds = float(args[0])
    rate = int(args[1]) if len(args) > 1 else 24000
    channels = int(args[2]) if len(args) > 2 else 1
    path = args[3] if len(args) > 3 else "-"
    frames = int(seconds * rate)
    base = block(rate, channels)
    n = len(base[0])
    variants = []
    for k in range(8):
        gain = 0.6 + 0.4 * math.sin(0.37 * k)
        pcm = array.array("h", bytes(2 * n * channels))
        for c in range(channels):
            ch = base[c]
            for i in range(n):
                pcm[i * channels + c] = int(32767 * gain * ch[i])
        if sys.byteorder == "big":
            pcm.byteswap()
        variants.append(pcm.tobytes())
    out = sys.stdout.buffer if path == "-" else open(path, "wb")
    try:
        out.write(header(frames, rate, channels))
        done, k = 0, 0
        while done < frames:
            take = min(n, frames - done)
            out.write(variants[k % 8][: take * channels * 2])
            done += take
            k += 1
        out.flush()
    except BrokenPipeError:
        # The reader stopped early (`features` reads only the first seconds): not an error here.
        sys.stderr.close()
    finally:
        if out is not sys.stdout.buffer:
            out.close()


if __name__ == "__main__":
    main()
