//! Many sampled candidates run in decoder batches of `CANDIDATE_BATCH` (the KV cache stays bounded whatever the
//! preset): the first batch is exactly the single `generate` call with the same seed, later batches use their own
//! seeds, results are deterministic under the seed, and every candidate is ranked.

use std::path::PathBuf;

use clvp::{CANDIDATE_BATCH, Clvp, ClvpError, GenerationConfig, MAX_BEAMS, MAX_CANDIDATES};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").expect("cpu device");
    Clvp::from_pretrained(dir.to_str().expect("utf-8 path"), &device).expect("tiny checkpoint")
}

fn voice() -> Vec<f32> {
    (0..22050)
        .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.1 * (i as f32 * 0.31).cos())
        .collect()
}

fn sampling(candidates: usize, seed: u64) -> GenerationConfig {
    GenerationConfig {
        do_sample: true,
        num_return_sequences: candidates,
        max_new_tokens: 12,
        temperature: 0.8,
        top_k: Some(50),
        top_p: 0.8,
        repetition_penalty: 2.0,
        seed,
        ..GenerationConfig::default()
    }
}

#[test]
fn candidates_beyond_one_batch_are_generated_in_batches() {
    let clvp = tiny();
    let v = [voice()];
    let n = CANDIDATE_BATCH + 5;
    let many = clvp
        .generate("Hello there.", &v, &sampling(n, 7))
        .expect("generate");
    assert_eq!(many.speech_ids.len(), n);
    assert_eq!(many.logits_per_text.len(), n);
    assert_eq!(many.speech_embeds.shape[0], n);
    assert_eq!(many.ranking.len(), n);
    let width = many.speech_ids[0].len();
    assert!(many.speech_ids.iter().all(|r| r.len() == width));

    // Batch 0 is the single call with the same seed.
    let first = clvp
        .generate("Hello there.", &v, &sampling(CANDIDATE_BATCH, 7))
        .expect("generate");
    for (i, row) in first.speech_ids.iter().enumerate() {
        assert_eq!(
            &many.speech_ids[i][..row.len()],
            &row[..],
            "candidate {i} of the first batch"
        );
        assert!(
            (many.logits_per_text[i] - first.logits_per_text[i]).abs() <= 1e-5,
            "candidate {i}: {} vs {}",
            many.logits_per_text[i],
            first.logits_per_text[i]
        );
    }
    // Deterministic under the seed; the second batch is not a copy of the first.
    let again = clvp
        .generate("Hello there.", &v, &sampling(n, 7))
        .expect("generate");
    assert_eq!(again.speech_ids, many.speech_ids);
    assert_ne!(
        &many.speech_ids[CANDIDATE_BATCH..],
        &many.speech_ids[..5],
        "the second batch samples with its own seed"
    );
}

#[test]
fn too_many_candidates_or_beams_are_refused_before_generating() {
    let clvp = tiny();
    let v = [voice()];
    for (gc, want) in [
        (sampling(MAX_CANDIDATES + 1, 0), "candidates"),
        (
            GenerationConfig {
                num_beams: MAX_BEAMS + 1,
                num_return_sequences: 1,
                max_new_tokens: 4,
                ..GenerationConfig::default()
            },
            "beams",
        ),
    ] {
        match clvp.generate("Hi.", &v, &gc) {
            Err(e @ (ClvpError::TooManyCandidates { .. } | ClvpError::TooManyBeams { .. })) => {
                assert!(e.to_string().contains(want), "{e}")
            }
            other => panic!("expected a typed error, got {other:?}"),
        }
    }
}
