//! Presets (issue 29 item 3): an enum parsed from Tortoise's names with an error that lists them, and fitted to
//! the checkpoint in one place (`Clvp::fit_to_model`, which the CLI uses too).

use std::path::PathBuf;

use clvp::{Clvp, GenerationConfig, Preset};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn presets_parse_from_their_names_and_a_misspelt_one_is_an_error() {
    for p in Preset::ALL {
        assert_eq!(p.name().parse::<Preset>(), Ok(p));
        assert_eq!(p.to_string(), p.name());
        let c = p.config();
        assert_eq!(c.num_return_sequences, p.candidates());
        assert_eq!(c.max_new_tokens, 500);
        assert!(c.do_sample);
    }
    let err = "ultrafast".parse::<Preset>().err().map(|e| e.to_string());
    let msg = err.unwrap_or_default();
    assert!(
        msg.contains("\"ultrafast\"") && msg.contains("ultra_fast, fast, standard, high_quality")
    );
}

#[test]
fn presets_are_fitted_to_the_checkpoint() {
    let clvp = tiny();
    let limit = clvp.raw().config.decoder_config.max_position_embeddings - 1;
    assert!(
        limit < 500,
        "the tiny checkpoint has fewer positions than the presets ask"
    );
    assert_eq!(clvp.max_new_tokens(), limit);
    let fitted = clvp.preset(Preset::UltraFast);
    assert_eq!(fitted.max_new_tokens, limit);
    assert_eq!(
        GenerationConfig {
            max_new_tokens: 500,
            ..fitted.clone()
        },
        Preset::UltraFast.config()
    );
    let mut small = GenerationConfig {
        max_new_tokens: 3,
        ..GenerationConfig::default()
    };
    assert_eq!(clvp.fit_to_model(&mut small), None);
    assert_eq!(small.max_new_tokens, 3);

    let voice: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.03).sin() * 0.3).collect();
    let two = GenerationConfig {
        num_return_sequences: 2,
        ..fitted
    };
    let out = clvp
        .generate("Hello.", &[voice.as_slice()], &two)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.speech_ids.len(), 2);
    // Unfitted, the library refuses with the reason instead of lowering silently.
    let unfitted = GenerationConfig {
        num_return_sequences: 2,
        ..Preset::UltraFast.config()
    };
    let err = clvp
        .generate("Hello.", &[voice.as_slice()], &unfitted)
        .err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("max_position_embeddings"), "{msg}");
}
