//! Contrastive scoring and ranking of CLVP speech candidates against a text.
//!
//! * [`logits_per_text`] — HF's similarity head (`ClvpModelForConditionalGeneration`): L2-normalise both sides
//!   (no epsilon), `t̂ · ŝᵀ · exp(logit_scale)`, a `[texts, candidates]` matrix.
//! * [`pairwise_scores`] — Tortoise's form (`CLVP.forward(..., return_loss=False)`): one score per
//!   (text_i, speech_i) pair.
//! * [`softmax`], [`top_k`] — probabilities over candidates and the best candidates with their indices.
//!
//! Embeddings are row-major `[rows, dim]` slices; everything runs on the host in f32 like the reference.

/// Inputs that cannot be scored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RankError {
    /// Embedding widths differ, or a buffer is not a whole number of rows.
    #[error("embedding shapes do not fit: {0}")]
    Shape(String),
}

fn rows(values: &[f32], dim: usize, what: &str) -> Result<usize, RankError> {
    if dim == 0 || !values.len().is_multiple_of(dim) {
        return Err(RankError::Shape(format!(
            "{what}: {} values are not rows of width {dim}",
            values.len()
        )));
    }
    Ok(values.len() / dim)
}

/// L2-normalise each row (HF divides by the norm with no epsilon: a zero row gives NaN, as there).
pub fn normalize(values: &[f32], dim: usize) -> Result<Vec<f32>, RankError> {
    rows(values, dim, "embeddings")?;
    Ok(values
        .chunks(dim)
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter().map(move |v| v / norm)
        })
        .collect())
}

/// HF's `logits_per_text` `[texts, candidates]` from un-normalised embeddings.
pub fn logits_per_text(
    text: &[f32],
    speech: &[f32],
    dim: usize,
    logit_scale: f32,
) -> Result<Vec<f32>, RankError> {
    let nt = rows(text, dim, "text embeddings")?;
    let ns = rows(speech, dim, "speech embeddings")?;
    let (t, s) = (normalize(text, dim)?, normalize(speech, dim)?);
    let scale = logit_scale.exp();
    let mut out = Vec::with_capacity(nt * ns);
    for i in 0..nt {
        for j in 0..ns {
            let dot: f32 = t[i * dim..(i + 1) * dim]
                .iter()
                .zip(&s[j * dim..(j + 1) * dim])
                .map(|(a, b)| a * b)
                .sum();
            out.push(dot * scale);
        }
    }
    Ok(out)
}

/// Tortoise's pairwise scores: `⟨t̂_i, ŝ_i⟩ · exp(logit_scale)` for each row pair (one text row broadcast to
/// every candidate when `text` has a single row).
pub fn pairwise_scores(
    text: &[f32],
    speech: &[f32],
    dim: usize,
    logit_scale: f32,
) -> Result<Vec<f32>, RankError> {
    let nt = rows(text, dim, "text embeddings")?;
    let ns = rows(speech, dim, "speech embeddings")?;
    if nt != 1 && nt != ns {
        return Err(RankError::Shape(format!(
            "{nt} text rows for {ns} candidates (need 1 or {ns})"
        )));
    }
    let (t, s) = (normalize(text, dim)?, normalize(speech, dim)?);
    let scale = logit_scale.exp();
    Ok((0..ns)
        .map(|j| {
            let i = if nt == 1 { 0 } else { j };
            t[i * dim..(i + 1) * dim]
                .iter()
                .zip(&s[j * dim..(j + 1) * dim])
                .map(|(a, b)| a * b)
                .sum::<f32>()
                * scale
        })
        .collect())
}

/// Softmax of one row of scores (probabilities over candidates).
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// The `k` best candidates, best first, as `(index, score)`; ties keep the lower index first.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_and_pairwise_agree_on_the_diagonal() {
        let t = [1.0, 0.0, 0.0, 2.0];
        let s = [3.0, 0.0, 1.0, 1.0];
        let m = logits_per_text(&t, &s, 2, 0.0).expect("shapes");
        assert_eq!(m.len(), 4);
        assert!((m[0] - 1.0).abs() < 1e-6);
        let p = pairwise_scores(&t, &s, 2, 0.0).expect("shapes");
        assert!((p[0] - m[0]).abs() < 1e-6 && (p[1] - m[3]).abs() < 1e-6);
    }

    #[test]
    fn ranking_and_probabilities() {
        let scores = [0.5, 2.0, 1.0, 2.0];
        assert_eq!(top_k(&scores, 2), vec![(1, 2.0), (3, 2.0)]);
        let p = softmax(&scores);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(logits_per_text(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2, 0.0).is_err());
        assert!(
            pairwise_scores(
                &[1.0, 0.0, 0.0, 1.0],
                &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
                2,
                0.0
            )
            .is_err()
        );
    }
}
