//! Streaming input (issue 22): the [`StreamResampler`] gives `resample_planar`'s samples bit for bit whatever
//! the block sizes, the [`AudioReader`] gives `load_audio`'s samples and errors block by block, named pipes
//! read as audio (they used to be "empty (0 bytes)"), and sizes from a config are bounded before anything of
//! that size is allocated.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use clvp_audio::resample::{resample_planar, sinc_len};
use clvp_audio::{AudioError, AudioReader, ClvpFeatureExtractor, StreamResampler, load_audio};

/// A deterministic signal per channel: a chirp and a little noise.
fn signal(channels: usize, frames: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| {
            let mut s = 7 + c as u64;
            (0..frames)
                .map(|i| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let noise = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                    let t = i as f32 / 1000.0;
                    0.5 * (t * (3.0 + c as f32 + 0.01 * t)).sin() + 0.05 * noise
                })
                .collect()
        })
        .collect()
}

fn streamed(x: &[Vec<f32>], from: u32, to: u32, block: usize) -> Result<Vec<Vec<f32>>, AudioError> {
    let mut r = StreamResampler::new(from, to, x.len())?;
    let mut out = vec![Vec::new(); x.len()];
    let frames = x[0].len();
    let mut at = 0;
    while at < frames {
        let end = (at + block).min(frames);
        let piece: Vec<&[f32]> = x.iter().map(|c| &c[at..end]).collect();
        r.push(&piece, &mut out)?;
        at = end;
    }
    r.finish(&mut out)?;
    Ok(out)
}

