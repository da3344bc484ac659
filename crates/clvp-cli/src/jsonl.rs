//! Codes as JSON lines, one code frame a line, for `encodec encode|decode --stream` (docs/streaming.md):
//!
//! ```text
//! {"type":"header","model":"encodec_24khz","sample_rate":24000,"channels":1,"num_codebooks":8,"bandwidth":6.0}
//! {"type":"frame","codes":[62,913,786,475,3,841,125,519]}
//! …
//! {"type":"end_segment","scale":null}
//! {"type":"end","audio_length":240000}
//! ```
//!
//! A frame line holds the frame's code of every codebook, in codebook order. `end_segment` closes a segment
//! (the 48 kHz model's 1 s chunks; the 24 kHz model has one, closed at the end) with its RMS scale (`null` for
//! models that do not normalise). The clip's length is known only once the input ends, so it comes last: a
//! reader cuts the decoded audio to it.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, bail};
use clvp::raw::encodec::CodeEvent;
use serde_json::{Value, json};

/// The longest line read (a frame of 32 codebooks is under 300 bytes).
const MAX_LINE: u64 = 1 << 16;

/// What a header line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Meta's model name (`encodec_24khz`), when the model has a released layout.
    pub model: Option<String>,
    pub sample_rate: u32,
    pub channels: usize,
    pub num_codebooks: usize,
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Frame(Vec<u32>),
    EndSegment(Option<f32>),
    End(usize),
}

/// The header line (keys in this order, `type` first, for a reader that looks at the start of a line).
pub fn header_line(h: &Header, bandwidth: f64) -> String {
    format!(
        "{{\"type\":\"header\",\"model\":{},\"sample_rate\":{},\"channels\":{},\"num_codebooks\":{},\"bandwidth\":{}}}",
        json!(h.model),
        h.sample_rate,
        h.channels,
        h.num_codebooks,
        json!(bandwidth)
    )
}

/// Write one encoder event as lines: a frame a line (`codes` is codebook-major over `frames`).
pub fn write_event(w: &mut impl Write, event: CodeEvent<'_>) -> Result<()> {
    let mut line = String::new();
    match event {
        CodeEvent::Frames { codes, frames } => {
            let k = codes.len().checked_div(frames).unwrap_or(0);
            for t in 0..frames {
                line.clear();
                line.push_str("{\"type\":\"frame\",\"codes\":[");
                for q in 0..k {
                    if q > 0 {
                        line.push(',');
                    }
                    line.push_str(&codes[q * frames + t].to_string());
                }
                line.push_str("]}\n");
                w.write_all(line.as_bytes())?;
            }
        }
        CodeEvent::EndSegment { scale } => {
            // f32's shortest text that reads back to the same f32.
            let scale = match scale {
                None => "null".to_string(),
                Some(s) if s.is_finite() => format!("{s}"),
                Some(s) => bail!("a segment's scale is {s}, which JSON cannot hold"),
            };
            writeln!(w, "{{\"type\":\"end_segment\",\"scale\":{scale}}}")?;
        }
    }
    Ok(())
}

/// The last line.
pub fn end_line(audio_length: usize) -> String {
    format!("{{\"type\":\"end\",\"audio_length\":{audio_length}}}")
}

/// Reads the lines of a codes stream; `name` labels errors, with the line number.
pub struct JsonlReader<R> {
    r: R,
    name: String,
    line: usize,
    buf: Vec<u8>,
    ended: bool,
}

impl<R: BufRead> JsonlReader<R> {
    /// Read the header line.
    pub fn new(r: R, name: &str) -> Result<(Self, Header)> {
        let mut reader = JsonlReader {
            r,
            name: name.to_string(),
            line: 0,
            buf: Vec::new(),
            ended: false,
        };
        let Some(v) = reader.next_value()? else {
            bail!("{name}: no codes: the input is empty");
        };
        let at = reader.at();
        if v["type"] != "header" {
            bail!("{at}: the first line must be the header (\"type\":\"header\")");
        }
        let int = |key: &str| -> Result<u64> {
            v[key].as_u64().with_context(|| {
                format!("{at}: the header's `{key}` must be a non-negative integer")
            })
        };
        let model = match &v["model"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => bail!("{at}: the header's `model` must be a string or null"),
        };
        let header = Header {
            model,
            sample_rate: u32::try_from(int("sample_rate")?)
                .with_context(|| format!("{at}: the header's `sample_rate` is too large"))?,
            channels: usize::try_from(int("channels")?)?,
            num_codebooks: usize::try_from(int("num_codebooks")?)?,
        };
        Ok((reader, header))
    }

    fn at(&self) -> String {
        format!("{} line {}", self.name, self.line)
    }

