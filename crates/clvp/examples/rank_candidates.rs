//! Rank speech candidates that came from elsewhere against a text, as `generate` ranks its own
//! (`Clvp::score`): the dataset filter (a transcript that does not match its audio's codes scores low) and
//! re-ranking.
//!
//! `cargo run -p clvp --example rank_candidates -- [MODEL] [TEXT]` (default: the tiny checkpoint in
//! `fixtures/clvp/tiny`, which is random-init: its scores are not meaningful, only the plumbing is).

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/clvp/tiny").into());
    let text = args
        .next()
        .unwrap_or_else(|| "Hello world, this is a test.".into());
    let device = clvp::device::device("cpu")?;
    let clvp = clvp::Clvp::from_pretrained(&model, &device)?;

    // Codes from another run or another model (any lengths).
    let candidates: Vec<Vec<u32>> = vec![
        vec![3, 157, 17, 85, 15, 5, 70, 83],
        vec![135, 17, 17, 85],
        vec![135, 17, 85, 70, 160, 5, 70, 9, 9, 40],
    ];
    let scores = clvp.score(&text, &candidates)?;
    for (rank, (index, logit)) in scores.ranking.iter().enumerate() {
        println!(
            "#{rank}: candidate {index} ({} codes) logit {logit:.4}",
            candidates[*index].len()
        );
    }
    Ok(())
}
