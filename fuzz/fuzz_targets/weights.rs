//! The weight and config loaders on arbitrary bytes: a safetensors file and a PyTorch checkpoint (written to a
//! temporary file, as the loaders map files), every tensor converted, and the CLVP / EnCodec `config.json`
//! readers. An error, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static DIR: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("clvp-fuzz-weights-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary directory");
        d
    });
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let path = dir.join(name);
        if std::fs::write(&path, data).is_err() {
            return;
        }
        if let Ok(w) = clvp_hub::Weights::open(&path) {
            for e in w.iter() {
                if e.numel() <= 1 << 20 {
                    let _ = e.to_f32();
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = clvp_nn::ClvpConfig::from_json(text, "config.json");
        let _ = encodec_codec::EncodecConfig::from_json(text, "config.json");
    }
});
