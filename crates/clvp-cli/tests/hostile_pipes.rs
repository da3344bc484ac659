//! Inputs from pipes (issue 22, item 7): audio from standard input (`-`) and from a FIFO for `features`,
//! `generate --voice` and `encodec`; text from `--text-file` pipes (`<(cmd)` is a pipe too) with a size cap,
//! so that an endless source (`/dev/zero`, `yes`) is an error after 1 MiB instead of filling memory; standard
//! input named by two inputs is refused before any work. See `common/mod.rs`.

#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;

/// `clvp ARGS` in `cwd` with `stdin` (none: /dev/null); stdout and stderr captured.
fn run<A: AsRef<std::ffi::OsStr>>(cwd: &Path, args: &[A], stdin: Option<&Path>) -> Output {
    let mut c = clvp(cwd);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(p) = stdin {
        c.stdin(std::fs::File::open(p).expect("stdin file"));
    }
    c.output().expect("clvp runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(cwd: &Path, args: &[&str], stdin: Option<&Path>) -> Vec<u8> {
    let o = run(cwd, args, stdin);
    assert!(o.status.success(), "clvp {args:?}: {}", stderr(&o));
    o.stdout
}

/// Fails with exit status 1 and every needle in its message.
fn refused<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    cwd: &Path,
    args: &[A],
    stdin: Option<&Path>,
    needles: &[&str],
) {
    let o = run(cwd, args, stdin);
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "clvp {args:?}: {msg}");
    for n in needles {
        assert!(msg.contains(n), "clvp {args:?}: {n:?} not in: {msg}");
    }
}

/// A FIFO in `dir` fed `bytes` by a thread (which stops quietly when the reader goes away).
fn fifo_of(dir: &Path, name: &str, bytes: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
    let path = dir.join(name);
    mkfifo(&path);
    let p = path.clone();
    let feeder = std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(&bytes);
        }
    });
    (path, feeder)
}

/// A FIFO in `dir` that gives `line` over and over, as `yes` would, up to `limit` bytes (a bound for the
/// test's sake: the command must give up long before it).
fn endless_fifo(dir: &Path, name: &str, line: &'static [u8], limit: usize) -> PathBuf {
    endless_after(dir, name, Vec::new(), line, limit)
}

/// [`endless_fifo`] after `head`.
fn endless_after(
    dir: &Path,
    name: &str,
    head: Vec<u8>,
    line: &'static [u8],
    limit: usize,
) -> PathBuf {
    let path = dir.join(name);
    mkfifo(&path);
    let p = path.clone();
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let block: Vec<u8> = line.iter().copied().cycle().take(1 << 16).collect();
            let mut sent = 0;
            let mut ok = f.write_all(&head).is_ok();
            while ok && sent < limit {
                ok = f.write_all(&block).is_ok();
                sent += block.len();
            }
        }
    });
    path
}

#[test]
fn text_files_are_capped_and_pipes_work() {
    let d = Dirs::new();
    let dir = &d.root;
    let tiny = fixture("clvp/tiny");
    // A regular file one byte over the cap, and one at it.
    let big = d.i("big.txt");
    std::fs::write(&big, "hello\n".repeat((1 << 20) / 6 + 1)).expect("write");
    refused(
        dir,
        &["tokenize", "--text-file", s(&big)],
        None,
        &["big.txt", "1048576 bytes", "text file"],
    );
    refused(
        dir,
        &["tokenize", "--text-file", "-"],
        Some(&big),
        &["standard input", "1048576 bytes"],
    );
    // An endless pipe (like `--text-file /dev/zero` or `<(yes)`): an error after the cap, not a hang.
    let endless = endless_fifo(dir, "yes", b"hello\n", 64 << 20);
    refused(
        dir,
        &["tokenize", "--text-file", s(&endless)],
        None,
        &["yes", "1048576 bytes"],
    );
    let endless = endless_fifo(dir, "zero", b"\0", 64 << 20);
    let out = d.o("zero.safetensors");
    refused(
        dir,
        &[
            "embed-text",
            "--model",
            &tiny,
            "--text-file",
            s(&endless),
            "--output",
            s(&out),
        ],
        None,
        &["zero", "1048576 bytes"],
    );
    assert!(!out.exists());

    // A text from a pipe (what `<(cmd)` gives) and from standard input: the same ids as --text.
    let want = ok(
        dir,
        &["tokenize", "--text", "Hello there.", "--text", "Bye."],
        None,
    );
    let (fifo, feeder) = fifo_of(dir, "lines", b"Hello there.\nBye.\n".to_vec());
    assert_eq!(ok(dir, &["tokenize", "--text-file", s(&fifo)], None), want);
    feeder.join().expect("feeder");
    let lines = d.i("lines.txt");
    std::fs::write(&lines, "Hello there.\nBye.\n").expect("write");
    assert_eq!(
        ok(dir, &["tokenize", "--text-file", "-"], Some(&lines)),
        want
    );

    // embed-text and generate take --text-file too: its text less the final line break.
    let one = d.i("one.txt");
    std::fs::write(&one, "Hello there.\n").expect("write");
    let (a, b) = (d.o("a.safetensors"), d.o("b.safetensors"));
    ok(
        dir,
        &[
            "embed-text",
            "--model",
            &tiny,
            "--text",
            "Hello there.",
            "--output",
            s(&a),
        ],
        None,
    );
    ok(
        dir,
        &[
            "embed-text",
            "--model",
            &tiny,
            "--text-file",
            "-",
            "--output",
            s(&b),
        ],
        Some(&one),
    );
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
}

