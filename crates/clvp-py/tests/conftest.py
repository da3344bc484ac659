"""Shared pieces of the binding's tests: the fixtures (the committed ones, or the fresh references of a
`cargo xtask parity-check` run named by CLVP_FIXTURES), the one tolerance table, and the rows of the parity
table's Python column (appended to CLVP_PARITY_REPORT when it is set)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("CLVP_FIXTURES") or ROOT / "fixtures")
TOLERANCES = json.loads((ROOT / "crates" / "clvp-parity" / "tolerances.json").read_text())
REPORT = os.environ.get("CLVP_PARITY_REPORT")

# The parity component whose reference each tolerance row checks (the table's first column).
COMPONENT_OF = {
    "features": "features",
    "encodec_latent": "encodec",
    "encodec_audio": "encodec",
    "nn": "clvp-nn",
}


def record(component, case, max_abs, passed, tolerance, detail="", max_rel=None):
    """One row of the parity table's Python column (only under `cargo xtask parity-check`)."""
    if not REPORT:
        return
    row = dict(component=component, case=case, max_abs=max_abs, max_rel=max_rel, tolerance=tolerance,
               passed=bool(passed), detail=detail, binding="python")
    with open(REPORT, "a") as f:
        f.write(json.dumps(row) + "\n")


def close(ours, ref, component, case=None):
    """numpy's allclose with `component`'s row of crates/clvp-parity/tolerances.json (what the Rust tests use):
    `|ours - ref| <= atol + rtol |ref|`, or `atol * max|ref|` for scaled rows. Returns the worst error."""
    row = TOLERANCES.get(component, {"atol": 0.0})
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{component}: shape {ours.shape} vs reference {ref.shape}"
    err = np.abs(ours - ref)
    if row.get("scaled"):
        bound = row["atol"] * np.abs(ref).max()
        tol = f"abs {row['atol']:g} x max|ref|"
    else:
        bound = row["atol"] + row.get("rtol", 0.0) * np.abs(ref)
        tol = f"abs {row['atol']:g}"
    worst = float(err.max()) if err.size else 0.0
    rel = float((err / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)).max()) if err.size else 0.0
    passed = bool(np.all(err <= bound))
    record(COMPONENT_OF.get(component, component), case or component, worst, passed, tol,
           "" if passed else f"{case or component}: worst error {worst:.3e} over the tolerance", rel)
    assert passed, f"{component}: worst error {worst:.3e} over the tolerance"
    return worst


def exact(ours, ref, component, case):
    """Equality (codes, token ids, shapes), recorded as a row of `component`."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    same = ours.shape == ref.shape and np.array_equal(ours, ref)
    record(component, case, 0.0 if same else None, same, "exact", "" if same else f"{case}: differs",
           0.0 if same else None)
    assert same, f"{component} {case}: {ours.shape} {ours.ravel()[:8]} vs reference {ref.shape} {ref.ravel()[:8]}"


@pytest.fixture(scope="session")
def fixtures():
    return FIXTURES