#[test]
fn streamed_resampling_equals_the_whole_clip_bit_for_bit() {
    let mut failures = Vec::new();
    for (from, to) in [
        (22050, 24000),
        (16000, 24000),
        (44100, 48000),
        (48000, 24000),
        (8000, 22050),
        (44100, 22050),
        (24000, 24000),
    ] {
        let chunk = sinc_len(from, to);
        for frames in [1, 5, chunk - 1, chunk, chunk + 1, 2 * chunk, 5 * chunk + 17] {
            for channels in [1, 2] {
                let x = signal(channels, frames);
                let want = match resample_planar(&x, from, to) {
                    Ok(w) => w,
                    Err(e) => {
                        // Too short for one output sample: the stream must refuse it the same way.
                        let got = streamed(&x, from, to, 3).map(|_| ()).unwrap_err();
                        if got.to_string() != e.to_string() {
                            failures.push(format!("{from}->{to} n={frames}: {got} vs {e}"));
                        }
                        continue;
                    }
                };
                for block in [1, 3, 1000, chunk, chunk + 1, usize::MAX] {
                    if block == 1 && frames > 3 * chunk {
                        continue;
                    }
                    match streamed(&x, from, to, block) {
                        Ok(got) if got == want => {}
                        Ok(got) => failures.push(format!(
                            "{from}->{to} n={frames} ch={channels} block={block}: {} frames vs {}, or values differ",
                            got[0].len(),
                            want[0].len()
                        )),
                        Err(e) => failures.push(format!("{from}->{to} n={frames} block={block}: {e}")),
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_stream_resampler_checks_its_input() {
    let mut r = StreamResampler::new(22050, 24000, 2).unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![Vec::new(); 2];
    let err = r
        .push(&[vec![0.0f32; 3]], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a block of 1 channels"), "{err}");
    let err = r
        .push(&[vec![0.0f32; 3], vec![0.0; 2]], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different lengths"), "{err}");
    let err = r.finish(&mut out).unwrap_err().to_string();
    assert!(err.contains("the audio is empty"), "{err}");
    let err = StreamResampler::new(1, 22050, 1).unwrap_err().to_string();
    assert!(err.contains("too far apart"), "{err}");
}

fn write_wav(path: &Path, rate: u32, x: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: x.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..x[0].len() {
        for c in x {
            w.write_sample(c[i]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    w.finalize().unwrap_or_else(|e| panic!("{e}"));
}

fn read_blocks(mut reader: AudioReader) -> Result<Vec<Vec<f32>>, AudioError> {
    let mut out = vec![Vec::new(); reader.channels()];
    let mut blocks = 0;
    while let Some(block) = reader.next_block()? {
        for (o, c) in out.iter_mut().zip(block) {
            o.extend_from_slice(c);
        }
        blocks += 1;
    }
    assert!(blocks > 1, "one block: not streamed");
    Ok(out)
}

#[test]
fn the_reader_gives_load_audios_samples_and_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("a.wav");
    let x = signal(2, 30_000);
    write_wav(&path, 16000, &x);
    let reader = AudioReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            reader.sample_rate(),
            reader.channels(),
            reader.declared_frames()
        ),
        (16000, 2, Some(30_000))
    );
    let whole = load_audio(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_blocks(reader).unwrap_or_default(), whole.channels);

    // Non-finite samples: the same message (count and first position over the whole file).
    let mut bad = x.clone();
    for i in [20_000, 20_001, 29_999] {
        bad[1][i] = f32::NAN;
    }
    bad[0][25_000] = f32::INFINITY;
    write_wav(&path, 16000, &bad);
    let want = load_audio(&path).map(|_| ()).unwrap_err().to_string();
    let reader = AudioReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let got = read_blocks(reader).map(|_| ()).unwrap_err().to_string();
    assert_eq!(got, want);
    assert!(
        want.contains("4 non-finite samples") && want.contains("channel 0, frame 25000"),
        "{want}"
    );
}

/// Run `f` on another thread with a deadline: a FIFO that is never opened must fail the test, not hang it.
fn with_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("no result within 120 s"))
}

/// A named pipe at `path` fed `bytes` by a writer thread (which blocks until a reader opens the pipe).
fn fifo(path: &Path, bytes: Vec<u8>) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(status.success(), "mkfifo failed");
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = f.write_all(&bytes);
        }
    });
}

#[test]
fn a_named_pipe_reads_as_audio() {
    // Before: "the file is empty (0 bytes)", from the FIFO's size in its metadata.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("a.wav");
    let x = signal(1, 20_000);
    write_wav(&file, 22050, &x);
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let want = load_audio(&file).unwrap_or_else(|e| panic!("{e}"));
    for n in 0..2 {
        let pipe = dir.path().join(format!("pipe{n}.wav"));
        fifo(&pipe, bytes.clone());
        let p = pipe.clone();
        let got = if n == 0 {
            with_deadline(move || load_audio(&p).map(|a| a.channels))
        } else {
            with_deadline(move || AudioReader::open(&p).and_then(read_blocks))
        };
        assert_eq!(got.unwrap_or_else(|e| panic!("{e}")), want.channels);
    }
    // An empty pipe is empty, as an empty file is.
    let pipe = dir.path().join("empty.wav");
    fifo(&pipe, Vec::new());
    let err = with_deadline(move || load_audio(&pipe).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty.wav: the file is empty"), "{err}");
}

#[test]
fn a_pipe_through_from_read_decodes_too() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("a.wav");
    let x = signal(2, 9_000);
    write_wav(&file, 8000, &x);
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reader = AudioReader::from_read(std::io::Cursor::new(bytes), "<pipe>", None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.label(), "<pipe>");
    assert_eq!(read_blocks(reader).unwrap_or_default(), x);
    let err = AudioReader::from_read(std::io::empty(), "<pipe>", None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "<pipe>: the file is empty (0 bytes)");
}

#[test]
fn config_sizes_are_bounded_before_allocating() {
    // Before: n_fft 2^31 passed validation and asked for an 8 GB mel filter bank (an abort).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("preprocessor_config.json");
    for (json, field, limit) in [
        (r#"{"n_fft": 2147483648}"#, "n_fft is 2147483648", "32768"),
        (
            r#"{"feature_size": 100000}"#,
            "feature_size is 100000",
            "512",
        ),
        (
            r#"{"default_audio_length": 100000000}"#,
            "default_audio_length · sampling_rate (samples per clip) is 2205000000000",
            "16777216",
        ),
        (
            r#"{"hop_length": 1, "default_audio_length": 700}"#,
            "feature_size × frames (feature values per clip)",
            "67108864",
        ),
    ] {
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{e}"));
        let err = ClvpFeatureExtractor::from_preprocessor_config(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AudioError::TooLarge { .. }), "{msg}");
        assert!(
            msg.contains("preprocessor_config.json: ")
                && msg.contains(field)
                && msg.contains(&format!("over the limit of {limit}")),
            "{msg}"
        );
    }
    let mut fe = ClvpFeatureExtractor::default();
    fe.n_fft = 1 << 31;
    let err = fe.extract(&[&[0.0; 10]], None).unwrap_err().to_string();
    assert!(err.contains("n_fft is 2147483648"), "{err}");
}

#[test]
fn a_batch_too_large_for_memory_is_an_error_not_an_abort() {
    // Before: `vec![0.0; …]` of petabytes aborted the process (memory allocation failed).
    let fe = ClvpFeatureExtractor::default();
    let err = fe
        .extract_to_length(&[&[0.0; 10]], None, 1 << 50)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AudioError::OutOfMemory { .. }), "{msg}");
    assert!(msg.contains("out of memory: cannot allocate"), "{msg}");
}
