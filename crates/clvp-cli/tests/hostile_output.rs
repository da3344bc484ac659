//! Hostile output locations through the `clvp` binary: a missing or non-directory parent, an output that is a
//! directory, a read-only directory, a pair of outputs of which one cannot be written, a wrong extension; an
//! output that is an input or another output; devices, FIFOs, sockets and symlinks as outputs; `-`; a signal
//! while writing. See `common/mod.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

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
            &[".ecdc, .safetensors or .jsonl"],
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

// ---------------------------------------------------------------------------------------------------------
// Where the output is not a plain new file: an input, another output, a device, a FIFO, a socket, a symlink,
// standard output. None of these may be touched in /dev: the tests make their own nodes.

/// `path`'s bytes, to check that a refused command left an input alone.
#[cfg(unix)]
fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

#[cfg(unix)]
#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let d = Dirs::new();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let enc24 = fixture("encodec/tiny_24k");
    let tiny = copy_checkpoint("clvp/tiny", &d.root, "tiny");
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);
    let same = i("same.wav");
    std::fs::copy(fixture_path("encodec/e2e_24k.wav"), &same).expect("copy");
    let codes = i("c.safetensors");
    encode_good(&codes);
    let hard = i("hard.wav");
    std::fs::hard_link(&same, &hard).expect("hard link");
    let link = i("link.wav");
    std::os::unix::fs::symlink("same.wav", &link).expect("symlink");
    // A clip per case that would overwrite it, so that each case fails on its own.
    let (dot, all, voice) = (i("dot.wav"), i("all.wav"), i("voice.wav"));
    for copy in [&dot, &all, &voice] {
        std::fs::copy(&ok_wav, copy).expect("copy");
    }
    let dotted = d.inp.join(".").join("dot.wav");
    let config = tiny.join("config.json");
    let fresh = o("pair.safetensors");
    let fresh_dotted = d.out.join(".").join("pair.safetensors");
    let inputs = [&same, &codes, &ok_wav, &dot, &all, &voice, &config];
    let before: Vec<Vec<u8>> = inputs.iter().map(|p| bytes(p)).collect();
    let roundtrip = |input: &Path, output: &Path| -> Vec<String> {
        [
            "encodec",
            "roundtrip",
            "--model",
            &enc24,
            "-b",
            "3.6",
            s(input),
            s(output),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let case = |name: &'static str, args: Vec<String>, outputs: &[&Path], needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(name, &args, outputs, needles)
    };

    let cases = vec![
        case(
            "roundtrip onto its input",
            roundtrip(&same, &same),
            &[],
            &["the output and the input name the same file", "same.wav"],
        ),
        fails(
            "decode onto its input",
            &["encodec", "decode", "--model", &enc24, s(&codes), s(&codes)],
            &[],
            &[
                "the output and the input name the same file",
                "c.safetensors",
            ],
        ),
        case(
            "roundtrip onto a hard link of its input",
            roundtrip(&same, &hard),
            &[],
            &[
                "the output",
                "hard.wav",
                "and the input",
                "same.wav",
                "name the same file",
            ],
        ),
        case(
            "roundtrip onto a symlink to its input",
            roundtrip(&same, &link),
            &[],
            &[
                "the output",
                "link.wav",
                "and the input",
                "same.wav",
                "name the same file",
            ],
        ),
        fails(
            "features onto its audio spelled ./",
            &["features", "--audio", s(&dot), "--output", s(&dotted)],
            &[],
            &["--output", "--audio", "dot.wav", "name the same file"],
        ),
        fails(
            "features: --output, --png and --audio all one file",
            &[
                "features",
                "--audio",
                s(&all),
                "--output",
                s(&all),
                "--png",
                s(&all),
            ],
            &[],
            &["--output and --audio name the same file", "all.wav"],
        ),
        fails(
            "features: --output and --png one new file",
            &[
                "features",
                "--audio",
                okw,
                "--output",
                s(&fresh),
                "--png",
                s(&fresh_dotted),
            ],
            &[&fresh],
            &[
                "--output",
                "--png",
                "pair.safetensors",
                "name the same file",
            ],
        ),
        fails(
            "features: --output and --png both standard output",
            &["features", "--audio", okw, "--output", "-", "--png", "-"],
            &[],
            &["--output and --png both name standard output"],
        ),
        fails(
            "generate onto its voice",
            &[
                "generate",
                "--model",
                s(&tiny),
                "--text",
                "Hi.",
                "--voice",
                s(&voice),
                "--greedy",
                "--output",
                s(&voice),
            ],
            &[],
            &["--output and --voice name the same file", "voice.wav"],
        ),
        fails(
            "generate to standard output (its ranking goes there)",
            &[
                "generate",
                "--model",
                s(&tiny),
                "--text",
                "Hi.",
                "--voice",
                okw,
                "--greedy",
                "--output",
                "-",
            ],
            &[],
            &["--output -", "not accepted", "ranking"],
        ),
        fails(
            "embed-text onto a file of its checkpoint",
            &[
                "embed-text",
                "--model",
                s(&tiny),
                "--text",
                "Hi.",
                "--output",
                s(&config),
            ],
            &[],
            &["--output", "--model", "config.json", "name the same file"],
        ),
    ];
    let mut failures = check_cases(&cases, &d.logs, 11);
    for (path, old) in inputs.iter().zip(&before) {
        if &bytes(path) != old {
            failures.push(format!("{} was overwritten", path.display()));
        }
    }
    // A refused command writes nothing, not even a file named `-` where it ran.
    if d.logs.join("-").exists() {
        failures.push("a file named - was written".into());
    }
    report(&failures, cases.len());
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_sockets_are_written_in_place() {
    let d = Dirs::new();
    let o = |name: &str| d.o(name);
    let enc24 = fixture("encodec/tiny_24k");
    let e2e24 = fixture("encodec/e2e_24k.wav");
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);
    let good = d.i("good.ecdc");
    encode_good(&good);
    let (null, full) = (o("null"), o("full"));
    let mut failures = Vec::new();
    let mut total = 0;
    match char_device(&null, 1, 3).and_then(|()| char_device(&full, 1, 7)) {
        Err(why) => eprintln!("skipped the device cases: {why}"),
        Ok(()) => {
            let png = o("beside-full.png");
            let cases = vec![
                succeeds(
                    "features into a null device",
                    &["features", "--audio", okw, "--output", s(&null)],
                    &[&null],
                    None,
                ),
                succeeds(
                    "encode into a null device (as .ecdc)",
                    &[
                        "encodec",
                        "encode",
                        "--model",
                        &enc24,
                        "-b",
                        "3.6",
                        &e2e24,
                        s(&null),
                    ],
                    &[&null],
                    None,
                ),
                succeeds(
                    "decode into a null device (as .wav)",
                    &["encodec", "decode", "--model", &enc24, s(&good), s(&null)],
                    &[&null],
                    None,
                ),
                fails(
                    "features into a full device",
                    &["features", "--audio", okw, "--output", s(&full)],
                    &[],
                    &["cannot write", "out/full", "no space left on device"],
                ),
                fails(
                    "features: a full device and a PNG, neither written",
                    &[
                        "features",
                        "--audio",
                        okw,
                        "--output",
                        s(&full),
                        "--png",
                        s(&png),
                    ],
                    &[&png],
                    &["out/full", "no space left on device"],
                ),
                fails(
                    "decode into a full device",
                    &["encodec", "decode", "--model", &enc24, s(&good), s(&full)],
                    &[],
                    &["out/full", "no space left on device"],
                ),
            ];
            total += cases.len();
            failures.extend(check_cases(&cases, &d.logs, 6));
            for dev in [&null, &full] {
                if !is_char_device(dev) {
                    failures.push(format!("{} is no longer a character device", dev.display()));
                }
            }
        }
    }

    // A socket cannot be opened as a file: refused, left as it is.
    let sock = o("sock.safetensors");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let cases = vec![fails(
        "features into a socket",
        &["features", "--audio", okw, "--output", s(&sock)],
        &[],
        &["sock.safetensors", "is a socket"],
    )];
    total += cases.len();
    failures.extend(check_cases(&cases, &d.logs, 1));
    {
        use std::os::unix::fs::FileTypeExt;
        if !std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket()) {
            failures.push("the socket was replaced".into());
        }
    }

    // A FIFO: the features arrive through it, and it stays a FIFO.
    let fifo = o("pipe.safetensors");
    mkfifo(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    // Detached: if the FIFO were replaced, the reader would wait for a writer forever.
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(&reader).map_err(|e| e.to_string()));
    });
    total += 1;
    let run = clvp(&d.logs)
        .args(["features", "--audio", okw, "--output", s(&fifo)])
        .output()
        .expect("clvp runs");
    if !run.status.success() {
        failures.push(format!(
            "[features into a FIFO] failed: {}",
            String::from_utf8_lossy(&run.stderr)
        ));
    } else if !is_fifo(&fifo) {
        failures.push("[features into a FIFO] the FIFO was replaced by a file".into());
    } else {
        match rx.recv_timeout(DEADLINE) {
            Ok(Ok(data)) => {
                let copy = o("from-fifo.safetensors");
                std::fs::write(&copy, &data).expect("write");
                if let Some(check) = features_ok()
                    && let Err(e) = check(&copy)
                {
                    failures.push(format!("[features into a FIFO] wrong result: {e}"));
                }
            }
            Ok(Err(e)) => failures.push(format!("[features into a FIFO] reader: {e}")),
            Err(e) => failures.push(format!("[features into a FIFO] reader: {e}")),
        }
    }
    let left = leftovers(&fifo);
    if !left.is_empty() {
        failures.push(format!("temporary files left: {left:?}"));
    }
    report(&failures, total);
}

