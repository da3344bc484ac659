//! `Clvp::score` (issue 29): candidates from elsewhere scored exactly as `generate` ranks its own — the text
//! with one EOS appended, each candidate embedded as given — and candidates of different lengths in one call.

use std::path::PathBuf;

use clvp::{Clvp, ClvpError, GenerationConfig};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"))
}

fn voice() -> Vec<f32> {
    (0..22050)
        .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.1 * (i as f32 * 0.31).cos())
        .collect()
}

const TEXT: &str = "Hello there, this is a test.";

/// HF's `logits_per_text` for one text row and code rows, computed by hand from the public pieces:
/// `get_text_features(ids + [eos])`, `get_speech_features` of each row alone, cosine × exp(logit_scale).
fn by_hand(clvp: &Clvp, rows: &[Vec<u32>]) -> Vec<f32> {
    let ids = clvp
        .text_ids_for_scoring(TEXT)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = clvp
        .get_text_features(&[ids], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let t = &text.values;
    rows.iter()
        .map(|r| {
            let s = clvp
                .get_speech_features(std::slice::from_ref(r))
                .unwrap_or_else(|e| panic!("{e}"))
                .values;
            let dot: f32 = t.iter().zip(&s).map(|(a, b)| a * b).sum();
            dot / (norm(t) * norm(&s)) * clvp.raw().logit_scale.exp()
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn scoring_generates_candidates_reproduces_its_ranking() {
    let clvp = tiny();
    let config = GenerationConfig {
        do_sample: true,
        num_return_sequences: 6,
        max_new_tokens: 14,
        seed: 11,
        ..GenerationConfig::default()
    };
    let out = clvp
        .generate(TEXT, &[voice()], &config)
        .unwrap_or_else(|e| panic!("{e}"));
    let scored = clvp
        .score(TEXT, &out.speech_ids)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scored.logits_per_text, out.logits_per_text);
    assert_eq!(scored.ranking, out.ranking);
    assert_eq!(scored.speech_embeds, out.speech_embeds);
    assert_eq!(scored.text_embeds, out.text_embeds);
    // And both are HF's similarity computed from the pieces (text with its EOS, rows alone).
    let want = by_hand(&clvp, &out.speech_ids);
    assert!(
        close(&scored.logits_per_text, &want, 1e-4),
        "{:?} vs {want:?}",
        scored.logits_per_text
    );
    // The trap the issue describes: the text embedded without the EOS gives other numbers.
    let plain = clvp.embed_text(TEXT).unwrap_or_else(|e| panic!("{e}"));
    let with_eos = clvp
        .get_text_features(
            &[clvp
                .text_ids_for_scoring(TEXT)
                .unwrap_or_else(|e| panic!("{e}"))],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(plain.values, with_eos.values);
}

#[test]
fn candidates_of_different_lengths_score_as_each_alone() {
    let clvp = tiny();
    let rows: Vec<Vec<u32>> = vec![
        vec![3, 157, 17, 85, 15, 5, 70],
        vec![135, 17],
        vec![135, 17, 85, 70, 160, 5, 70],
        vec![9, 9, 9, 9],
        vec![135, 17, 17],
    ];
    let scored = clvp.score(TEXT, &rows).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scored.logits_per_text.len(), rows.len());
    assert_eq!(scored.speech_embeds.shape[0], rows.len());
    let want = by_hand(&clvp, &rows);
    assert!(
        close(&scored.logits_per_text, &want, 1e-4),
        "{:?} vs {want:?}",
        scored.logits_per_text
    );
    for (i, row) in rows.iter().enumerate() {
        let alone = clvp
            .score(TEXT, std::slice::from_ref(row))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!((alone.logits_per_text[0] - scored.logits_per_text[i]).abs() <= 1e-5);
    }
    // The ranking is the logits sorted, best first.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| scored.logits_per_text[b].total_cmp(&scored.logits_per_text[a]));
    let ranked: Vec<usize> = scored.ranking.iter().map(|r| r.0).collect();
    assert_eq!(ranked, order);
}

#[test]
fn bad_candidates_are_errors_that_name_them() {
    let clvp = tiny();
    let none: Vec<Vec<u32>> = Vec::new();
    let msg = |r: Result<clvp::Scores, ClvpError>| match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(msg(clvp.score(TEXT, &none)).contains("no speech candidates"));
    assert!(msg(clvp.score(TEXT, &[vec![1u32, 2], vec![]])).contains("candidate 1 is empty"));
    let vocab = clvp.raw().config.speech_config.vocab_size as u32;
    assert!(msg(clvp.score(TEXT, &[vec![1u32, vocab]])).contains(&vocab.to_string()));
    assert!(msg(clvp.score("", &[vec![1u32, 2]])).contains("no tokens"));
}
