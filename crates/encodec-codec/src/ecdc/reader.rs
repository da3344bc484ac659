//! [`EcdcReader`]: an `.ecdc` stream read piece by piece, in memory bounded by a piece whatever its length.

use std::io::{self, Read};

use super::{
    ECDC_MAGIC, ECDC_VERSION, EcdcError, EcdcModel, SegmentLayout, SegmentPart, packed_len,
    parse_metadata, read_up_to,
};

/// What [`EcdcReader::next_piece`] hands out, in file order: each segment's code frames (one or more
/// pieces), then its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EcdcPiece<'a> {
    /// The next `frames` code frames of the current segment, codebook-major: `codes[k * frames + t]`.
    Frames {
        /// The codes, `num_codebooks × frames`.
        codes: &'a [u16],
        /// Frames in this piece.
        frames: usize,
    },
    /// The current segment is complete; its scale for models that normalise (read before its codes).
    EndSegment {
        /// The scale.
        scale: Option<f32>,
    },
}

/// The segment being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    index: usize,
    layout: SegmentLayout,
    scale: Option<f32>,
    /// Frames handed out.
    frames: usize,
    /// Packed bytes read.
    bytes: u64,
}

/// A raw-mode `.ecdc` stream read incrementally: the header at [`EcdcReader::new`], then the codes piece by
/// piece ([`EcdcReader::next_piece`]), with [`super::read_ecdc`]'s checks and errors (a truncated segment, a
/// bad scale, bytes after the last segment). Memory holds one piece of codes and a few bytes.
#[derive(Debug)]
pub struct EcdcReader<R> {
    r: R,
    model: EcdcModel,
    audio_length: usize,
    num_codebooks: usize,
    /// The next segment's first sample (`None` after the last).
    next_offset: Option<usize>,
    current: Option<Current>,
    /// Bits read but not unpacked yet (LSB-first) and their count.
    acc: u32,
    nbits: u32,
    codes: Vec<u16>,
    bytes: Vec<u8>,
    done: bool,
    /// Bytes of the header (magic, version, length, JSON).
    header_len: u64,
}

impl<R: Read> EcdcReader<R> {
    /// Read and check the header.
    pub fn new(mut r: R) -> Result<Self, EcdcError> {
        let pre = read_up_to(&mut r, 9)?;
        if let Some(Ok(found)) = pre.get(..4).map(<[u8; 4]>::try_from)
            && found != ECDC_MAGIC
        {
            return Err(EcdcError::BadMagic { found });
        }
        let &[_, _, _, _, version, l0, l1, l2, l3] = pre.as_slice() else {
            return Err(EcdcError::TruncatedHeader {
                what: "header",
                expected: 9,
                available: pre.len() as u64,
            });
        };
        if version != ECDC_VERSION {
            return Err(EcdcError::UnsupportedVersion(version));
        }
        let json_len = u64::from(u32::from_be_bytes([l0, l1, l2, l3]));
        let json = read_up_to(&mut r, json_len)?;
        if (json.len() as u64) < json_len {
            return Err(EcdcError::TruncatedHeader {
                what: "metadata JSON",
                expected: json_len,
                available: json.len() as u64,
            });
        }
        let (model, audio_length, num_codebooks) = parse_metadata(&json)?;
        Ok(EcdcReader {
            r,
            model,
            audio_length,
            num_codebooks,
            next_offset: Some(0),
            current: None,
            acc: 0,
            nbits: 0,
            codes: Vec::new(),
            bytes: Vec::new(),
            done: false,
            header_len: 9 + json_len,
        })
    }

    /// The model the header names.
    pub fn model(&self) -> EcdcModel {
        self.model
    }

    /// Audio length in samples per channel (`al`).
    pub fn audio_length(&self) -> usize {
        self.audio_length
    }

    /// Codebooks per frame (`nc`).
    pub fn num_codebooks(&self) -> usize {
        self.num_codebooks
    }

    /// Bytes of the header, read by [`EcdcReader::new`].
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Check, before reading them, that `available` bytes after the header hold every segment the header
    /// declares: a file whose size is known (a regular file) is then found truncated before any decoding,
    /// with the error reading it would give. Bytes beyond the last segment are found when they are read.
    pub fn check_body_len(&self, available: u64) -> Result<(), EcdcError> {
        let model = self.model;
        let (k, al) = (self.num_codebooks, self.audio_length);
        let scale = if model.normalize { 4u64 } else { 0 };
        let hop = model.hop_length.max(1);
        let seg_len = model.segment_length.unwrap_or(al);
        let stride = model.segment_stride.unwrap_or(al).max(1);
        let cut = |segment: usize, rem: u64, frames: usize| {
            let codes = packed_len(frames, k, model.bits);
            if rem < scale {
                Err(EcdcError::TruncatedSegment {
                    segment,
                    part: SegmentPart::Scale,
                    expected: 4,
                    available: rem,
                })
            } else if rem - scale < codes {
                Err(EcdcError::TruncatedSegment {
                    segment,
                    part: SegmentPart::Codes,
                    expected: codes,
                    available: rem - scale,
                })
            } else {
                Ok(rem - scale - codes)
            }
        };
        // Segments of the full length, all alike, then the last one or two (shorter).
        let full = if al >= seg_len {
            (al - seg_len) / stride + 1
        } else {
            0
        };
        let each = scale.saturating_add(packed_len(seg_len.div_ceil(hop), k, model.bits));
        let mut rem = available;
        if full > 0 {
            let fit = usize::try_from(rem / each.max(1)).unwrap_or(usize::MAX);
            if fit < full {
                cut(fit, rem - fit as u64 * each, seg_len.div_ceil(hop))?;
            }
            rem -= full as u64 * each;
        }
        let mut offset = full.checked_mul(stride);
        let mut index = full;
        while let Some(layout) = offset.and_then(|o| self.layout(o)) {
            rem = cut(index, rem, layout.frames)?;
            offset = layout.offset.checked_add(stride);
            index += 1;
        }
        Ok(())
    }