#[cfg(unix)]
#[test]
fn a_symlinked_output_replaces_its_target_and_stays_a_link() {
    let d = Dirs::new();
    let (a, b) = (d.out.join("a"), d.out.join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);
    let target = b.join("t.safetensors");
    std::fs::write(&target, b"old").expect("write");
    let fresh = b.join("new.safetensors");
    // (link, what it says): to a file elsewhere, to a name not taken yet, to another link.
    let links = [
        (a.join("link.safetensors"), "../b/t.safetensors"),
        (a.join("dangling.safetensors"), "../b/new.safetensors"),
        (a.join("chain.safetensors"), "link.safetensors"),
    ];
    for (link, to) in &links {
        std::os::unix::fs::symlink(to, link).expect("symlink");
    }
    let features = |name: &'static str, link: &Path, written: &Path| {
        succeeds(
            name,
            &["features", "--audio", okw, "--output", s(link)],
            &[written],
            features_ok(),
        )
    };
    let cases = vec![
        features("features through a symlink", &links[0].0, &target),
        features("features through a dangling symlink", &links[1].0, &fresh),
    ];
    let mut failures = check_cases(&cases, &d.logs, 2);
    std::fs::write(&target, b"old").expect("write");
    let chain = vec![features(
        "features through two symlinks",
        &links[2].0,
        &target,
    )];
    failures.extend(check_cases(&chain, &d.logs, 1));
    for (link, to) in &links {
        match std::fs::read_link(link) {
            Ok(t) if t == Path::new(to) => {}
            Ok(t) => failures.push(format!("{} now points to {}", link.display(), t.display())),
            Err(e) => failures.push(format!("{} is no longer a symlink: {e}", link.display())),
        }
    }
    for dir in [&a, &b] {
        let left = leftovers(&dir.join("x"));
        if !left.is_empty() {
            failures.push(format!(
                "temporary files left in {}: {left:?}",
                dir.display()
            ));
        }
    }
    report(&failures, cases.len() + chain.len());
}

