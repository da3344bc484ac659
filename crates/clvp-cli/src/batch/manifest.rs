//! The manifest of `clvp batch`: JSONL, CSV or Parquet rows with `id` and, as the job needs them, `audio` (a
//! path), `text` and `codes`. Relative paths resolve against the manifest's folder.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt16Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Speech codes given in the manifest: a path to a codes file, or the integers themselves.
#[derive(Debug, Clone, PartialEq)]
pub enum CodesCell {
    /// A file (`.ecdc`, `.safetensors`), resolved against the manifest's folder.
    Path(PathBuf),
    /// The codes, as a JSON or Parquet list of integers or a CSV cell `5 9 17` / `5,9,17`.
    Ids(Vec<i64>),
}

/// One row of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique among the rows; the key of sharding and resuming.
    pub id: String,
    /// An audio file.
    pub audio: Option<PathBuf>,
    /// A text.
    pub text: Option<String>,
    /// Codes.
    pub codes: Option<CodesCell>,
    /// Where the row is in the manifest (1-based line or row), for messages.
    pub row: usize,
}

/// The columns a job needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub audio: bool,
    pub text: bool,
    pub codes: bool,
}

/// Read every row of the manifest `path` whose bytes are `bytes` (read once: it may be a pipe), in the format
/// of its extension (`.jsonl`/`.ndjson`, `.csv`, `.parquet`) or, without one, of its first bytes; check that ids
/// are present and unique and that the columns `needs` names exist. A missing value in a row is the item's
/// error later, not the manifest's.
pub fn read(path: &Path, bytes: Vec<u8>, needs: Needs) -> Result<Vec<Item>> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let ext = crate::paths::extension(path);
    let format = match ext.as_str() {
        "jsonl" | "ndjson" => "jsonl",
        "csv" => "csv",
        "parquet" => "parquet",
        "" if bytes.starts_with(b"PAR1") => "parquet",
        "" if bytes.trim_ascii_start().starts_with(b"{") => "jsonl",
        "" if !bytes.is_empty() => "csv",
        _ => bail!(
            "{}: a manifest is .jsonl, .csv or .parquet (with columns id, audio, text, codes)",
            path.display()
        ),
    };
    let (items, columns) = match format {
        "jsonl" => read_jsonl(path, &bytes, &base)?,
        "csv" => read_csv(path, &bytes, &base)?,
        _ => read_parquet(path, bytes, &base)?,
    };
    for (name, needed) in [
        ("audio", needs.audio),
        ("text", needs.text),
        ("codes", needs.codes),
    ] {
        if needed && !columns.contains(name) {
            bail!(
                "{}: the manifest has no `{name}` column, which this job needs",
                path.display()
            );
        }
    }
    let mut seen = HashSet::with_capacity(items.len());
    for item in &items {
        if !seen.insert(item.id.as_str()) {
            bail!(
                "{}: row {}: the id `{}` is used twice (ids must be unique: they key sharding and resuming)",
                path.display(),
                item.row,
                item.id
            );
        }
    }
    Ok(items)
}

fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// An id as the manifest gives it: a string, or an integer written as a string.
fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Codes in a CSV cell: integers separated by commas or spaces, or a path.
fn codes_text(base: &Path, s: &str) -> Result<CodesCell, String> {
    let t = s.trim().trim_start_matches('[').trim_end_matches(']');
    if !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '-' || c.is_whitespace())
    {
        let ids: Result<Vec<i64>, _> = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|x| !x.is_empty())
            .map(str::parse::<i64>)
            .collect();
        return ids
            .map(CodesCell::Ids)
            .map_err(|e| format!("codes `{s}`: {e}"));
    }
    Ok(CodesCell::Path(resolve(base, s)))
}