    /// The next line as JSON, `None` at the end of the input; blank lines are skipped.
    fn next_value(&mut self) -> Result<Option<Value>> {
        loop {
            self.buf.clear();
            let n = <&mut R as Read>::take(&mut self.r, MAX_LINE)
                .read_until(b'\n', &mut self.buf)
                .with_context(|| format!("reading {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.last() != Some(&b'\n') && n as u64 == MAX_LINE {
                bail!("{}: the line is longer than {MAX_LINE} bytes", self.at());
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v = serde_json::from_slice(&self.buf)
                .with_context(|| format!("{}: not a JSON line", self.at()))?;
            return Ok(Some(v));
        }
    }

    /// The next line; `None` once the `end` line has been read. The input must end with it.
    pub fn next_line(&mut self, num_codebooks: usize) -> Result<Option<Line>> {
        if self.ended {
            return Ok(None);
        }
        let Some(v) = self.next_value()? else {
            bail!(
                "{}: the codes end without their last line ({{\"type\":\"end\",\"audio_length\":…}}): the stream \
                 was cut short",
                self.name
            );
        };
        let at = self.at();
        let line = match v["type"].as_str() {
            Some("frame") => {
                let Some(codes) = v["codes"].as_array() else {
                    bail!("{at}: a frame needs `codes`, an array of integers");
                };
                if codes.len() != num_codebooks {
                    bail!(
                        "{at}: a frame of {} codes; the header says {num_codebooks} codebooks",
                        codes.len()
                    );
                }
                let codes = codes
                    .iter()
                    .map(|c| c.as_u64().and_then(|c| u32::try_from(c).ok()))
                    .collect::<Option<Vec<u32>>>()
                    .with_context(|| {
                        format!("{at}: codes must be non-negative integers below 2^32")
                    })?;
                Line::Frame(codes)
            }
            Some("end_segment") => match &v["scale"] {
                Value::Null => Line::EndSegment(None),
                s => Line::EndSegment(Some(
                    s.as_f64()
                        .with_context(|| format!("{at}: `scale` must be a number or null"))?
                        as f32,
                )),
            },
            Some("end") => {
                let n = v["audio_length"].as_u64().with_context(|| {
                    format!("{at}: the end line's `audio_length` must be a non-negative integer")
                })?;
                self.ended = true;
                if self.next_value()?.is_some() {
                    bail!("{}: lines follow the end line", self.at());
                }
                Line::End(usize::try_from(n)?)
            }
            Some("header") => bail!("{at}: a second header"),
            _ => bail!("{at}: unknown line type {}", v["type"]),
        };
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let h = Header {
            model: Some("encodec_24khz".into()),
            sample_rate: 24_000,
            channels: 1,
            num_codebooks: 2,
        };
        let mut out = format!("{}\n", header_line(&h, 1.5)).into_bytes();
        let codes = [1i64, 2, 3, 10, 20, 30];
        write_event(
            &mut out,
            CodeEvent::Frames {
                codes: &codes,
                frames: 3,
            },
        )
        .unwrap();
        write_event(&mut out, CodeEvent::EndSegment { scale: Some(0.5) }).unwrap();
        out.extend_from_slice(format!("{}\n", end_line(900)).as_bytes());
        let (mut r, got) = JsonlReader::new(out.as_slice(), "x").unwrap();
        assert_eq!(got, h);
        let mut lines = Vec::new();
        while let Some(l) = r.next_line(2).unwrap() {
            lines.push(l);
        }
        assert_eq!(
            lines,
            [
                Line::Frame(vec![1, 10]),
                Line::Frame(vec![2, 20]),
                Line::Frame(vec![3, 30]),
                Line::EndSegment(Some(0.5)),
                Line::End(900)
            ]
        );
    }

    #[test]
    fn broken_streams_are_named() {
        let head = "{\"type\":\"header\",\"model\":null,\"sample_rate\":24000,\"channels\":1,\"num_codebooks\":2}\n";
        let cases = [
            ("", "no codes"),
            ("{\"type\":\"frame\"}\n", "must be the header"),
            (head, "cut short"),
            (
                &format!("{head}{{\"type\":\"frame\",\"codes\":[1]}}\n"),
                "line 2: a frame of 1 codes",
            ),
            (
                &format!("{head}{{\"type\":\"frame\",\"codes\":[1,-2]}}\n"),
                "non-negative",
            ),
            (&format!("{head}not json\n"), "line 2: not a JSON line"),
            (
                &format!("{head}{{\"type\":\"end\",\"audio_length\":3}}\n{{}}\n"),
                "lines follow the end line",
            ),
        ];
        for (text, want) in cases {
            let err = JsonlReader::new(text.as_bytes(), "x").and_then(|(mut r, h)| {
                while r.next_line(h.num_codebooks)?.is_some() {}
                Ok(())
            });
            let msg = format!("{:#}", err.expect_err(want));
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        }
    }
}
