//! The pinned Python reference environment, created on demand under `target/pyenv`.
//!
//! `xtask/python/requirements.txt` pins every package (torch 2.15.0, transformers 5.23.0, their
//! dependencies, and the `nvidia-*` runtime wheels the CUDA build of torch needs to import on CPU). It is
//! installed with `pip --no-deps`, so nothing unpinned sneaks in (triton and cuda-bindings are left out).
//! A stamp file holds the hash of the requirements; a changed file rebuilds the environment.
//!
//! A second environment, `target/pyenv-tortoise` ([`ensure_tortoise`]), runs Tortoise TTS's own code on the
//! transformers 4.31.0 its setup.py pins (`xtask/python/requirements-tortoise.txt`), with the torch of the first
//! one (a `.pth` file; the requirements file says why).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{repo_root, run};

const TORTOISE: &str = "tortoise-tts==3.0.0";
const ENCODEC: &str = "encodec==0.1.1";

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Whether the environment of `python` exists and its stamp holds `want` (the hash of what it was built from).
fn stamped(python: &Path, stamp: &Path, want: &str) -> bool {
    python.exists() && std::fs::read_to_string(stamp).ok().as_deref() == Some(want)
}

/// `pip install --no-deps` of a pinned requirements file into `python`'s environment.
fn pip_install(python: &Path, requirements: &Path) -> Result<()> {
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--requirement",
        ])
        .arg(requirements))
}

/// Make sure the environment exists and matches the requirements file; return its python.
pub fn ensure() -> Result<PathBuf> {
    let root = repo_root();
    let env = root.join("target/pyenv");
    let python = env.join("bin/python");
    let req = root.join("xtask/python/requirements.txt");
    let req_text = std::fs::read(&req).with_context(|| format!("reading {}", req.display()))?;
    let want = format!("{:016x}\n", fnv1a(&req_text));
    let stamp = env.join("clvp-requirements.stamp");
    if stamped(&python, &stamp, &want) {
        return Ok(python);
    }
    eprintln!(
        "== creating the Python reference environment in {} (about 3 GB, a few minutes)",
        env.display()
    );
    let host = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let _ = std::fs::remove_dir_all(&env);
    run(Command::new(&host).args(["-m", "venv"]).arg(&env)).with_context(|| {
        format!("creating a venv with {host} (set PYTHON to another interpreter)")
    })?;
    pip_install(&python, &req).context("installing the pinned requirements")?;
    run(Command::new(&python).args([
        "-c",
        "import torch, transformers; assert torch.__version__.startswith('2.15.0'), torch.__version__; \
         assert transformers.__version__ == '5.23.0', transformers.__version__",
    ]))
    .context("the installed reference does not import")?;
    std::fs::write(&stamp, want).context("writing the environment stamp")?;
    Ok(python)
}

