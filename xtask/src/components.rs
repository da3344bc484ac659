//! The components that `parity-check` knows. A component = a reference script under `xtask/python/` that
//! writes reference outputs into a fixture directory, and a Rust integration test that compares against
//! whatever fixture directory `CLVP_FIXTURES` names (the committed `fixtures/` by default).
//! Components register here as they land.

use std::ffi::OsString;
use std::path::PathBuf;

/// An extracted reference sdist that a script can receive as a command-line argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdist {
    /// tortoise-tts 3.0.0 (`--tortoise DIR`): vocabulary, `mel_norms`, Tortoise's own models and generation.
    Tortoise,
    /// encodec 0.1.1 (`--encodec DIR`): the original `.ecdc` writer/reader and the test wavs.
    Encodec,
}

/// The pinned Python environment a reference script runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyEnv {
    /// `target/pyenv` (`pyenv::ensure`): transformers 5.23.0 on torch 2.15.0.
    Reference,
    /// `target/pyenv-tortoise` (`pyenv::ensure_tortoise`): transformers 4.31.0 for Tortoise's own code, torch from
    /// the reference environment.
    Tortoise,
}

/// Where the extracted sdists are on this machine (fetched once per run).
pub struct SdistDirs {
    pub tortoise: PathBuf,
    pub encodec: PathBuf,
}

/// One parity component.
pub struct Component {
    /// Name shown in the table and accepted by `--only`.
    pub name: &'static str,
    /// Reference script under `xtask/python/`.
    pub script: &'static str,
    /// The Python environment that runs the script.
    pub env: PyEnv,
    /// Sub-directory of the fixture root the script writes and the test reads.
    pub fixture_dir: &'static str,
    /// Cargo package holding the comparison test.
    pub package: &'static str,
    /// Integration test targets that compare against the script's outputs.
    pub tests: &'static [&'static str],
    /// Tests of other packages that read the same outputs (`(package, test target)`).
    pub other_tests: &'static [(&'static str, &'static str)],
    /// The extracted sdists the script needs, each passed as `--<name> DIR`.
    pub sdists: &'static [Sdist],
    /// The script and tests have full-size cases (`--full` is passed on, and the ignored full-size tests run);
    /// the others do not depend on a model size and run as without `--full`.
    pub has_full: bool,
}

impl Component {
    /// Extra arguments for the reference script.
    pub fn script_args(&self, dirs: &SdistDirs) -> Vec<OsString> {
        let mut args = Vec::new();
        for s in self.sdists {
            let (flag, dir) = match s {
                Sdist::Tortoise => ("--tortoise", &dirs.tortoise),
                Sdist::Encodec => ("--encodec", &dirs.encodec),
            };
            args.push(flag.into());
            args.push(dir.as_os_str().to_owned());
        }
        args
    }
}

/// Every registered component, in dependency order.
pub const COMPONENTS: &[Component] = &[
    Component {
        name: "kernels",
        script: "ref_torch_sum.py",
        env: PyEnv::Reference,
        fixture_dir: "kernels",
        package: "clvp-kernels",
        tests: &["torch_sum"],
        other_tests: &[],
        has_full: false,
        sdists: &[],
    },
    Component {
        name: "tokenizer",
        script: "ref_tokenizer.py",
        env: PyEnv::Reference,
        fixture_dir: "text",
        package: "clvp-text",
        tests: &["parity"],
        other_tests: &[],
        has_full: false,
        sdists: &[],
    },
    Component {
        name: "features",
        script: "ref_features.py",
        env: PyEnv::Reference,
        fixture_dir: "audio",
        package: "clvp-audio",
        tests: &["parity"],
        other_tests: &[],
        has_full: false,
        sdists: &[Sdist::Tortoise],
    },
    Component {
        name: "hub",
        script: "ref_hub.py",
        env: PyEnv::Reference,
        fixture_dir: "hub",
        package: "clvp-hub",
        tests: &["parity"],
        other_tests: &[],
        has_full: false,
        sdists: &[],
    },
    Component {
        name: "clvp-nn",
        script: "ref_clvp_nn.py",
        env: PyEnv::Reference,
        fixture_dir: "clvp",
        package: "clvp-nn",
        tests: &["parity", "generate", "logits_processors"],
        other_tests: &[("clvp", "forward_parity")],
        has_full: true,
        sdists: &[],
    },
    Component {
        name: "encodec",
        script: "ref_encodec.py",
        env: PyEnv::Reference,
        fixture_dir: "encodec",
        package: "encodec-codec",
        tests: &["parity", "ecdc"],
        other_tests: &[],
        has_full: true,
        sdists: &[Sdist::Encodec],
    },
    Component {
        name: "meta-encodec",
        script: "ref_meta_encodec.py",
        env: PyEnv::Reference,
        fixture_dir: "encodec_meta",
        package: "encodec-codec",
        tests: &["meta"],
        other_tests: &[("clvp-cli", "encodec_meta")],
        has_full: true,
        sdists: &[Sdist::Encodec],
    },
    Component {
        name: "tortoise",
        script: "ref_tortoise.py",
        env: PyEnv::Tortoise,
        fixture_dir: "tortoise",
        package: "clvp-nn",
        tests: &["tortoise"],
        other_tests: &[],
        has_full: true,
        sdists: &[Sdist::Tortoise],
    },
];
