//! Audio decode (any format symphonia probes) + resample to 22.05 kHz + log-mel features on arbitrary bytes:
//! an error or features, never a panic. Long decodes are capped so one input cannot take minutes.
#![no_main]

use std::sync::OnceLock;

use clvp_audio::{ClvpFeatureExtractor, decode_bytes};
use libfuzzer_sys::fuzz_target;

static FE: OnceLock<ClvpFeatureExtractor> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fe = FE.get_or_init(ClvpFeatureExtractor::tortoise);
    let Ok(audio) = decode_bytes(data.to_vec(), None) else {
        return;
    };
    if audio.num_frames() > 200_000 {
        return;
    }
    let mono = audio.to_mono();
    let Ok(mono) = mono.resample(fe.sampling_rate) else {
        return;
    };
    let clip = mono.into_mono();
    let _ = fe.extract(&[&clip], Some(fe.sampling_rate));
});