#[test]
fn audio_comes_from_stdin_and_fifos() {
    let d = Dirs::new();
    let dir = &d.root;
    let tiny = fixture("clvp/tiny");
    let wav = d.ok_wav();
    let bytes = std::fs::read(&wav).expect("read");

    // features: the file, standard input, a FIFO give the same features.
    let want = ok(
        dir,
        &["features", "--audio", s(&wav), "--output", "-"],
        None,
    );
    assert_eq!(
        ok(
            dir,
            &["features", "--audio", "-", "--output", "-"],
            Some(&wav)
        ),
        want
    );
    let (fifo, feeder) = fifo_of(dir, "voice_fifo", bytes.clone());
    assert_eq!(
        ok(
            dir,
            &["features", "--audio", s(&fifo), "--output", "-"],
            None
        ),
        want
    );
    feeder.join().expect("feeder");

    // generate: a voice from standard input or a FIFO conditions as the file does.
    let generate = |voice: &str, out: &Path, stdin: Option<&Path>| {
        let args = [
            "generate",
            "--model",
            &tiny,
            "--text",
            "Hi.",
            "--voice",
            voice,
            "--greedy",
            "--max-new-tokens",
            "4",
            "--output",
            s(out),
        ];
        ok(dir, &args, stdin);
        std::fs::read(out).expect("output")
    };
    let want = generate(s(&wav), &d.o("g_file.safetensors"), None);
    assert_eq!(generate("-", &d.o("g_stdin.safetensors"), Some(&wav)), want);
    let (fifo, feeder) = fifo_of(dir, "voice_fifo2", bytes);
    assert_eq!(generate(s(&fifo), &d.o("g_fifo.safetensors"), None), want);
    feeder.join().expect("feeder");
}

#[test]
fn standard_input_is_read_once() {
    let d = Dirs::new();
    let dir = &d.root;
    let tiny = fixture("clvp/tiny");
    let wav = d.ok_wav();
    let out = d.o("g.safetensors");
    let base = [
        "generate",
        "--model",
        &tiny,
        "--greedy",
        "--output",
        s(&out),
    ];
    let twice = [
        &base[..],
        &["--text", "Hi.", "--voice", "-", "--voice", "-"],
    ]
    .concat();
    refused(
        dir,
        &twice,
        Some(&wav),
        &["--voice - is given twice", "standard input"],
    );
    let both = [&base[..], &["--text-file", "-", "--voice", "-"]].concat();
    refused(
        dir,
        &both,
        Some(&wav),
        &["--voice - and --text-file -", "standard input"],
    );
    assert!(!out.exists());
}

