//! [`EcdcBodyWriter`]: the segments of an `.ecdc` file written as the codes of a stream come out, for audio
//! whose length is known only at its end.

use std::io::Write;

use super::{BitPacker, EcdcError, EcdcModel};

/// Writes the body of a raw-mode `.ecdc` file (each segment's scale and packed codes, byte for byte what
/// [`super::write_ecdc`] writes after the header) piece by piece, keeping no more than one segment's bytes
/// (the 48 kHz model's scale comes before its codes). The header goes first in the file but holds the audio
/// length: write the body to a temporary place, then [`super::write_ecdc_header`] and the body after it.
/// [`EcdcBodyWriter::finish`] checks the segments against the layout of that length.
#[derive(Debug)]
pub struct EcdcBodyWriter<W: Write> {
    w: W,
    model: EcdcModel,
    num_codebooks: Option<usize>,
    /// Frames of each finished segment.
    segments: Vec<u32>,
    /// Frames of the current segment so far.
    frames: usize,
    packer: BitPacker,
    /// The current segment's packed bytes not yet written.
    bytes: Vec<u8>,
}

impl<W: Write> EcdcBodyWriter<W> {
    /// A body for `model`, written to `w`.
    pub fn new(w: W, model: EcdcModel) -> Self {
        EcdcBodyWriter {
            w,
            model,
            num_codebooks: None,
            segments: Vec::new(),
            frames: 0,
            packer: BitPacker::new(model.bits),
            bytes: Vec::new(),
        }
    }

    /// The next `frames` frames of the current segment, codebook-major (`codes[k * frames + t]`).
    pub fn frames(&mut self, codes: &[i64], frames: usize) -> Result<(), EcdcError> {
        let segment = self.segments.len();
        let k = codes.len().checked_div(frames).unwrap_or(0);
        let expected = *self.num_codebooks.get_or_insert(k);
        if k != expected || k * frames != codes.len() {
            return Err(EcdcError::WrongCodebookCount {
                segment,
                expected,
                found: k,
            });
        }
        if k == 0 || k > self.model.max_codebooks {
            return Err(EcdcError::BadNumCodebooks {
                model: self.model.name,
                num_codebooks: k as u64,
                max: self.model.max_codebooks,
            });
        }
        let limit = 1u32 << self.model.bits;
        for t in 0..frames {
            for q in 0..k {
                let v = codes[q * frames + t];
                let code = u16::try_from(v).ok().filter(|&c| u32::from(c) < limit);
                let Some(code) = code else {
                    return Err(EcdcError::CodeOutOfRange {
                        segment,
                        codebook: q,
                        frame: self.frames + t,
                        value: u16::try_from(v.max(0)).unwrap_or(u16::MAX),
                        limit,
                    });
                };
                self.packer.push(code, &mut self.bytes);
            }
        }
        self.frames += frames;
        if !self.model.normalize {
            self.w.write_all(&self.bytes)?;
            self.bytes.clear();
        }
        Ok(())
    }

    /// The current segment ends; `scale` is its scale (models that normalise, exactly).
    pub fn end_segment(&mut self, scale: Option<f32>) -> Result<(), EcdcError> {
        let segment = self.segments.len();
        match (scale, self.model.normalize) {
            (None, true) => {
                return Err(EcdcError::MissingScale {
                    segment,
                    model: self.model.name,
                });
            }
            (Some(_), false) => {
                return Err(EcdcError::UnexpectedScale {
                    segment,
                    model: self.model.name,
                });
            }
            (Some(value), true) if !crate::is_valid_scale(value) => {
                return Err(EcdcError::NonFiniteScale { segment, value });
            }
            (Some(value), true) => self.w.write_all(&value.to_be_bytes())?,
            (None, false) => {}
        }
        self.packer.flush(&mut self.bytes);
        self.w.write_all(&self.bytes)?;
        self.bytes.clear();
        self.segments
            .push(u32::try_from(self.frames).unwrap_or(u32::MAX));
        self.frames = 0;
        Ok(())
    }

