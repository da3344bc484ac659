//! EnCodec round trip: a WAV encoded at a bandwidth, the codes written to and read back from Meta's `.ecdc`
//! container, decoded, and written as a 16-bit WAV.
//!
//! `cargo run -p clvp --example encodec_roundtrip -- [MODEL] [IN.wav] [OUT.wav]` (default: the tiny 24 kHz
//! checkpoint in `fixtures/encodec/tiny_24k` and `fixtures/encodec/e2e_24k.wav`; the real model is
//! `facebook/encodec_24khz`).

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| format!("{root}/fixtures/encodec/tiny_24k"));
    let input = args
        .next()
        .unwrap_or_else(|| format!("{root}/fixtures/encodec/e2e_24k.wav"));
    let output = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("clvp-example-roundtrip.wav"));
    let device = clvp::device::device("cpu")?;
    let codec = clvp::Encodec::from_pretrained(&model, &device)?;

    let audio = clvp::load_audio(&input)?;
    let bandwidth = codec.bandwidths()[0];
    let codes = codec.encode(&audio, Some(bandwidth))?;
    let mut ecdc = Vec::new();
    codec.write_ecdc(&codes, &mut ecdc)?;
    println!(
        "{input}: {} samples at {bandwidth} kbps -> {} codebooks, {} bytes of .ecdc",
        codes.audio_length,
        codes.num_codebooks,
        ecdc.len()
    );
    let codes = codec.read_ecdc(&mut ecdc.as_slice())?;
    let decoded = codec.decode(&codes)?;

    let peak = clvp::write_wav(&output, &decoded)?;
    if peak > 0.99 {
        eprintln!("clipped: the decoded peak is {peak}");
    }
    println!(
        "decoded {} s -> {}",
        decoded.duration_secs(),
        output.display()
    );
    Ok(())
}