#[cfg(unix)]
#[test]
fn dash_is_standard_output() {
    let d = Dirs::new();
    let enc24 = fixture("encodec/tiny_24k");
    let e2e24 = fixture("encodec/e2e_24k.wav");
    let tiny = fixture("clvp/tiny");
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);
    let good = d.i("good.ecdc");
    encode_good(&good);
    let check_file = |check: Option<Check>| {
        let copy = d.o("stdout");
        move |data: &[u8]| -> Result<(), String> {
            std::fs::write(&copy, data).map_err(|e| e.to_string())?;
            check.as_ref().map_or(Ok(()), |c| c(&copy))
        }
    };
    let magic = |m: &'static [u8]| {
        move |data: &[u8]| -> Result<(), String> {
            match data.starts_with(m) {
                true => Ok(()),
                false => Err(format!("does not start with {m:?}")),
            }
        }
    };
    type StdoutCheck<'a> = Box<dyn Fn(&[u8]) -> Result<(), String> + 'a>;
    let cases: Vec<(&str, Vec<&str>, StdoutCheck)> = vec![
        (
            "features --output -",
            vec!["features", "--audio", okw, "--output", "-"],
            Box::new(check_file(features_ok())),
        ),
        (
            "features --png -",
            vec!["features", "--audio", okw, "--png", "-"],
            Box::new(magic(b"\x89PNG\r\n\x1a\n")),
        ),
        (
            "embed-text --output -",
            vec![
                "embed-text",
                "--model",
                &tiny,
                "--text",
                "Hi.",
                "--output",
                "-",
            ],
            Box::new(check_file(embeds_ok("text_embeds"))),
        ),
        (
            "encodec encode to - (.ecdc)",
            vec![
                "encodec", "encode", "--model", &enc24, "-b", "3.6", &e2e24, "-",
            ],
            Box::new(magic(b"ECDC")),
        ),
        (
            "encodec decode to - (.wav)",
            vec!["encodec", "decode", "--model", &enc24, s(&good), "-"],
            Box::new(check_file(wav_ok(4850))),
        ),
    ];
    let mut failures = Vec::new();
    for (name, args, check) in &cases {
        let run = clvp(&d.logs).args(args).output().expect("clvp runs");
        if !run.status.success() {
            failures.push(format!(
                "[{name}] failed: {}",
                String::from_utf8_lossy(&run.stderr)
            ));
        } else if let Err(e) = check(&run.stdout) {
            failures.push(format!("[{name}] standard output: {e}"));
        }
        if d.logs.join("-").exists() {
            failures.push(format!("[{name}] wrote a file named -"));
            let _ = std::fs::remove_file(d.logs.join("-"));
        }
    }
    report(&failures, cases.len());
}

