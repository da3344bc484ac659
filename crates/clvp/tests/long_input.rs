//! Long voice clips in bounded memory (issue 9): `ClvpProcessor::load_voice` decodes only the beginning the
//! feature extractor keeps (plus the resampler's margin), and the features equal those of the whole file
//! decoded, bit for bit, at common and odd sample rates, mono and stereo.

use std::path::PathBuf;

use clvp::ClvpProcessor;
use clvp::raw::audio::{load_audio, load_audio_prefix};

/// A 16-bit PCM WAV of `seconds` at `rate` Hz: a chirp plus a little pseudo-random noise per channel.
fn write_wav(name: &str, rate: u32, channels: u16, seconds: f64) -> PathBuf {
    let frames = (seconds * f64::from(rate)) as usize;
    let mut data = Vec::with_capacity(frames * channels as usize * 2);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let x = 0.4
                * (std::f64::consts::TAU * (150.0 + 40.0 * t + 30.0 * f64::from(c)) * t).sin()
                + 0.05 * noise;
            data.extend_from_slice(&((x * 32767.0) as i16).to_le_bytes());
        }
    }
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    v.extend_from_slice(&(channels * 2).to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    let path = std::env::temp_dir().join(format!("clvp-long-{}-{name}.wav", std::process::id()));
    std::fs::write(&path, v).expect("writing the test WAV");
    path
}

#[test]
fn voice_prefix_gives_the_features_of_the_whole_file() {
    let processor = ClvpProcessor::tortoise().expect("tortoise processor");
    let fe = &processor.feature_extractor;
    for (name, rate, channels, seconds) in [
        ("44k_mono", 44_100, 1, 20.0),
        ("48k_stereo", 48_000, 2, 15.0),
        ("44101_odd", 44_101, 1, 14.0),
        ("16k_mono", 16_000, 1, 12.0),
        ("22k_mono", 22_050, 1, 9.0),
        ("44k_short", 44_100, 1, 4.0),
    ] {
        let path = write_wav(name, rate, channels, seconds);
        let total = (seconds * f64::from(rate)) as u64;

        let prefix = load_audio_prefix(&path, |r| processor.voice_frame_limit(r))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(prefix.total_frames, Some(total), "{name}: declared length");
        let decoded = prefix.audio.num_frames() as u64;
        let limit = processor.voice_frame_limit(rate);
        assert_eq!(decoded, total.min(limit), "{name}: frames decoded");

        let voice = processor
            .load_voice(&path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let whole = processor
            .prepare(&load_audio(&path).unwrap_or_else(|e| panic!("{name}: {e}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            voice.as_slice(),
            &whole[..whole.len().min(fe.max_length())],
            "{name}: the kept samples"
        );
        let a = fe
            .extract(&[&voice], Some(fe.sampling_rate))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = fe
            .extract(&[&whole], Some(fe.sampling_rate))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.input_features, b.input_features, "{name}: features");
        let _ = std::fs::remove_file(&path);
    }
}
