//! What is checked in a file's first bytes before symphonia reads it.

use crate::error::AudioError;

/// How much of a file [`check_header`] looks at.
pub(crate) const HEAD_LEN: usize = 4096;

/// Reject a WAV `fmt ` or AIFF `COMM` chunk whose frame (`channels × bytes per sample`) does not fit 16 bits
/// before symphonia reads it: symphonia 0.6.1 computes that product in `u16`, which panics where overflow
/// checks are on (debug builds: a header declaring 65535 channels of 16 bits crashed `clvp features`) and wraps
/// in release. Anything that is not a RIFF/WAVE or FORM/AIFF header within `head` is left to symphonia.
pub(crate) fn check_header(head: &[u8], file: &str) -> Result<(), AudioError> {
    let (big_endian, fmt_id) = match (head.get(0..4), head.get(8..12)) {
        (Some(b"RIFF"), Some(b"WAVE")) => (false, b"fmt "),
        (Some(b"FORM"), Some(b"AIFF" | b"AIFC")) => (true, b"COMM"),
        _ => return Ok(()),
    };
    let u16_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1]];
        if big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let mut pos = 12usize;
    while let Some(chunk) = head.get(pos..pos.saturating_add(8)) {
        let size = [chunk[4], chunk[5], chunk[6], chunk[7]];
        let size = if big_endian {
            u32::from_be_bytes(size)
        } else {
            u32::from_le_bytes(size)
        } as usize;
        if &chunk[0..4] == fmt_id {
            let Some(fmt) = head.get(pos + 8..pos + 24) else {
                return Ok(());
            };
            // WAV: channels at 2, bits at 14; AIFF: channels at 0, bits at 6.
            let (channels, bits) = if big_endian {
                (u16_at(fmt, 0), u16_at(fmt, 6))
            } else {
                (u16_at(fmt, 2), u16_at(fmt, 14))
            };
            let frame = u32::from(channels) * u32::from(bits).div_ceil(8);
            if frame > u32::from(u16::MAX) {
                return Err(AudioError::Malformed {
                    file: file.to_string(),
                    reason: format!(
                        "the header declares {channels} channels of {bits} bits: a frame of {frame} bytes, \
                         more than the format can hold (65535)"
                    ),
                });
            }
            return Ok(());
        }
        // Chunks are padded to an even size.
        pos = pos
            .saturating_add(8)
            .saturating_add(size.saturating_add(size & 1));
    }
    Ok(())
}
