//! The output directory of `clvp batch`:
//!
//! ```text
//! DIR/_job.json                          the job: kind, options, model, manifest, shard count (first run writes it;
//!                                        a run with anything else is refused)
//! DIR/shard-00002-of-00004.parquet       results, one row per item that worked, in manifest order
//! DIR/_errors/shard-00002-of-00004.parquet   (id, message) per item that failed
//! DIR/_records/shard-00002-of-00004.json     the job, the model, the options and the counts
//! DIR/.partial/shard-00002-of-00004/     checkpoints of an unfinished shard: chunk-000000.parquet, ... and a lock
//! ```
//!
//! Readers (pyarrow, HF `datasets`, Ray) skip names that start with `_` or `.`, so `DIR` reads as the results.
//! Every file appears by rename once complete and synced. A shard's results file is written last: its presence
//! says the shard is done. Its bytes depend only on the items' outcomes: the chunks are re-cut into row
//! groups of [`ROW_GROUP`] rows, so a run killed and resumed at any point writes the same file.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use arrow_select::concat::concat_batches;
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::shard::Shard;
use super::table::{self, Column, ERROR, Outcome};

/// Rows per row group of a results file.
pub const ROW_GROUP: usize = 128;

/// The identity file of an output directory.
pub const JOB_FILE: &str = "_job.json";

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build()
}

/// Write `bytes` to `path` whole or not at all: a temporary name beside it, synced, renamed, the folder synced.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        write(&mut f)?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the folder {}", dir.display()))
}

