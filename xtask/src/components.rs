//! The components that `parity-check` knows. A component = a reference script under `xtask/python/` that
//! writes reference outputs into a fixture directory, and a Rust integration test that compares against
//! whatever fixture directory `CLVP_FIXTURES` names (the committed `fixtures/` by default).
//! Components register here as they land.

use std::ffi::OsString;
use std::path::Path;

/// One parity component.
pub struct Component {
    /// Name shown in the table and accepted by `--only`.
    pub name: &'static str,
    /// Reference script under `xtask/python/`.
    pub script: &'static str,
    /// Sub-directory of the fixture root the script writes and the test reads.
    pub fixture_dir: &'static str,
    /// Cargo package holding the comparison test.
    pub package: &'static str,
    /// Integration test targets that compare against the script's outputs.
    pub tests: &'static [&'static str],
    /// Whether the script needs the extracted tortoise-tts sdist (`--tortoise DIR`).
    pub needs_tortoise: bool,
}

impl Component {
    /// Extra arguments for the reference script.
    pub fn script_args(&self, tortoise: &Path) -> Vec<OsString> {
        if self.needs_tortoise {
            vec!["--tortoise".into(), tortoise.as_os_str().to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// Every registered component, in dependency order.
pub const COMPONENTS: &[Component] = &[
    Component {
        name: "tokenizer",
        script: "ref_tokenizer.py",
        fixture_dir: "text",
        package: "clvp-text",
        tests: &["parity"],
        needs_tortoise: false,
    },
    Component {
        name: "features",
        script: "ref_features.py",
        fixture_dir: "audio",
        package: "clvp-audio",
        tests: &["parity"],
        needs_tortoise: true,
    },
    Component {
        name: "hub",
        script: "ref_hub.py",
        fixture_dir: "hub",
        package: "clvp-hub",
        tests: &["parity"],
        needs_tortoise: false,
    },
    Component {
        name: "clvp-nn",
        script: "ref_clvp_nn.py",
        fixture_dir: "clvp",
        package: "clvp-nn",
        tests: &["parity", "generate"],
        needs_tortoise: false,
    },
];
