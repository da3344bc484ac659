//! `ClvpModelForConditionalGeneration`'s post-processing of generated codes: `fix_speech_decoder_output` and
//! `pad_to_max_mel_tokens`.

/// `ClvpModelForConditionalGeneration.generate(pad_to_max_mel_tokens=length)`: every sequence (start token
/// included) right-padded with `pad` (HF: the model generation config's `eos_token_id`, the stop id), or
/// cropped, to exactly `length` columns. Run it before [`fix_speech_decoder_output`]: a padded row without a
/// stop token then gets the filler tail too.
pub fn pad_to_max_mel_tokens(sequences: &[Vec<u32>], length: usize, pad: u32) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.resize(length, pad);
            s
        })
        .collect()
}

/// `fix_speech_decoder_output`: drop the leading start token; in rows that contain the stop token, every
/// column from `min(first stop, n − 3)` on becomes the filler row `[c0, …, c0, c1, c2, c3]` (`c` = the
/// decoder's `decoder_fixing_codes`), and any stop token becomes `c0`.
pub fn fix_speech_decoder_output(
    sequences: &[Vec<u32>],
    stop: u32,
    fixing_codes: &[i64],
) -> Vec<Vec<u32>> {
    let c0 = fixing_codes.first().copied().unwrap_or(83) as u32;
    sequences
        .iter()
        .map(|seq| {
            let codes: Vec<u32> = seq.iter().skip(1).copied().collect();
            let len = codes.len();
            let Some(first_stop) = codes.iter().position(|&c| c == stop) else {
                return codes;
            };
            let mut filler = vec![c0; len];
            let tail = &fixing_codes[1.min(fixing_codes.len())..];
            let k = tail.len().min(len);
            for (f, &c) in filler[len - k..].iter_mut().zip(&tail[tail.len() - k..]) {
                *f = c as u32;
            }
            let boundary = first_stop.min(len.saturating_sub(3));
            codes
                .iter()
                .enumerate()
                .map(|(i, &c)| if i >= boundary { filler[i] } else { c })
                .collect()
        })
        .collect()
}