type Rows = (Vec<Item>, HashSet<&'static str>);

const COLUMNS: [&str; 4] = ["id", "audio", "text", "codes"];

fn read_jsonl(path: &Path, bytes: &[u8], base: &Path) -> Result<Rows> {
    let mut items = Vec::new();
    let mut columns = HashSet::new();
    for (i, line) in bytes.lines().enumerate() {
        let row = i + 1;
        let line = line.with_context(|| format!("{}: line {row}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {row} is not JSON", path.display()))?;
        let Some(obj) = v.as_object() else {
            bail!("{}: line {row} is not a JSON object", path.display());
        };
        for c in COLUMNS {
            if obj.contains_key(c) {
                columns.insert(c);
            }
        }
        let Some(id) = obj.get("id").and_then(id_text) else {
            bail!(
                "{}: line {row} has no `id` (a non-empty string or an integer)",
                path.display()
            );
        };
        let audio = obj
            .get("audio")
            .and_then(|v| v.as_str())
            .map(|s| resolve(base, s));
        let text = obj.get("text").and_then(|v| v.as_str()).map(str::to_string);
        let codes = match obj.get("codes") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(CodesCell::Path(resolve(base, s))),
            Some(serde_json::Value::Array(a)) => {
                let ids: Option<Vec<i64>> = a.iter().map(serde_json::Value::as_i64).collect();
                match ids {
                    Some(ids) => Some(CodesCell::Ids(ids)),
                    None => bail!(
                        "{}: line {row}: `codes` must be a list of integers or a path",
                        path.display()
                    ),
                }
            }
            Some(_) => bail!(
                "{}: line {row}: `codes` must be a list of integers or a path",
                path.display()
            ),
        };
        items.push(Item {
            id,
            audio,
            text,
            codes,
            row,
        });
    }
    Ok((items, columns))
}

fn read_csv(path: &Path, bytes: &[u8], base: &Path) -> Result<Rows> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header row", path.display()))?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (id, audio, text, codes) = (index("id"), index("audio"), index("text"), index("codes"));
    let Some(id) = id else {
        bail!("{}: the header row has no `id` column", path.display());
    };
    let columns: HashSet<&'static str> =
        COLUMNS.into_iter().filter(|c| index(c).is_some()).collect();
    let mut items = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.with_context(|| format!("{}: row {row}", path.display()))?;
        let cell = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|s| !s.is_empty());
        let Some(id) = cell(Some(id)) else {
            bail!("{}: row {row} has an empty `id`", path.display());
        };
        let codes = match cell(codes) {
            None => None,
            Some(s) => Some(
                codes_text(base, s)
                    .map_err(|e| anyhow::anyhow!("{}: row {row}: {e}", path.display()))?,
            ),
        };
        items.push(Item {
            id: id.to_string(),
            audio: cell(audio).map(|s| resolve(base, s)),
            text: cell(text).map(str::to_string),
            codes,
            row,
        });
    }
    Ok((items, columns))
}

fn read_parquet(path: &Path, bytes: Vec<u8>, base: &Path) -> Result<Rows> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .with_context(|| format!("{}: not a Parquet file", path.display()))?
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut items = Vec::new();
    let mut columns = HashSet::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        for c in COLUMNS {
            if batch.column_by_name(c).is_some() {
                columns.insert(c);
            }
        }
        parquet_rows(&batch, base, items.len(), &mut items)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok((items, columns))
}

/// The string values of a column (Utf8, LargeUtf8 or Utf8View; integers for `id`), `None` where null.
fn strings(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<String>>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let n = col.len();
    let value = |i: usize| -> Option<String> {
        if col.is_null(i) {
            return None;
        }
        match col.data_type() {
            DataType::Utf8 => Some(col.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => Some(col.as_string_view().value(i).to_string()),
            DataType::Int64 => Some(col.as_primitive::<Int64Type>().value(i).to_string()),
            DataType::Int32 => Some(col.as_primitive::<Int32Type>().value(i).to_string()),
            _ => None,
        }
    };
    match col.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {}
        DataType::Int64 | DataType::Int32 if name == "id" => {}
        other => bail!("the column `{name}` is {other}, not a string"),
    }
    Ok(Some((0..n).map(value).collect()))
}

/// The integer lists of the `codes` column (a list of any integer type), or paths if it holds strings.
fn codes_column(batch: &RecordBatch, base: &Path) -> Result<Option<Vec<Option<CodesCell>>>> {
    let Some(col) = batch.column_by_name("codes") else {
        return Ok(None);
    };
    if let Some(paths) = strings(batch, "codes").ok().flatten() {
        return Ok(Some(
            paths
                .into_iter()
                .map(|p| p.map(|p| CodesCell::Path(resolve(base, &p))))
                .collect(),
        ));
    }
    let list = match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().clone(),
        other => bail!("the column `codes` is {other}, not a list of integers or a path"),
    };
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            out.push(None);
            continue;
        }
        let v = list.value(i);
        let ids: Vec<i64> = match v.data_type() {
            DataType::Int64 => v.as_primitive::<Int64Type>().values().to_vec(),
            DataType::Int32 => v
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
            DataType::UInt32 => v
                .as_primitive::<UInt32Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
            DataType::UInt16 => v
                .as_primitive::<UInt16Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
            other => bail!("the column `codes` holds {other}, not integers"),
        };
        out.push(Some(CodesCell::Ids(ids)));
    }
    Ok(Some(out))
}

