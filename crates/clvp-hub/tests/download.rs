//! Downloads through `hf-hub` from a loopback server that serves the fixture checkpoint in the hub's URL layout
//! (`/{repo}/resolve/{revision}/{file}` with `x-repo-commit`, `etag` and `Content-Range`): broken transfers are
//! detected and never used, a good one downloads, and the cache then serves it offline.
//! Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.

#![cfg(feature = "download")]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clvp_hub::{Checkpoint, DownloadError, HubError, HubId, HubOptions};
use clvp_parity::Recorder;
use common::{COMMIT, HubRef, REPO, check_outputs, device, dir_files, table};
use sha2::{Digest, Sha256};

/// How the server answers a download (the `Range: bytes=0-0` metadata probe is always answered correctly).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// The real bytes.
    Good,
    /// Announces the full length, sends half, closes the connection.
    CloseEarly,
    /// Announces and sends 100 bytes fewer than the metadata said (a consistent but wrong length).
    Truncated,
    /// The right length with some bytes changed.
    Flipped,
}

struct Server {
    url: String,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let mode = Arc::new(Mutex::new(Mode::Good));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, r, s) = (mode.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst)
                && Instant::now() < deadline
                && r.load(Ordering::SeqCst) < 500
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        r.fetch_add(1, Ordering::SeqCst);
                        let mode = *m.lock().unwrap_or_else(|e| e.into_inner());
                        let _ = serve(stream, &files, mode);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            url: format!("http://{addr}"),
            mode,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    mode: Mode,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let range = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(str::to_string)
        })
        .unwrap_or_else(|| "0-".into());
    let prefix = format!("/{REPO}/resolve/");
    let file = path
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once('/'))
        .map(|(_rev, f)| f.to_string());
    let Some(data) = file.as_ref().and_then(|f| files.get(f)) else {
        let msg = "HTTP/1.1 404 Not Found\r\nx-error-code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        stream.write_all(msg.as_bytes())?;
        return stream.shutdown(Shutdown::Both);
    };
    let size = data.len();
    let (start, end) = match range.trim().split_once('-') {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(size - 1)),
        None => (0, size - 1),
    };
    let start: usize = start.min(size);
    let end: usize = end.min(size - 1).max(start);
    let etag: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let probe = start == 0 && end == 0;
    let mut body = data[start..=end].to_vec();
    let mut announced = body.len();
    match mode {
        _ if probe => {}
        Mode::Good => {}
        Mode::CloseEarly => body.truncate(body.len() / 2),
        Mode::Truncated => {
            body.truncate(body.len().saturating_sub(100));
            announced = body.len();
        }
        Mode::Flipped => {
            for b in body.iter_mut().step_by(97) {
                *b ^= 0x5a;
            }
        }
    }
    let headers = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {announced}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\
         etag: \"{etag}\"\r\nx-repo-commit: {COMMIT}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(headers.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

const PROXY_VARS: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

fn proxy_configured() -> bool {
    PROXY_VARS
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

#[test]
fn download_verify_then_offline() {
    if proxy_configured() {
        // hf-hub's HTTP client would send even loopback requests to the proxy: run this test again in a
        // child process without the proxy variables, and fail if it fails there.
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["download_verify_then_offline", "--exact", "--nocapture"]);
        for k in PROXY_VARS {
            cmd.env_remove(k);
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot re-run the test without proxies: {e}"));
        assert!(
            status.success(),
            "the download test failed (re-run without *_PROXY variables)"
        );
        return;
    }
    let files: HashMap<String, Vec<u8>> = dir_files("f32")
        .into_iter()
        .map(|(name, path)| (name, std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    let server = Server::start(files);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let opts = HubOptions::with_cache_dir(tmp.path())
        .endpoint(server.url.clone())
        .progress(false);
    let id = HubId::new(REPO, "main").unwrap_or_else(|e| panic!("{e}"));
    let ckpt = Checkpoint::hub(id.clone(), opts.clone()).unwrap_or_else(|e| panic!("{e}"));
    let cached = || opts.cache.file(&id, "model.safetensors");

    // 1. The connection closes halfway: the client reports it, nothing lands in the snapshot.
    server.set(Mode::CloseEarly);
    let err = ckpt.weights().map(|_| ()).unwrap_err();
    assert!(
        matches!(err, HubError::Download(DownloadError::Request { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(cached().is_none());

    // 2./3. A consistent but short body, and a right-length body with wrong bytes (resuming the
    // partial file from step 1): both complete as far as hf-hub knows, and both fail the etag check.
    for mode in [Mode::Flipped, Mode::Truncated] {
        server.set(mode);
        let err = ckpt.weights().map(|_| ()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, HubError::Download(DownloadError::Corrupted { .. })),
            "{mode:?}: {msg}"
        );
        assert!(
            msg.contains("model.safetensors") && msg.contains("sha256") && msg.contains("removed"),
            "{msg}"
        );
        assert!(
            cached().is_none(),
            "{mode:?}: corrupted file left in the cache"
        );
    }

    // 4. A good server: the download works and matches the reference; absent files are 404 → None.
    server.set(Mode::Good);
    let before = server.requests.load(Ordering::SeqCst);
    let weights = ckpt.weights().unwrap_or_else(|e| panic!("{e}"));
    assert!(server.requests.load(Ordering::SeqCst) > before);
    assert!(cached().is_some());
    assert_eq!(
        ckpt.config()
            .ok()
            .and_then(|c| c.field::<usize>("hidden_size").ok().flatten()),
        Some(6)
    );
    assert!(
        ckpt.file("tokenizer.json")
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    let mut rec = Recorder::new("hub");
    let (m, _) = clvp_hub::load_module_with_report(HubRef::new(&device()), &weights, &table())
        .unwrap_or_else(|e| panic!("{e}"));
    check_outputs(&m, "f32", &mut rec, "downloaded");

    // 5. Second run: cached files are used without asking the server, and offline works after it is gone.
    let before = server.requests.load(Ordering::SeqCst);
    let again = Checkpoint::hub(id.clone(), opts.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.weights().is_ok());
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        before,
        "a cached file was fetched again"
    );
    drop(server);
    let offline = Checkpoint::hub(id, opts.clone().offline(true)).unwrap_or_else(|e| panic!("{e}"));
    let weights = offline.weights().unwrap_or_else(|e| panic!("{e}"));
    let (m, _) = clvp_hub::load_module_with_report(HubRef::new(&device()), &weights, &table())
        .unwrap_or_else(|e| panic!("{e}"));
    check_outputs(&m, "f32", &mut rec, "offline-after-download");
    rec.finish();
}
