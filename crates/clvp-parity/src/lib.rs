//! Parity support shared by the crates' tests and `cargo xtask parity-check`.
//!
//! * [`tolerance`](mod@tolerance): the one table of tolerances every parity comparison uses.
//! * [`compare`](mod@compare): element-wise comparison with a report of the worst elements.
//! * [`fixtures`]: where the committed fixtures live and how to read them.
//! * [`report`]: table-driven recording that lists every failing case and feeds the parity table.
//! * [`bench`](mod@bench): what the benchmark workers share (peak RSS).
//!
//! Every expected value comes from a committed reference script under `xtask/python/`, run against the
//! pinned Python reference (transformers 5.23.0, PyTorch 2.15.0, CPU, float32).

pub mod bench;
pub mod compare;
pub mod fixtures;
pub mod report;
#[cfg(feature = "burn")]
pub mod tensors;
pub mod tolerance;

pub use compare::{Comparison, compare, compare_ids};
pub use fixtures::{
    FixtureError, FixtureTensor, fixture_path, fixtures_dir, read_json, read_safetensors,
};
pub use report::{Recorder, Row};
pub use tolerance::{Tolerance, tolerance};