fn parquet_rows(
    batch: &RecordBatch,
    base: &Path,
    first: usize,
    items: &mut Vec<Item>,
) -> Result<()> {
    let Some(ids) = strings(batch, "id")? else {
        bail!("the manifest has no `id` column");
    };
    let audio = strings(batch, "audio")?;
    let text = strings(batch, "text")?;
    let codes = codes_column(batch, base)?;
    for (i, id) in ids.into_iter().enumerate() {
        let row = first + i + 1;
        let Some(id) = id.filter(|s| !s.is_empty()) else {
            bail!("row {row} has no `id`");
        };
        items.push(Item {
            id,
            audio: audio
                .as_ref()
                .and_then(|a| a[i].as_deref())
                .map(|s| resolve(base, s)),
            text: text.as_ref().and_then(|t| t[i].clone()),
            codes: codes.as_ref().and_then(|c| c[i].clone()),
            row,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn jsonl_and_csv_give_the_same_items_with_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let j = write(
            dir.path(),
            "m.jsonl",
            "{\"id\": \"a\", \"audio\": \"x/a.wav\", \"text\": \"hi\", \"codes\": [1, 2]}\n\n\
             {\"id\": 7, \"audio\": \"/abs/b.wav\", \"codes\": \"c.ecdc\"}\n",
        );
        let c = write(
            dir.path(),
            "m.csv",
            "id,audio,text,codes\na,x/a.wav,hi,\"1, 2\"\n7,/abs/b.wav,,c.ecdc\n",
        );
        let needs = Needs {
            audio: true,
            text: true,
            codes: true,
        };
        let mut a = read(&j, std::fs::read(&j).unwrap(), needs).unwrap();
        let mut b = read(&c, std::fs::read(&c).unwrap(), needs).unwrap();
        // A pipe has no extension: the format is read off the first bytes.
        let mut piped = read(Path::new("/dev/fd/63"), std::fs::read(&j).unwrap(), needs).unwrap();
        let mut piped_csv =
            read(Path::new("/dev/fd/63"), std::fs::read(&c).unwrap(), needs).unwrap();
        assert_eq!(
            a[0].audio.as_deref(),
            Some(dir.path().join("x/a.wav").as_path())
        );
        assert_eq!(a[1].audio.as_deref(), Some(Path::new("/abs/b.wav")));
        assert_eq!(a[0].codes, Some(CodesCell::Ids(vec![1, 2])));
        assert_eq!(a[1].codes, Some(CodesCell::Path(dir.path().join("c.ecdc"))));
        assert_eq!(a[1].id, "7");
        for i in a
            .iter_mut()
            .chain(b.iter_mut())
            .chain(piped.iter_mut())
            .chain(piped_csv.iter_mut())
        {
            i.row = 0;
            // The pipe's items resolve against /dev/fd: compare the file names.
            i.audio = i
                .audio
                .as_ref()
                .and_then(|p| p.file_name())
                .map(PathBuf::from);
            if let Some(CodesCell::Path(p)) = &i.codes {
                i.codes = p.file_name().map(|n| CodesCell::Path(PathBuf::from(n)));
            }
        }
        assert_eq!(a, b);
        assert_eq!(a, piped);
        assert_eq!(a, piped_csv);
    }

    #[test]
    fn duplicate_ids_and_missing_columns_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let j = write(dir.path(), "d.jsonl", "{\"id\": \"a\"}\n{\"id\": \"a\"}\n");
        let rd = |p: &Path, needs| read(p, std::fs::read(p).unwrap_or_default(), needs);
        let e = rd(&j, Needs::default()).unwrap_err().to_string();
        assert!(e.contains("`a` is used twice"), "{e}");
        let j = write(dir.path(), "n.jsonl", "{\"id\": \"a\", \"text\": \"t\"}\n");
        let needs = Needs {
            audio: true,
            ..Needs::default()
        };
        let e = rd(&j, needs).unwrap_err().to_string();
        assert!(e.contains("no `audio` column"), "{e}");
        let j = write(dir.path(), "x.jsonl", "{\"audio\": \"a.wav\"}\n");
        let e = rd(&j, Needs::default()).unwrap_err().to_string();
        assert!(e.contains("line 1 has no `id`"), "{e}");
        let e = rd(&dir.path().join("m.txt"), Needs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(".jsonl, .csv or .parquet"), "{e}");
    }
}