/// Make sure the Tortoise reference environment exists and matches its requirements; return its python.
///
/// `target/pyenv-tortoise` is a venv of the reference environment's interpreter with
/// `xtask/python/requirements-tortoise.txt` installed by `pip --no-deps` and a `clvp-reference-env.pth` file that
/// appends the reference environment's site-packages (torch) after its own, so that its transformers 4.31.0 and
/// the packages pinned beside it shadow the newer ones there. The stamp covers both requirements files and the
/// reference site-packages path, so a change of either environment rebuilds this one (a minute: ~16 MB of wheels).
pub fn ensure_tortoise() -> Result<PathBuf> {
    let reference = ensure()?;
    let root = repo_root();
    let env = root.join("target/pyenv-tortoise");
    let python = env.join("bin/python");
    let req = root.join("xtask/python/requirements-tortoise.txt");
    let reference_req = root.join("xtask/python/requirements.txt");
    let reference_site = purelib(&reference)?;
    let mut hashed = std::fs::read(&req).with_context(|| format!("reading {}", req.display()))?;
    hashed.extend(
        std::fs::read(&reference_req)
            .with_context(|| format!("reading {}", reference_req.display()))?,
    );
    hashed.extend(reference_site.as_bytes());
    let want = format!("{:016x}\n", fnv1a(&hashed));
    let stamp = env.join("clvp-requirements.stamp");
    if stamped(&python, &stamp, &want) {
        return Ok(python);
    }
    eprintln!(
        "== creating the Tortoise reference environment in {} (transformers 4.31.0; torch from {})",
        env.display(),
        reference_site
    );
    let _ = std::fs::remove_dir_all(&env);
    // The reference env's interpreter: the same Python as the torch build this env borrows.
    run(Command::new(&reference).args(["-m", "venv"]).arg(&env))
        .context("creating the Tortoise venv")?;
    pip_install(&python, &req).context("installing the pinned Tortoise requirements")?;
    let pth = Path::new(&purelib(&python)?).join("clvp-reference-env.pth");
    std::fs::write(&pth, format!("{reference_site}\n"))
        .with_context(|| format!("writing {}", pth.display()))?;
    run(Command::new(&python).args([
        "-c",
        "import torch, transformers, tokenizers, huggingface_hub, einops, rotary_embedding_torch, inflect, unidecode; \
         assert torch.__version__.startswith('2.15.0'), torch.__version__; \
         assert transformers.__version__ == '4.31.0', transformers.__version__; \
         assert 'pyenv-tortoise' in transformers.__file__, transformers.__file__; \
         assert tokenizers.__version__ == '0.13.3', tokenizers.__version__; \
         from transformers import GPT2Model, LogitsProcessorList",
    ]))
    .context("the installed Tortoise reference does not import")?;
    std::fs::write(&stamp, want).context("writing the environment stamp")?;
    Ok(python)
}

/// The site-packages directory (`purelib`) of a python.
fn purelib(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !out.status.success() {
        bail!("{} could not name its site-packages", python.display());
    }
    Ok(String::from_utf8(out.stdout)
        .context("site-packages path is not UTF-8")?
        .trim()
        .to_owned())
}

/// The extracted tortoise-tts 3.0.0 sdist (source of the vocabulary and `mel_norms`), fetched once.
pub fn tortoise_sdist(python: &PathBuf) -> Result<PathBuf> {
    fetch_sdist(
        python,
        TORTOISE,
        "tortoise-tts-3.0.0",
        &["tortoise/data/tokenizer.json"],
    )
}

/// The extracted encodec 0.1.1 sdist (the original `.ecdc` writer/reader and the test wavs), fetched once.
pub fn encodec_sdist(python: &PathBuf) -> Result<PathBuf> {
    fetch_sdist(
        python,
        ENCODEC,
        "encodec-0.1.1",
        &[
            "encodec/binary.py",
            "encodec/compress.py",
            "test_24k.wav",
            "test_48k.wav",
        ],
    )
}

/// Download the sdist `spec` (`name==version`) with pip into `target/reference` and extract it as `dir_name`,
/// once: it is reused while every `needed` file exists, and an error names the first missing one.
fn fetch_sdist(python: &PathBuf, spec: &str, dir_name: &str, needed: &[&str]) -> Result<PathBuf> {
    let base = repo_root().join("target/reference");
    let dir = base.join(dir_name);
    if needed.iter().all(|f| dir.join(f).exists()) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&base)?;
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
        ])
        .arg(&base)
        .arg(spec))
    .with_context(|| format!("downloading the {spec} sdist"))?;
    let tarball = base.join(format!("{dir_name}.tar.gz"));
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&base))
    .with_context(|| format!("extracting {}", tarball.display()))?;
    for f in needed {
        if !dir.join(f).exists() {
            bail!("{} has no {f}", dir.display());
        }
    }
    Ok(dir)
}

/// espeak-ng renders the real-speech cases; install it from Debian's packages when missing and root.
pub fn ensure_espeak() -> Result<()> {
    if Command::new("espeak-ng").arg("--version").output().is_ok() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        bail!("espeak-ng is needed for the speech cases: install it (apt-get install espeak-ng)");
    }
    eprintln!("== installing espeak-ng (apt-get)");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "espeak-ng"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