/// Many voice clips (more than one batch of the conditioning encoder) condition as their mean; the run
/// succeeds with the clips read one at a time (memory does not grow with their number).
#[test]
fn many_voices_are_averaged_one_at_a_time() {
    let d = Dirs::new();
    let tiny = fixture("clvp/tiny");
    let wav = d.ok_wav();
    let out = d.o("many.safetensors");
    let mut args = vec![
        "generate".to_string(),
        "--model".into(),
        tiny,
        "--text".into(),
        "Hi.".into(),
        "--greedy".into(),
        "--max-new-tokens".into(),
        "4".into(),
        "--output".into(),
        s(&out).into(),
    ];
    for _ in 0..20 {
        args.extend(["--voice".to_string(), s(&wav).to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&d.root, &args, None);
    assert!(out.exists());
}

/// A signal while `encodec encode` streams (its `.ecdc` body in a scratch file in TMPDIR, the audio from a FIFO
/// that stalls halfway) leaves nothing in TMPDIR nor at the output, SIGKILL included: the scratch file has no
/// name (`O_TMPFILE`, or with CLVP_NO_TMPFILE a name removed the moment it is made).
#[test]
fn a_signal_while_streaming_leaves_no_scratch_file() {
    let d = Dirs::new();
    let wav = std::fs::read(clvp_parity::fixture_path("encodec/e2e_24k.wav")).expect("read");
    let runs = [
        (libc::SIGTERM, true),
        (libc::SIGINT, false),
        (libc::SIGKILL, false),
        (libc::SIGKILL, true),
    ];
    for (k, (sig, named)) in runs.into_iter().enumerate() {
        let dir = d.out.join(format!("run-{k}"));
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir");
        let fifo = dir.join("audio.wav");
        mkfifo(&fifo);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (sent, written) = std::sync::mpsc::channel::<()>();
        let half = wav[..wav.len() / 2].to_vec();
        let p = fifo.clone();
        let feeder = std::thread::spawn(move || {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
                let _ = f.write_all(&half);
                let _ = sent.send(());
                // Stalls, the FIFO open, until the test is done with the command.
                let _ = stopped.recv();
            }
        });
        let out = dir.join("out.ecdc");
        let mut cmd = clvp(&d.logs);
        cmd.args([
            "encodec",
            "encode",
            "--model",
            &fixture("encodec/tiny_24k"),
            "-b",
            "3.6",
            s(&fifo),
            s(&out),
        ])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if named {
            cmd.env("CLVP_NO_TMPFILE", "1");
        }
        let mut child = cmd.spawn().expect("clvp starts");
        // The command has the first half of the audio and waits for the rest, its scratch file open.
        let fed = written.recv_timeout(DEADLINE);
        let open = temp_file_open(&mut child, &tmp);
        // SAFETY: a signal to the child this test started and has not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait().expect("wait");
        let _ = stop.send(());
        if fed.is_err() {
            // The command never opened the FIFO: open it here, so that the feeder's open returns.
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
        }
        feeder.join().expect("feeder");
        let tag = format!("signal {sig}, named {named}");
        assert!(fed.is_ok(), "[{tag}] the command did not read the audio");
        assert!(open.is_ok(), "[{tag}] {open:?}");
        assert!(status.code().is_none(), "[{tag}] ended by itself: {status}");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .expect("tmp")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "[{tag}] left in TMPDIR: {left:?}");
        assert!(!out.exists(), "[{tag}] an output was written");
    }
}

/// Codes from a stream that does not end (`/dev/zero`, a safetensors file followed by endless bytes) or that is
/// empty, and a scratch directory that does not exist, are errors naming the problem, and write nothing.
#[test]
fn endless_or_empty_codes_and_a_missing_tmpdir_are_errors() {
    let d = Dirs::new();
    let dir = &d.root;
    let m = fixture("encodec/tiny_24k");
    let out = d.o("x.wav");
    let decode = |input: &str| -> Vec<String> {
        ["encodec", "decode", "--model", &m, input, s(&out)]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let zero = endless_fifo(dir, "zero", b"\0", 64 << 20);
    refused(
        dir,
        &decode(s(&zero)),
        None,
        &["zero", "is not a safetensors file"],
    );
    let codes = 3i64.to_le_bytes().repeat(4);
    let head = safetensors_file(
        &[("audio_codes".into(), "I64".into(), vec![1, 1, 1, 4], codes)],
        None,
    );
    let tail = endless_after(dir, "tail", head, b"\0", 64 << 20);
    refused(
        dir,
        &decode(s(&tail)),
        None,
        &["tail", "data goes on after its last tensor"],
    );
    let empty = d.i("empty");
    std::fs::write(&empty, b"").expect("write");
    refused(
        dir,
        &decode("-"),
        Some(&empty),
        &["<stdin>", "no codes: the input is empty"],
    );
    assert!(!out.exists());

    // The .ecdc body waits in TMPDIR: a TMPDIR that is not there is named, and nothing is written.
    let ecdc = d.o("x.ecdc");
    let missing = dir.join("no-such-dir");
    let o = clvp(dir)
        .args([
            "encodec",
            "encode",
            "--model",
            &m,
            "-b",
            "3.6",
            &fixture("encodec/e2e_24k.wav"),
            s(&ecdc),
        ])
        .env("TMPDIR", &missing)
        .output()
        .expect("clvp runs");
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("cannot create a temporary file in") && msg.contains("no-such-dir"),
        "{msg}"
    );
    assert!(!ecdc.exists());
}
