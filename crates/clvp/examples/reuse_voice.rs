//! Compute a speaker's conditioning once, ship it as a small `.safetensors`, and generate several sentences
//! with it without encoding the clips again (`Clvp::voice`, `Voice::save`/`load`, `Clvp::generate_for_voice`).
//!
//! `cargo run -p clvp --example reuse_voice -- [MODEL] [VOICE.wav...]` (default: the tiny checkpoint and
//! `fixtures/audio/speech_mid.wav`).

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| format!("{root}/fixtures/clvp/tiny"));
    let mut wavs: Vec<String> = args.collect();
    if wavs.is_empty() {
        wavs.push(format!("{root}/fixtures/audio/speech_mid.wav"));
    }
    let device = clvp::device::device("cpu")?;
    let clvp = clvp::Clvp::from_pretrained(&model, &device)?;

    let clips = wavs
        .iter()
        .map(|w| clvp.processor.load_voice(w))
        .collect::<Result<Vec<_>, _>>()?;
    let voice = clvp.voice(&clips)?;
    let dir = std::env::temp_dir().join("clvp-example-voice");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("speaker.voice.safetensors");
    voice.save(&file)?;
    println!(
        "voice of {} clip(s), hidden size {}, saved to {}",
        voice.clips(),
        voice.hidden_size(),
        file.display()
    );

    let voice = clvp::Voice::load(&file)?;
    let config = clvp::GenerationConfig {
        num_return_sequences: 4,
        max_new_tokens: 40,
        ..clvp.preset(clvp::Preset::UltraFast)
    };
    for text in ["Hello there.", "This sentence reuses the same voice."] {
        let ranked = clvp.generate_for_voice(text, &voice, &config, &mut |_, _| {})?;
        let (best, logit) = ranked.ranking[0];
        println!(
            "{text:?}: best of {} candidates is #{best} (logit {logit:.3}, {} codes)",
            ranked.speech_ids.len(),
            ranked.speech_ids[best].len()
        );
    }
    Ok(())
}
