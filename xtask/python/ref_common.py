"""Helpers the reference scripts share (imported from the scripts' own folder, which Python puts first on sys.path)."""

import json

from safetensors.torch import save_file


def save_st(tensors, path, metadata):
    """save_file with a canonical header: safetensors serialises the metadata map in hash order, so the keys are
    re-sorted in place (same length) to make the file byte-identical from run to run."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":")).encode()
        assert len(text) <= n
        f.seek(8)
        f.write(text + b" " * (n - len(text)))