    /// Check the segments written against the layout of `audio_length` samples; returns the writer (flushed)
    /// and the number of codebooks, for the header.
    pub fn finish(mut self, audio_length: usize) -> Result<(W, usize), EcdcError> {
        if audio_length == 0 {
            return Err(EcdcError::EmptyAudio);
        }
        let k = self.num_codebooks.unwrap_or(0);
        let layout = self.model.segments(audio_length);
        if layout.len() != self.segments.len() || self.frames > 0 {
            return Err(EcdcError::WrongSegmentCount {
                model: self.model.name,
                audio_length,
                expected: layout.len(),
                found: self.segments.len() + usize::from(self.frames > 0),
            });
        }
        for (i, (&frames, lay)) in self.segments.iter().zip(&layout).enumerate() {
            if frames as usize != lay.frames {
                return Err(EcdcError::WrongFrameCount {
                    segment: i,
                    length: lay.length,
                    expected_frames: lay.frames,
                    num_codebooks: k,
                    expected_codes: lay.frames * k,
                    found_codes: frames as usize * k,
                });
            }
        }
        self.w.flush()?;
        Ok((self.w, k))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EcdcFile, EcdcSegment, write_ecdc, write_ecdc_header};
    use super::*;

    fn file(model: EcdcModel, audio_length: usize, k: usize) -> EcdcFile {
        let segments = model
            .segments(audio_length)
            .iter()
            .enumerate()
            .map(|(i, s)| EcdcSegment {
                scale: model.normalize.then_some(0.5 + i as f32),
                num_codebooks: k,
                codes: (0..s.frames * k)
                    .map(|j| ((j * 37 + i) % 1024) as u16)
                    .collect(),
            })
            .collect();
        EcdcFile {
            model: model.name.into(),
            audio_length,
            num_codebooks: k,
            segments,
        }
    }

    /// The body written piece by piece (pieces of `piece` frames), behind its header.
    fn streamed(f: &EcdcFile, model: EcdcModel, piece: usize) -> Result<Vec<u8>, EcdcError> {
        let mut body = EcdcBodyWriter::new(Vec::new(), model);
        let k = f.num_codebooks;
        for seg in &f.segments {
            let t = seg.frames();
            let mut at = 0;
            while at < t {
                let end = (at + piece).min(t);
                let codes: Vec<i64> = (0..k)
                    .flat_map(|q| {
                        seg.codes[q * t + at..q * t + end]
                            .iter()
                            .map(|&c| i64::from(c))
                    })
                    .collect();
                body.frames(&codes, end - at)?;
                at = end;
            }
            body.end_segment(seg.scale)?;
        }
        let (bytes, nc) = body.finish(f.audio_length)?;
        let mut out = Vec::new();
        write_ecdc_header(&mut out, &model, f.audio_length, nc)?;
        out.extend_from_slice(&bytes);
        Ok(out)
    }

    #[test]
    fn a_streamed_body_is_write_ecdcs_bytes() {
        for (model, al, k) in [
            (EcdcModel::ENCODEC_24KHZ, 13_337, 8),
            (EcdcModel::ENCODEC_24KHZ, 320, 3),
            (EcdcModel::ENCODEC_48KHZ, 100_000, 4),
            (EcdcModel::ENCODEC_48KHZ, 960, 16),
        ] {
            let f = file(model, al, k);
            let mut want = Vec::new();
            write_ecdc(&mut want, &f).unwrap_or_else(|e| panic!("{e}"));
            for piece in [1, 3, 7, 1000] {
                let got = streamed(&f, model, piece).unwrap_or_else(|e| panic!("{e}"));
                assert!(got == want, "{} al={al} k={k} piece={piece}", model.name);
            }
        }
    }

    #[test]
    fn a_streamed_body_is_checked() {
        let m24 = EcdcModel::ENCODEC_24KHZ;
        let f = file(m24, 3200, 2);
        // The layout of another length.
        let mut wrong = f.clone();
        wrong.audio_length = 6400;
        let err = streamed(&wrong, m24, 4).unwrap_err().to_string();
        assert!(err.contains("needs 20 frames"), "{err}");
        let mut body = EcdcBodyWriter::new(Vec::new(), m24);
        let err = body.frames(&[0, 1024], 1).unwrap_err().to_string();
        assert!(err.contains("code 1024 is out of range"), "{err}");
        let err = body.end_segment(Some(1.0)).unwrap_err().to_string();
        assert!(err.contains("has a scale"), "{err}");
        let mut body = EcdcBodyWriter::new(Vec::new(), EcdcModel::ENCODEC_48KHZ);
        let err = body.end_segment(None).unwrap_err().to_string();
        assert!(err.contains("no scale"), "{err}");
        let err = EcdcBodyWriter::new(Vec::new(), m24)
            .finish(0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("audio length is 0"), "{err}");
    }
}
