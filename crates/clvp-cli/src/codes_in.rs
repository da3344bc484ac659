//! The codes `encodec decode` reads ([`read_input_codes`]): an `.ecdc` file or stream (read piece by piece as it
//! is decoded; a regular file is checked whole first), HF's tensors in a `.safetensors` file (also from a stream
//! that may never end), or JSON lines ([`crate::jsonl`]), told apart by the extension or, on a pipe, the first
//! bytes.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clvp::raw::audio::STDIN_PATH;
use clvp::raw::encodec::ecdc::EcdcReader;
use clvp::{AudioCodes, HfCodes};
use safetensors::{Dtype, SafeTensors};

use crate::jsonl::{self, JsonlReader};
use crate::paths::{extension, label};

fn read_i64(st: &SafeTensors, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
    let t = st
        .tensor(name)
        .with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
    if t.dtype() != Dtype::I64 {
        bail!(
            "{}: `{name}` is {:?}, expected I64",
            path.display(),
            t.dtype()
        );
    }
    let v = t
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

/// The codes of a `.safetensors` file as `encode` writes them (`path` names it in errors).
fn read_codes(path: &Path, bytes: &[u8]) -> Result<AudioCodes> {
    let st = SafeTensors::deserialize(bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let (shape, codes) = read_i64(&st, path, "audio_codes")?;
    let shape: [usize; 4] = shape.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: audio_codes has shape {shape:?}, expected [chunks, 1, n_q, T]",
            path.display()
        )
    })?;
    let scalar = |name: &str| -> Result<usize> {
        let (s, v) = read_i64(&st, path, name)?;
        match v.as_slice() {
            [x] => usize::try_from(*x).or_else(|_| {
                bail!(
                    "{}: `{name}` must be one non-negative integer, found {x}",
                    path.display()
                )
            }),
            _ => bail!(
                "{}: `{name}` must be one non-negative integer, found shape {s:?}",
                path.display()
            ),
        }
    };
    let audio_scales = match st.tensor("audio_scales") {
        Ok(t) => {
            if t.dtype() != Dtype::F32 {
                bail!(
                    "{}: audio_scales is {:?}, expected F32",
                    path.display(),
                    t.dtype()
                );
            }
            Some(
                t.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
        Err(_) => None,
    };
    let hf = HfCodes {
        audio_codes: codes,
        shape,
        audio_scales,
        last_frame_pad_length: scalar("last_frame_pad_length")?,
        audio_length: scalar("audio_length")?,
    };
    AudioCodes::from_hf(&hf).with_context(|| format!("{}", path.display()))
}

/// The codes `decode` reads.
pub enum CodesIn {
    /// An `.ecdc` file or stream, its header read: the codes are read as they are decoded.
    Ecdc(Box<EcdcReader<Box<dyn Read>>>),
    /// HF's tensors from a `.safetensors` file.
    Tensors(AudioCodes),
    /// JSON lines, a code frame a line, read as they are decoded.
    Jsonl(Box<JsonlReader<BufReader<Box<dyn Read>>>>, jsonl::Header),
}

/// Read the codes of `path`: `.ecdc`, `.safetensors` or `.jsonl` by the extension; standard input (`-`), or a
/// pipe or device named without one (`<(cmd)`), by the first bytes (`ECDC` is Meta's container, `{` JSON lines).
pub fn read_input_codes(path: &Path) -> Result<CodesIn> {
    let name = label(path);
    let ext = extension(path);
    let stdin = path.as_os_str() == STDIN_PATH;
    let stream = stdin || std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    let ecdc = match ext.as_str() {
        "ecdc" => Some(true),
        "safetensors" | "jsonl" => Some(false),
        "" if stream => None,
        _ => bail!("{name}: the input of `decode` must end in .ecdc, .safetensors or .jsonl"),
    };
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) && !stdin {
        bail!("reading {name}: it is a directory");
    }
    let source: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(path).with_context(|| format!("reading {name}"))?)
    };
    let mut source = BufReader::new(source);
    // The first four bytes, put back in front of the rest.
    let mut head = Vec::new();
    (&mut source)
        .take(4)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {name}"))?;
    let lines = ext == "jsonl" || ext.is_empty() && head.first() == Some(&b'{');
    let ecdc = ecdc.unwrap_or(head == b"ECDC");
    let mut reader = Cursor::new(head).chain(source);
    if lines {
        let boxed: Box<dyn Read> = Box::new(reader);
        let (r, header) = JsonlReader::new(BufReader::new(boxed), &name)?;
        return Ok(CodesIn::Jsonl(Box::new(r), header));
    }
    if ecdc {
        let boxed: Box<dyn Read> = Box::new(reader);
        let file = EcdcReader::new(boxed)
            .with_context(|| format!("{name} is not a readable .ecdc file"))?;
        // A regular file is checked whole before any model loads (its size first, then one pass over its codes
        // and scales, a piece at a time); a stream is checked as it is decoded.
        if let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && !stdin
        {
            let unreadable = || format!("{name} is not a readable .ecdc file");
            file.check_body_len(meta.len().saturating_sub(file.header_len()))
                .with_context(unreadable)?;
            let again = File::open(path).with_context(|| format!("reading {name}"))?;
            let mut pass = EcdcReader::new(BufReader::new(again)).with_context(unreadable)?;
            while pass.next_piece(1 << 16).with_context(unreadable)?.is_some() {}
        }
        return Ok(CodesIn::Ecdc(Box::new(file)));
    }
    let bytes = if stream {
        read_safetensors_stream(&mut reader, &name)?
    } else {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {name}"))?;
        bytes
    };
    if bytes.is_empty() {
        bail!("{name}: no codes: the input is empty");
    }
    Ok(CodesIn::Tensors(read_codes(Path::new(&name), &bytes)?))
}

