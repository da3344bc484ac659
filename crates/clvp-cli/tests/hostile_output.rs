//! Hostile output locations through the `clvp` binary: a missing or non-directory parent, an output that is a
//! directory, a read-only directory, a pair of outputs of which one cannot be written, a wrong extension.
//! See `common/mod.rs`.

mod common;

use std::path::{Path, PathBuf};

use clvp_parity::fixture_path;

use common::*;

#[test]
fn hostile_output_locations_through_the_cli() {
    let d = Dirs::new();
    let (root, out) = (d.root.as_path(), d.out.as_path());
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let tiny = fixture("clvp/tiny");
    let enc24 = fixture("encodec/tiny_24k");
    let e2e24 = fixture_path("encodec/e2e_24k.wav");
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);
    let good_ecdc = i("good.ecdc");
    encode_good(&good_ecdc);

    let ro = root.join("read-only");
    std::fs::create_dir_all(&ro).expect("mkdir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    }
    // Root ignores mode bits; sysfs refuses new files even to root. Without either the case is skipped (said).
    let read_only = if unwritable(&ro) {
        Some(ro.clone())
    } else if Path::new("/sys").is_dir() && unwritable(Path::new("/sys")) {
        Some(PathBuf::from("/sys"))
    } else {
        None
    };
    let missing_dir = root.join("no-such-dir");
    let file_parent = i("ok.wav").join("x.safetensors");
    let as_dir = out.join("is-a-dir.safetensors");
    std::fs::create_dir_all(&as_dir).expect("mkdir");
    let f = features_args;

    let mut cases = vec![
        fails(
            "output parent missing",
            &f(okw, &missing_dir.join("x.safetensors"))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[&missing_dir.join("x.safetensors")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "output parent is a file",
            &f(okw, &file_parent)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[&file_parent],
            &["ok.wav is not a directory"],
        ),
        fails(
            "output is a directory",
            &f(okw, &as_dir)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[],
            &["is-a-dir.safetensors", "is a directory"],
        ),
        fails(
            "second output's directory missing: neither written",
            &[
                "features",
                "--audio",
                okw,
                "--output",
                s(&o("pair.safetensors")),
                "--png",
                s(&missing_dir.join("pair.png")),
            ],
            &[&o("pair.safetensors"), &missing_dir.join("pair.png")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            ".ecdc into a missing directory",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&e2e24),
                s(&missing_dir.join("x.ecdc")),
            ],
            &[&missing_dir.join("x.ecdc")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "generate into a missing directory",
            &[
                "generate",
                "--model",
                &tiny,
                "--text",
                "Hi.",
                "--voice",
                okw,
                "--greedy",
                "--output",
                s(&missing_dir.join("g.safetensors")),
            ],
            &[&missing_dir.join("g.safetensors")],
            &["no-such-dir", "does not exist"],
        ),
        fails(
            "encode output extension",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&e2e24),
                s(&o("x.mp3")),
            ],
            &[&o("x.mp3")],
            &[".ecdc or .safetensors"],
        ),
    ];
    match &read_only {
        Some(dir) => {
            let p = dir.join("x.safetensors");
            let w = dir.join("x.wav");
            cases.push(fails(
                "output in a read-only directory",
                &f(okw, &p).iter().map(String::as_str).collect::<Vec<_>>(),
                &[&p],
                &["cannot create a file in", "permission denied"],
            ));
            cases.push(fails(
                "decoded WAV into a read-only directory",
                &["encodec", "decode", "--model", &enc24, s(&good_ecdc), s(&w)],
                &[&w],
                &["cannot create a file in", "permission denied"],
            ));
        }
        None => eprintln!(
            "skipped the read-only directory cases: this user can write into a 0555 directory and /sys"
        ),
    }

    let failures = check_cases(&cases, &d.logs, 7);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755));
    }
    report(&failures, cases.len());
}
