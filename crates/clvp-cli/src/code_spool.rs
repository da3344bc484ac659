//! [`CodeSpool`]: the code events of an encoding written to an unnamed scratch file as they come and replayed
//! into a [`DecodeStream`] (what `encodec roundtrip` decodes from): 4 bytes a code on disk, a piece in memory.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, bail};
use clvp::raw::encodec::streaming::AudioSink;
use clvp::raw::encodec::{CodeEvent, CodesRef, DecodeStream};

use crate::output::{Scratch, ScratchReader, scratch};

/// Tags of the spool's records.
const FRAMES: u8 = b'F';
const END: u8 = b'E';

/// Code events spooled to a scratch file.
pub struct CodeSpool {
    file: Scratch,
    buf: Vec<u8>,
}

impl CodeSpool {
    /// An empty spool in `TMPDIR`.
    pub fn new() -> Result<Self> {
        Ok(CodeSpool {
            file: scratch()?,
            buf: Vec::new(),
        })
    }

    /// Append one event of the encoder.
    pub fn push(&mut self, event: CodeEvent<'_>) -> Result<()> {
        self.buf.clear();
        match event {
            CodeEvent::Frames { codes, frames } => {
                let k = codes.len().checked_div(frames).unwrap_or(0);
                self.buf.push(FRAMES);
                self.buf
                    .extend_from_slice(&u32::try_from(frames)?.to_le_bytes());
                self.buf.extend_from_slice(&u32::try_from(k)?.to_le_bytes());
                for &c in codes {
                    let c = u32::try_from(c).with_context(|| format!("code {c} out of range"))?;
                    self.buf.extend_from_slice(&c.to_le_bytes());
                }
            }
            CodeEvent::EndSegment { scale } => {
                self.buf.push(END);
                self.buf.push(u8::from(scale.is_some()));
                self.buf
                    .extend_from_slice(&scale.unwrap_or(0.0).to_le_bytes());
            }
        }
        self.file.write_all(&self.buf)?;
        Ok(())
    }

    /// The spool, read from its start.
    pub fn into_reader(self) -> Result<SpoolReader> {
        Ok(SpoolReader {
            file: std::io::BufReader::new(self.file.into_reader()?),
        })
    }
}

/// A [`CodeSpool`] read back.
pub struct SpoolReader {
    file: std::io::BufReader<ScratchReader>,
}

impl SpoolReader {
    /// Push every spooled event into `decoder` and finish it.
    pub fn replay(
        &mut self,
        mut decoder: DecodeStream<'_>,
        sink: &mut AudioSink<'_, anyhow::Error>,
    ) -> Result<()> {
        let mut codes: Vec<u32> = Vec::new();
        let mut bytes = Vec::new();
        while !self.file.fill_buf()?.is_empty() {
            let mut tag = [0u8; 1];
            self.file.read_exact(&mut tag)?;
            match tag[0] {
                FRAMES => {
                    let mut head = [0u8; 8];
                    self.file.read_exact(&mut head)?;
                    let [f0, f1, f2, f3, k0, k1, k2, k3] = head;
                    let frames = u32::from_le_bytes([f0, f1, f2, f3]) as usize;
                    let k = u32::from_le_bytes([k0, k1, k2, k3]) as usize;
                    bytes.resize(4 * k * frames, 0);
                    self.file.read_exact(&mut bytes)?;
                    codes.clear();
                    codes.extend(
                        bytes
                            .chunks_exact(4)
                            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    decoder.push(CodesRef::U32(&codes), frames, sink)?;
                }
                END => {
                    let mut rest = [0u8; 5];
                    self.file.read_exact(&mut rest)?;
                    let [has, s0, s1, s2, s3] = rest;
                    let scale = (has == 1).then(|| f32::from_le_bytes([s0, s1, s2, s3]));
                    decoder.end_segment(scale, sink)?;
                }
                other => bail!("the codes' scratch file is corrupt (record tag {other})"),
            }
        }
        decoder.finish(sink)?;
        Ok(())
    }
}