/// The largest safetensors header read from a stream (the `safetensors` crate's own limit).
const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// The bytes of a safetensors file from a stream that may never end (`/dev/zero`, a pipe): the header's length
/// (at most [`MAX_SAFETENSORS_HEADER`]), the header, then exactly the data its tensors' offsets reach, whatever
/// the stream would still give. A stream that goes on after that is not one safetensors file.
fn read_safetensors_stream(r: &mut impl Read, name: &str) -> Result<Vec<u8>> {
    let fail = || format!("reading {name}");
    let mut bytes = Vec::new();
    r.by_ref()
        .take(8)
        .read_to_end(&mut bytes)
        .with_context(fail)?;
    let Ok(len) = <[u8; 8]>::try_from(bytes.as_slice()) else {
        return Ok(bytes);
    };
    let n = u64::from_le_bytes(len);
    if n > MAX_SAFETENSORS_HEADER {
        bail!(
            "{name} is not a safetensors file: its header would be {n} bytes, more than {MAX_SAFETENSORS_HEADER}"
        );
    }
    r.by_ref()
        .take(n)
        .read_to_end(&mut bytes)
        .with_context(fail)?;
    // A header that is not JSON is reported by the parser, with the file's usual message.
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&bytes[8..]) else {
        return Ok(bytes);
    };
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    let room = usize::try_from(end)
        .ok()
        .filter(|&e| bytes.try_reserve_exact(e).is_ok());
    if room.is_none() {
        bail!(
            "{name}: its header declares {end} bytes of tensors, more than this machine can hold"
        );
    }
    r.by_ref()
        .take(end)
        .read_to_end(&mut bytes)
        .with_context(fail)?;
    let mut more = Vec::new();
    r.by_ref()
        .take(1)
        .read_to_end(&mut more)
        .with_context(fail)?;
    if !more.is_empty() {
        bail!("{name} is not a safetensors file: data goes on after its last tensor");
    }
    Ok(bytes)
}
