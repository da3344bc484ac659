"""Shared pieces of the binding's tests: the repository's fixtures and the one tolerance table."""

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "fixtures"
TOLERANCES = json.loads((ROOT / "crates" / "clvp-parity" / "tolerances.json").read_text())


def close(ours, ref, component):
    """numpy's allclose with `component`'s row of crates/clvp-parity/tolerances.json (what the Rust tests use):
    `|ours - ref| <= atol + rtol |ref|`, or `atol * max|ref|` for scaled rows. Returns the worst error."""
    row = TOLERANCES.get(component, {"atol": 0.0})
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{component}: shape {ours.shape} vs reference {ref.shape}"
    err = np.abs(ours - ref)
    if row.get("scaled"):
        bound = row["atol"] * np.abs(ref).max()
    else:
        bound = row["atol"] + row.get("rtol", 0.0) * np.abs(ref)
    assert np.all(err <= bound), f"{component}: worst error {err.max():.3e} over the tolerance"
    return float(err.max()) if err.size else 0.0


@pytest.fixture(scope="session")
def fixtures():
    return FIXTURES
