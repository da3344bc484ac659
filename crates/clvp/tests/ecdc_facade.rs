//! The facade's EnCodec conveniences (issue 29 item 5): bandwidths, `.ecdc` written and read in one call each,
//! the same bytes as the container's own writer, and a file of the other model refused by name.

use std::path::PathBuf;

use clvp::Encodec;
use clvp::raw::audio::load_audio;
use clvp::raw::encodec::ecdc::{EcdcReader, write_ecdc};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encodec")
}

fn codec(name: &str) -> Encodec {
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    Encodec::from_pretrained(&fixtures().join(name).to_string_lossy(), &device)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ecdc_round_trips_through_the_facade() {
    // (tiny_48k's chunks are shorter than encodec_48khz's, so only the 24 kHz layout fits the container.)
    {
        let (name, wav) = ("tiny_24k", "e2e_24k.wav");
        let codec = codec(name);
        let bandwidths = codec.bandwidths().to_vec();
        assert!(
            !bandwidths.is_empty() && bandwidths.windows(2).all(|w| w[0] < w[1]),
            "{bandwidths:?}"
        );
        let audio = load_audio(fixtures().join(wav)).unwrap_or_else(|e| panic!("{e}"));
        let codes = codec
            .encode(&audio, Some(bandwidths[0]))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ours = Vec::new();
        codec
            .write_ecdc(&codes, &mut ours)
            .unwrap_or_else(|e| panic!("{e}"));
        // The same bytes as the container's writer on the same codes.
        let model = codec.ecdc_model().unwrap_or_else(|e| panic!("{e}"));
        let mut theirs = Vec::new();
        write_ecdc(
            &mut theirs,
            &codes.to_ecdc(&model).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ours, theirs, "{name}");
        let back = codec
            .read_ecdc(&mut ours.as_slice())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, codes, "{name}");
        // Read and decoded as a stream: the samples of the whole decode.
        let whole = codec.decode(&codes).unwrap_or_else(|e| panic!("{e}"));
        let mut reader = EcdcReader::new(ours.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let mut got = vec![Vec::new(); codec.channels()];
        let n = codec
            .decode_ecdc_stream(&mut reader, &mut |block: &[f32], n: usize| {
                for (g, c) in got.iter_mut().zip(block.chunks_exact(n)) {
                    g.extend_from_slice(c);
                }
                Ok::<(), clvp::CodecError>(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, whole.num_frames(), "{name}");
        assert!(
            got == whole.channels,
            "{name}: streamed .ecdc decode differs"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a.ecdc");
        codec
            .save_ecdc(&codes, &path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).unwrap_or_default(), theirs);
        assert_eq!(
            codec.load_ecdc(&path).unwrap_or_else(|e| panic!("{e}")),
            codes
        );
    }
}

#[test]
fn an_ecdc_of_the_other_model_is_refused_by_name() {
    let c24 = codec("tiny_24k");
    // Written by Meta's `encodec` for its 48 kHz model (xtask/python/ref_encodec.py).
    let path = fixtures().join("ecdc/48k_k16_len960.ecdc");
    let msg = match c24.load_ecdc(&path) {
        Ok(_) => panic!("a 48 kHz file was read by the 24 kHz model"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("encodec_48khz") && msg.contains("encodec_24khz"),
        "{msg}"
    );
    let missing = c24
        .load_ecdc("/nonexistent/dir/x.ecdc")
        .err()
        .map(|e| e.to_string());
    assert!(
        missing
            .unwrap_or_default()
            .contains("/nonexistent/dir/x.ecdc")
    );
    // The 48 kHz tiny checkpoint has no .ecdc layout: an error, not a wrong file.
    let c48 = codec("tiny_48k");
    let audio = load_audio(fixtures().join("e2e_48k.wav")).unwrap_or_else(|e| panic!("{e}"));
    let codes = c48
        .encode(&audio, Some(c48.bandwidths()[0]))
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = c48
        .write_ecdc(&codes, &mut Vec::new())
        .err()
        .map(|e| e.to_string());
    assert!(msg.unwrap_or_default().contains("is neither"));
}
