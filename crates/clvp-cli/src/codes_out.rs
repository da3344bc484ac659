//! The codes of `encodec encode` taken as the encoder makes them final ([`CodesWriter`]), written in the bytes
//! the whole-clip writer wrote:
//!
//! * `.ecdc`: the body is packed as the codes come ([`EcdcBodyWriter`], 10 bits a code) into a scratch file on
//!   disk; the header holds the audio length, so it is written at the end, then the body is copied after it.
//! * `.safetensors`: HF's `audio_codes` are codebook-major over a whole chunk (the 24 kHz model's one chunk is
//!   the whole clip), so the codes are gathered in memory at 32 bits ([`CompactCodes`], 4 bytes a code: 2.4 KB
//!   a second at 6 kbps) and written as i64 at the end, straight from there.
//! * `.jsonl`: a line a frame, written as the codes come ([`crate::jsonl`]), flushed after each event when the
//!   encoding is live (`--stream`), so that a reader of a pipe gets every frame as soon as it is final.

use std::io::Write;

use anyhow::{Result, bail};
use clvp::CompactCodes;
use clvp::raw::encodec::CodeEvent;
use clvp::raw::encodec::ecdc::{EcdcBodyWriter, EcdcModel, write_ecdc_header};
use safetensors::Dtype;

use crate::jsonl;
use crate::output::{Output, OutputWriter, Scratch, TensorHead, safetensors_header, scratch};

/// Where the codes of an encoding go.
pub enum CodesWriter<'a> {
    /// An `.ecdc` body in a scratch file.
    Ecdc(Box<EcdcBodyWriter<Scratch>>, EcdcModel),
    /// Codes gathered for a `.safetensors` file.
    Tensors(CompactCodes),
    /// JSON lines written as they come; flushed after each event when live.
    Jsonl { w: OutputWriter<'a>, live: bool },
}

impl<'a> CodesWriter<'a> {
    /// JSON lines to `out`, the header line first.
    pub fn jsonl(
        out: &'a Output,
        header: &jsonl::Header,
        bandwidth: f64,
        live: bool,
    ) -> Result<Self> {
        let mut w = out.writer()?;
        writeln!(w, "{}", jsonl::header_line(header, bandwidth))?;
        if live {
            w.flush()?;
        }
        Ok(CodesWriter::Jsonl { w, live })
    }

    /// An `.ecdc` file of `model`'s layout.
    pub fn ecdc(model: EcdcModel) -> Result<Self> {
        Ok(CodesWriter::Ecdc(
            Box::new(EcdcBodyWriter::new(scratch()?, model)),
            model,
        ))
    }

    /// HF's tensors in a `.safetensors` file.
    pub fn tensors() -> Self {
        CodesWriter::Tensors(CompactCodes::default())
    }

    /// One event of the encoder.
    pub fn push(&mut self, event: CodeEvent<'_>) -> Result<()> {
        match (self, event) {
            (CodesWriter::Ecdc(body, _), CodeEvent::Frames { codes, frames }) => {
                body.frames(codes, frames)?
            }
            (CodesWriter::Ecdc(body, _), CodeEvent::EndSegment { scale }) => {
                body.end_segment(scale)?
            }
            (CodesWriter::Tensors(codes), event) => codes.push(event)?,
            (CodesWriter::Jsonl { w, live }, event) => {
                jsonl::write_event(w, event)?;
                if *live {
                    w.flush()?;
                }
            }
        }
        Ok(())
    }

    /// Write the file for audio of `audio_length` samples to `out`.
    pub fn finish(self, out: &Output, audio_length: usize) -> Result<()> {
        match self {
            CodesWriter::Ecdc(body, model) => {
                let (body, num_codebooks) = (*body).finish(audio_length)?;
                let mut header = Vec::new();
                write_ecdc_header(&mut header, &model, audio_length, num_codebooks)?;
                let mut body = body.into_reader()?;
                let mut w = out.writer()?;
                w.write_all(&header)?;
                std::io::copy(&mut body, &mut w)?;
                w.commit()
            }
            CodesWriter::Tensors(codes) => write_hf_codes(out, &codes, audio_length),
            CodesWriter::Jsonl { mut w, .. } => {
                writeln!(w, "{}", jsonl::end_line(audio_length))?;
                w.commit()
            }
        }
    }
}

/// `codes` in HF's form (`audio_codes` i64 `[chunks, 1, n_q, T]`, the last chunk right-padded with 0,
/// `audio_scales`, `last_frame_pad_length`, `audio_length`), as `AudioCodes::to_hf` and the whole-clip writer
/// give them (with `to_hf`'s checks and messages), written without a second copy of the codes.
fn write_hf_codes(out: &Output, codes: &CompactCodes, audio_length: usize) -> Result<()> {
    let segments = &codes.segments;
    let k = codes.num_codebooks;
    let n = segments.len();
    let (first, pad) = codes.hf_frames()?;
    let scales: Option<Vec<f32>> = segments.iter().map(|s| s.2).collect();
    let mut heads = vec![TensorHead::new(
        "audio_codes",
        Dtype::I64,
        vec![n, 1, k, first],
    )];
    if let Some(s) = &scales {
        heads.push(TensorHead::new(
            "audio_scales",
            Dtype::F32,
            vec![s.len(), 1],
        ));
    }
    heads.push(TensorHead::new(
        "last_frame_pad_length",
        Dtype::I64,
        vec![1],
    ));
    heads.push(TensorHead::new("audio_length", Dtype::I64, vec![1]));
    let (header, order) = safetensors_header(&heads)?;
    let mut w = out.writer()?;
    w.write_all(&header)?;
    let mut buf = Vec::new();
    for i in order {
        buf.clear();
        match heads[i].name.as_str() {
            "audio_codes" => {
                for (seg, frames, _) in segments {
                    for q in 0..k {
                        buf.clear();
                        let Some(row) = seg.get(q * frames..(q + 1) * frames) else {
                            bail!(
                                "a chunk of {frames} frames holds {} codes, not {k} rows",
                                seg.len()
                            );
                        };
                        for &c in row {
                            buf.extend_from_slice(&i64::from(c).to_le_bytes());
                        }
                        buf.resize(buf.len() + (first - frames) * 8, 0);
                        w.write_all(&buf)?;
                    }
                }
                buf.clear();
            }
            "audio_scales" => {
                for s in scales.iter().flatten() {
                    buf.extend_from_slice(&s.to_le_bytes());
                }
            }
            "last_frame_pad_length" => buf.extend_from_slice(&(pad as i64).to_le_bytes()),
            "audio_length" => buf.extend_from_slice(&(audio_length as i64).to_le_bytes()),
            other => bail!("no data for the tensor `{other}`"),
        }
        w.write_all(&buf)?;
    }
    w.commit()
}