    /// The next piece: at most `max_frames` code frames of the current segment, or its end. `None` once the
    /// stream is read to its end (bytes after the last segment are an error).
    pub fn next_piece(&mut self, max_frames: usize) -> Result<Option<EcdcPiece<'_>>, EcdcError> {
        if self.done {
            return Ok(None);
        }
        let cur = match self.current {
            Some(cur) => cur,
            None => {
                let Some(layout) = self.next_offset.and_then(|o| self.layout(o)) else {
                    self.done = true;
                    let trailing = io::copy(&mut self.r, &mut io::sink())?;
                    if trailing > 0 {
                        return Err(EcdcError::TrailingBytes { count: trailing });
                    }
                    return Ok(None);
                };
                let index = self.next_index(layout.offset);
                let scale = if self.model.normalize {
                    Some(self.read_scale(index)?)
                } else {
                    None
                };
                let cur = Current {
                    index,
                    layout,
                    scale,
                    frames: 0,
                    bytes: 0,
                };
                self.current = Some(cur);
                cur
            }
        };
        if cur.frames == cur.layout.frames {
            self.current = None;
            (self.acc, self.nbits) = (0, 0);
            self.next_offset = self.stride().and_then(|s| cur.layout.offset.checked_add(s));
            return Ok(Some(EcdcPiece::EndSegment { scale: cur.scale }));
        }
        let frames = max_frames.max(1).min(cur.layout.frames - cur.frames);
        self.read_frames(cur, frames)?;
        Ok(Some(EcdcPiece::Frames {
            codes: &self.codes,
            frames,
        }))
    }

    /// Distance between segment starts; `None` for a model with one segment.
    fn stride(&self) -> Option<usize> {
        self.model.segment_stride.map(|s| s.max(1))
    }

    /// The segment starting at `offset`, if the audio reaches it.
    fn layout(&self, offset: usize) -> Option<SegmentLayout> {
        if offset >= self.audio_length {
            return None;
        }
        let seg_len = self.model.segment_length.unwrap_or(self.audio_length);
        let length = (self.audio_length - offset).min(seg_len);
        Some(SegmentLayout {
            offset,
            length,
            frames: length.div_ceil(self.model.hop_length.max(1)),
        })
    }

    fn next_index(&self, offset: usize) -> usize {
        self.stride().map_or(0, |s| offset / s)
    }

    /// The 4-byte scale in front of segment `index`'s codes.
    fn read_scale(&mut self, index: usize) -> Result<f32, EcdcError> {
        let b = read_up_to(&mut self.r, 4)?;
        let &[b0, b1, b2, b3] = b.as_slice() else {
            return Err(EcdcError::TruncatedSegment {
                segment: index,
                part: SegmentPart::Scale,
                expected: 4,
                available: b.len() as u64,
            });
        };
        let value = f32::from_be_bytes([b0, b1, b2, b3]);
        if !crate::is_valid_scale(value) {
            return Err(EcdcError::NonFiniteScale {
                segment: index,
                value,
            });
        }
        Ok(value)
    }

    /// Read and unpack the next `frames` frames of the current segment into `self.codes` (`[k][frames]`).
    fn read_frames(&mut self, cur: Current, frames: usize) -> Result<(), EcdcError> {
        let (k, bits) = (self.num_codebooks, self.model.bits);
        let total = packed_len(cur.layout.frames, k, bits);
        let need_bits =
            (frames as u128 * k as u128 * u128::from(bits)).saturating_sub(u128::from(self.nbits));
        let want = u64::try_from(need_bits.div_ceil(8))
            .unwrap_or(u64::MAX)
            .min(total - cur.bytes);
        self.bytes.clear();
        (&mut self.r).take(want).read_to_end(&mut self.bytes)?;
        let got = self.bytes.len() as u64;
        if got < want {
            return Err(EcdcError::TruncatedSegment {
                segment: cur.index,
                part: SegmentPart::Codes,
                expected: total,
                available: cur.bytes + got,
            });
        }
        self.codes.clear();
        self.codes.resize(frames * k, 0);
        let mask = (1u32 << bits) - 1;
        let mut input = self.bytes.iter();
        for t in 0..frames {
            for q in 0..k {
                while self.nbits < bits {
                    self.acc |= u32::from(input.next().copied().unwrap_or(0)) << self.nbits;
                    self.nbits += 8;
                }
                if let Some(slot) = self.codes.get_mut(q * frames + t) {
                    *slot = (self.acc & mask) as u16;
                }
                self.acc >>= bits;
                self.nbits -= bits;
            }
        }
        self.current = Some(Current {
            frames: cur.frames + frames,
            bytes: cur.bytes + got,
            ..cur
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EcdcFile, EcdcSegment, read_ecdc, write_ecdc};
    use super::*;

    fn file(model: EcdcModel, audio_length: usize, k: usize) -> EcdcFile {
        let mut s = audio_length as u64 * 31 + k as u64;
        let segments = model
            .segments(audio_length)
            .iter()
            .enumerate()
            .map(|(i, l)| EcdcSegment {
                scale: model.normalize.then_some(0.5 + i as f32),
                num_codebooks: k,
                codes: (0..l.frames * k)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) % 1024) as u16
                    })
                    .collect(),
            })
            .collect();
        EcdcFile {
            model: model.name.to_string(),
            audio_length,
            num_codebooks: k,
            segments,
        }
    }

    /// The file read piece by piece, `sizes` frames at a time in turn.
    fn gather(bytes: &[u8], sizes: &[usize]) -> Result<EcdcFile, EcdcError> {
        let mut reader = EcdcReader::new(bytes)?;
        let k = reader.num_codebooks();
        let mut segments = Vec::new();
        let mut rows: Vec<Vec<u16>> = vec![Vec::new(); k];
        let mut i = 0;
        while let Some(piece) = reader.next_piece(sizes[i % sizes.len()])? {
            i += 1;
            match piece {
                EcdcPiece::Frames { codes, frames } => {
                    for (row, c) in rows.iter_mut().zip(codes.chunks_exact(frames)) {
                        row.extend_from_slice(c);
                    }
                }
                EcdcPiece::EndSegment { scale } => segments.push(EcdcSegment {
                    scale,
                    num_codebooks: k,
                    codes: rows.iter_mut().flat_map(std::mem::take).collect(),
                }),
            }
        }
        Ok(EcdcFile {
            model: reader.model().name.to_string(),
            audio_length: reader.audio_length(),
            num_codebooks: k,
            segments,
        })
    }

    #[test]
    fn pieces_of_any_size_read_the_whole_file() {
        for (model, lens) in [
            (
                EcdcModel::ENCODEC_24KHZ,
                &[1usize, 319, 320, 24_000 * 3 + 7][..],
            ),
            (EcdcModel::ENCODEC_48KHZ, &[1, 48_000, 47_520 * 3 + 100][..]),
        ] {
            for &len in lens {
                for k in [1, 3, 8] {
                    let want = file(model, len, k);
                    let mut bytes = Vec::new();
                    write_ecdc(&mut bytes, &want).unwrap_or_else(|e| panic!("{e}"));
                    for sizes in [&[1usize][..], &[2, 7, 1000], &[usize::MAX]] {
                        let got = gather(&bytes, sizes).unwrap_or_else(|e| panic!("{e}"));
                        assert!(got == want, "{} L={len} k={k} {sizes:?}", model.name);
                    }
                    // Cut anywhere, piece by piece: the error of the whole-file reader.
                    for cut in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
                        let whole = read_ecdc(&mut &bytes[..cut])
                            .map(drop)
                            .map_err(|e| e.to_string());
                        let pieces = gather(&bytes[..cut], &[3])
                            .map(drop)
                            .map_err(|e| e.to_string());
                        assert!(whole.is_err(), "cut {cut} reads");
                        assert_eq!(pieces, whole, "{} L={len} k={k} cut {cut}", model.name);
                    }
                    let header = EcdcReader::new(&bytes[..]).map(|r| r.header_len());
                    let header = header.unwrap_or_else(|e| panic!("{e}"));
                    for cut in 0..bytes.len() as u64 - header {
                        let r = EcdcReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
                        let early = r.check_body_len(cut).map_err(|e| e.to_string());
                        let late = gather(&bytes[..(header + cut) as usize], &[4]).map(drop);
                        assert_eq!(early, late.map_err(|e| e.to_string()), "cut {cut}");
                    }
                    let r = EcdcReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
                    assert!(r.check_body_len(bytes.len() as u64 - header).is_ok());
                    bytes.push(0);
                    let err = gather(&bytes, &[5]).map(drop).map_err(|e| e.to_string());
                    assert_eq!(
                        err,
                        read_ecdc(&mut &bytes[..])
                            .map(drop)
                            .map_err(|e| e.to_string())
                    );
                    assert!(err.is_err_and(|e| e.contains("after")), "trailing byte");
                }
            }
        }
    }
}
