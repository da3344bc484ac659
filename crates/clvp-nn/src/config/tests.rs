//! Tests of `config.rs`: defaults, absent fields, sizes and fields named in errors.

use super::*;

#[test]
fn defaults_are_hf_defaults_and_valid() {
    let c = ClvpConfig::clvp_dev();
    c.validate("<preset>").expect("the released shape is valid");
    assert_eq!(c.text_config.rotary_dim(), 32);
    assert_eq!(c.decoder_config.groupnorm_groups(), Ok(32));
    assert_eq!(c.decoder_config.inner_dim(), 4096);
}

#[test]
fn absent_fields_take_hf_defaults_at_any_depth() {
    let c = ClvpConfig::from_json(
        r#"{"speech_config": {"vocab_size": 8192}, "text_config": null,
            "decoder_config": {"n_inner": null, "hidden_size": 512, "num_attention_heads": 8},
            "architectures": ["ClvpModelForConditionalGeneration"]}"#,
        "c.json",
    )
    .expect("valid");
    let want = ClvpConfig::new()
        .with_speech_config(ClvpEncoderConfig::new().with_vocab_size(8192))
        .with_decoder_config(
            ClvpDecoderConfig::new()
                .with_hidden_size(512)
                .with_num_attention_heads(8),
        );
    assert_eq!(c, want);
    // The burn Config JSON of a config reads back to the same config.
    let json = serde_json::to_string(&ClvpConfig::clvp_dev()).expect("serialises");
    assert_eq!(
        ClvpConfig::from_json(&json, "round-trip").expect("valid"),
        ClvpConfig::clvp_dev()
    );
}

#[test]
fn huge_sizes_and_wrong_types_name_the_field() {
    for (json, field) in [
        (
            r#"{"text_config": {"hidden_size": 1099511627776}}"#,
            "text_config.hidden_size",
        ),
        (
            r#"{"text_config": {"num_hidden_layers": 1000000000}}"#,
            "text_config.num_hidden_layers",
        ),
        (
            r#"{"decoder_config": {"max_position_embeddings": 4000000000}}"#,
            "decoder_config.max_position_embeddings",
        ),
        (
            r#"{"decoder_config": {"num_hidden_layers": 1000}}"#,
            "<sizes>",
        ),
        (
            r#"{"text_config": {"hidden_size": 64.5}}"#,
            "text_config.hidden_size",
        ),
        (
            r#"{"decoder_config": {"vocab_size": -3}}"#,
            "decoder_config.vocab_size",
        ),
        (
            r#"{"speech_config": {"use_rotary_embedding": "yes"}}"#,
            "speech_config.use_rotary_embedding",
        ),
        (r#"{"projection_dim": [1]}"#, "projection_dim"),
    ] {
        let e = ClvpConfig::from_json(json, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json") && e.contains(field), "{json}: {e}");
    }
    assert!(ClvpConfig::clvp_dev().parameter_count() < 700_000_000);
}

#[test]
fn norm_epsilons_must_be_positive() {
    for (json, field) in [
        (
            r#"{"text_config": {"layer_norm_eps": -1}}"#,
            "text_config.layer_norm_eps",
        ),
        (
            r#"{"speech_config": {"layer_norm_eps": 0}}"#,
            "speech_config.layer_norm_eps",
        ),
        (
            r#"{"decoder_config": {"layer_norm_epsilon": -1e-5}}"#,
            "decoder_config.layer_norm_epsilon",
        ),
    ] {
        let e = ClvpConfig::from_json(json, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains(field) && e.contains("positive"), "{json}: {e}");
    }
    let mut c = ClvpConfig::clvp_dev();
    c.decoder_config.layer_norm_epsilon = f64::NAN;
    assert!(c.validate("m").is_err());
}

#[test]
fn errors_name_file_and_field() {
    let e = ClvpConfig::from_json("[1, 2]", "x/config.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x/config.json") && e.contains("JSON object"),
        "{e}"
    );
    let e = ClvpConfig::from_json("{not json", "x/config.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x/config.json"), "{e}");
    let e = ClvpConfig::from_json(
        r#"{"text_config": {"hidden_size": 100, "num_attention_heads": 3}}"#,
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("text_config.num_attention_heads") && e.contains("do not divide"),
        "{e}"
    );
    let e = ClvpConfig::from_json(
        r#"{"text_config": {"hidden_size": 64, "num_attention_heads": 4, "projection_dim": 768},
            "speech_config": {"hidden_size": 64, "num_attention_heads": 4, "projection_dim": 768}}"#,
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rotary dim"), "{e}");
    let e = ClvpConfig::from_json(r#"{"decoder_config": {"vocab_size": 100}}"#, "c.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("decoder_config.bos_token_id"), "{e}");
    let e = ClvpConfig::from_json(r#"{"decoder_config": {"hidden_size": 0}}"#, "c.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("decoder_config.hidden_size"), "{e}");
}