#[cfg(unix)]
#[test]
fn a_signal_while_writing_leaves_no_temporary_file() {
    let d = Dirs::new();
    let ok_wav = d.ok_wav();
    // (signal, with CLVP_NO_TMPFILE: named temporary files, as on a file system without O_TMPFILE)
    let runs = [
        (libc::SIGINT, true),
        (libc::SIGTERM, true),
        (libc::SIGHUP, true),
        (libc::SIGINT, false),
        (libc::SIGTERM, false),
        (libc::SIGKILL, false),
    ];
    let mut failures = Vec::new();
    for (k, (sig, named)) in runs.into_iter().enumerate() {
        let tag = format!("signal {sig}, {}", if named { "named" } else { "unnamed" });
        let dir = d.out.join(format!("run-{k}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // The PNG is staged before the FIFO is opened, and opening a FIFO nobody reads blocks: the command
        // stops there, its PNG's temporary file open in `dir`.
        let fifo = dir.join("pipe.safetensors");
        mkfifo(&fifo);
        let png = dir.join("mel.png");
        let mut cmd = clvp(&d.logs);
        cmd.args([
            "features",
            "--audio",
            s(&ok_wav),
            "--output",
            s(&fifo),
            "--png",
            s(&png),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if named {
            cmd.env("CLVP_NO_TMPFILE", "1");
        }
        let mut child = cmd.spawn().expect("clvp starts");
        let unnamed = match temp_file_open(&mut child, &dir) {
            Ok(unnamed) => unnamed,
            Err(e) => {
                failures.push(format!("[{tag}] {e}"));
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
        };
        if named && unnamed {
            failures.push(format!(
                "[{tag}] an unnamed temporary file despite CLVP_NO_TMPFILE"
            ));
        }
        if sig == libc::SIGKILL && !unnamed {
            eprintln!("skipped SIGKILL: this file system has no O_TMPFILE");
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        // SAFETY: a signal to the child this test started and has not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait().expect("wait");
        {
            use std::os::unix::process::ExitStatusExt;
            if status.signal() != Some(sig) {
                failures.push(format!("[{tag}] ended with {status}, expected the signal"));
            }
        }
        let left = leftovers(&png);
        if !left.is_empty() {
            failures.push(format!("[{tag}] temporary files left: {left:?}"));
        }
        if png.exists() {
            failures.push(format!("[{tag}] the PNG was written"));
        }
        if !is_fifo(&fifo) {
            failures.push(format!("[{tag}] the FIFO was replaced"));
        }
    }
    report(&failures, runs.len());
}