fn write_parquet(file: &mut File, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let mut w = ArrowWriter::try_new(file, schema, Some(props()))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

/// Make `dir` the output of `job` (a JSON object), or check that it already is: a directory begun by another
/// job, model, option set, manifest or shard count is refused, naming what differs.
pub fn claim(dir: &Path, job: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the output directory {}", dir.display()))?;
    let path = dir.join(JOB_FILE);
    let text = serde_json::to_string_pretty(job)? + "\n";
    if !path.exists() {
        // A directory that is not a batch output must be empty: its files are not ours to mix with or replace
        // (another task's `_job.json` on its way in is the one thing that may be there).
        let foreign: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !(n.starts_with(&format!(".{JOB_FILE}.")) && n.ends_with(".tmp")))
            .take(3)
            .collect();
        if !foreign.is_empty() && !path.exists() {
            bail!(
                "{} is not empty ({}) and not the output of a batch job (it has no {JOB_FILE}): give a new or \
                 empty --output directory",
                dir.display(),
                foreign.join(", ")
            );
        }
        // Created under a private name and linked into place: of tasks starting together, one wins, the others
        // read its file and compare.
        let tmp = dir.join(format!(".{JOB_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return sync_dir(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    let found =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let found: serde_json::Value = serde_json::from_str(&found)
        .with_context(|| format!("{} is not the JSON of a batch job", path.display()))?;
    if &found != job {
        let mut diffs = Vec::new();
        differences("", &found, job, &mut diffs);
        bail!(
            "{} holds the output of another job ({}): its results would be mixed with this one's; use a new \
             --output directory (or remove this one)",
            dir.display(),
            diffs.join("; ")
        );
    }
    Ok(())
}

/// What differs between two JSON values, as `key: was X, now Y`.
fn differences(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                let key = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                differences(
                    &key,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{at}: was {a}, now {b}")),
        _ => {}
    }
}

/// One shard's place in the output directory.
pub struct ShardStore {
    dir: PathBuf,
    stem: String,
    partial: PathBuf,
    columns: Vec<Column>,
    /// The open lock file (held while the process runs the shard).
    _lock: Option<File>,
    next_chunk: usize,
}

impl ShardStore {
    pub fn new(dir: &Path, shard: &Shard, columns: &[Column]) -> Self {
        let stem = shard.stem();
        ShardStore {
            dir: dir.to_path_buf(),
            partial: dir.join(".partial").join(&stem),
            stem,
            columns: columns.to_vec(),
            _lock: None,
            next_chunk: 0,
        }
    }

    /// The results file, present once the shard is done.
    pub fn results_path(&self) -> PathBuf {
        self.dir.join(format!("{}.parquet", self.stem))
    }

    pub fn is_done(&self) -> bool {
        self.results_path().is_file()
    }

    /// Take the shard's lock (refused while another process runs it) and read the ids its checkpoints hold.
    pub fn open(&mut self) -> Result<HashSet<String>> {
        std::fs::create_dir_all(&self.partial)
            .with_context(|| format!("creating {}", self.partial.display()))?;
        let lock_path = self.partial.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is being run by another process (it holds {}); wait for it or stop it",
                self.stem,
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        self._lock = Some(lock);
        // Under the lock, any temporary file of this shard is a killed run's.
        for (dir, prefix) in [
            (self.partial.clone(), ".chunk-".to_string()),
            (self.dir.clone(), format!(".{}.", self.stem)),
            (self.dir.join("_errors"), format!(".{}.", self.stem)),
            (self.dir.join("_records"), format!(".{}.", self.stem)),
        ] {
            remove_stale(&dir, &prefix);
        }
        let mut done = HashSet::new();
        for (index, path) in self.chunks()? {
            self.next_chunk = self.next_chunk.max(index + 1);
            for id in chunk_ids(&path)? {
                done.insert(id);
            }
        }
        Ok(done)
    }

    /// The checkpoint chunks, in order.
    fn chunks(&self) -> Result<Vec<(usize, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.partial) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.partial.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("chunk-")
                .and_then(|s| s.strip_suffix(".parquet"))
                .and_then(|s| s.parse::<usize>().ok())
            {
                out.push((n, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checkpoint these rows (a chunk file, atomically).
    pub fn checkpoint(&mut self, rows: &[(String, Outcome)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = table::chunk_batch(&self.columns, rows)?;
        let path = self
            .partial
            .join(format!("chunk-{:06}.parquet", self.next_chunk));
        write_atomic(&path, |f| {
            write_parquet(f, table::chunk_schema(&self.columns), &[batch])
        })?;
        self.next_chunk += 1;
        Ok(())
    }

    /// Turn the checkpoints into the shard's files: the error table and the record first, the results last
    /// (streamed, chunk by chunk). `record` gets the counts. Returns (ok, failed).
    pub fn finish(&self, mut record: serde_json::Value) -> Result<(usize, usize)> {
        let chunks = self.chunks()?;
        // Pass 1: the ids and errors alone.
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut ok = 0;
        for (_, path) in &chunks {
            for batch in read_chunk(path, Some(&[0, self.columns.len() + 1]))? {
                let ids = batch.column(0).as_string::<i32>();
                let err = batch.column(1).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    if err.is_valid(i) {
                        errors.push((ids.value(i).to_string(), err.value(i).to_string()));
                    } else {
                        ok += 1;
                    }
                }
            }
        }
        let failed = errors.len();
        let errors_dir = self.dir.join("_errors");
        let records_dir = self.dir.join("_records");
        for d in [&errors_dir, &records_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let ids = StringArray::from_iter_values(errors.iter().map(|e| e.0.as_str()));
        let messages = StringArray::from_iter_values(errors.iter().map(|e| e.1.as_str()));
        let table = RecordBatch::try_new(
            table::errors_schema(),
            vec![std::sync::Arc::new(ids), std::sync::Arc::new(messages)],
        )?;
        write_atomic(&errors_dir.join(format!("{}.parquet", self.stem)), |f| {
            write_parquet(f, table::errors_schema(), &[table])
        })?;
        record["counts"] = serde_json::json!({"items": ok + failed, "ok": ok, "failed": failed});
        write_atomic(&records_dir.join(format!("{}.json", self.stem)), |f| {
            f.write_all((serde_json::to_string_pretty(&record)? + "\n").as_bytes())?;
            Ok(())
        })?;
        // Pass 2: the rows that worked, re-cut into row groups as they stream through.
        let results = table::results_schema(&self.columns);
        let keep: Vec<usize> = (0..results.fields().len()).collect();
        write_atomic(&self.results_path(), |f| {
            let mut w = ArrowWriter::try_new(f, results.clone(), Some(props()))?;
            let mut rechunk = Rechunk::new(results.clone());
            for (_, path) in &chunks {
                for batch in read_chunk(path, None)? {
                    let Some(err) = batch.column_by_name(ERROR) else {
                        bail!("{} has no `{ERROR}` column", path.display());
                    };
                    let err = err.as_string::<i32>();
                    let good: BooleanArray = (0..batch.num_rows())
                        .map(|i| Some(err.is_null(i)))
                        .collect();
                    let kept = filter_record_batch(&batch, &good)?.project(&keep)?;
                    for full in rechunk.push(kept)? {
                        w.write(&full)?;
                    }
                }
            }
            if let Some(rest) = rechunk.rest()? {
                w.write(&rest)?;
            }
            w.close()?;
            Ok(())
        })?;
        self.clean();
        Ok((ok, failed))
    }

    /// Remove the checkpoints of a finished shard (and `.partial` once empty).
    pub fn clean(&self) {
        let _ = std::fs::remove_dir_all(&self.partial);
        if let Some(parent) = self.partial.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Remove the temporary files `{prefix}*.tmp` of `dir` (best effort: a leftover is only litter).
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The batches of a chunk file, all columns or those named by index.
fn read_chunk(path: &Path, columns: Option<&[usize]>) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a checkpoint", path.display()))?;
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    let mut out = Vec::new();
    for batch in builder.build()? {
        out.push(batch.with_context(|| format!("reading {}", path.display()))?);
    }
    Ok(out)
}

/// The ids of a chunk file (its first column alone is read).
fn chunk_ids(path: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for batch in read_chunk(path, Some(&[0]))? {
        let col = batch.column(0).as_string::<i32>();
        ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    Ok(ids)
}

/// Batches re-cut to [`ROW_GROUP`] rows each (the last shorter), whatever the chunks' sizes; at most a row
/// group's rows wait in memory.
struct Rechunk {
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    rows: usize,
}

impl Rechunk {
    fn new(schema: SchemaRef) -> Self {
        Rechunk {
            schema,
            pending: Vec::new(),
            rows: 0,
        }
    }

    /// Take rows; hand out every full row group they complete.
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        self.rows += batch.num_rows();
        self.pending.push(batch);
        let mut out = Vec::new();
        if self.rows < ROW_GROUP {
            return Ok(out);
        }
        let all = concat_batches(&self.schema, &self.pending)?;
        self.pending.clear();
        let mut at = 0;
        while all.num_rows() - at >= ROW_GROUP {
            // A fresh copy of the slice: the writer sees the same buffers however the rows were chunked.
            out.push(concat_batches(&self.schema, &[all.slice(at, ROW_GROUP)])?);
            at += ROW_GROUP;
        }
        self.rows = all.num_rows() - at;
        if self.rows > 0 {
            self.pending
                .push(concat_batches(&self.schema, &[all.slice(at, self.rows)])?);
        }
        Ok(out)
    }

    /// The last, short row group.
    fn rest(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let all = concat_batches(&self.schema, &self.pending)?;
        self.pending.clear();
        self.rows = 0;
        Ok(Some(all))
    }
}
