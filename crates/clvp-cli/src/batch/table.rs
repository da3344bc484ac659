//! The values of `clvp batch`'s result rows and their Arrow columns.

use std::sync::Arc;

use anyhow::{Result, bail};
use arrow_array::builder::{Int64Builder, ListBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// The type of a result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    F32,
    Floats,
    Floats2,
    Ints,
    Ints2,
    Ints3,
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    F32(f32),
    /// `list<float32>`.
    Floats(Vec<f32>),
    /// `list<list<float32>>`.
    Floats2(Vec<Vec<f32>>),
    /// `list<int64>`.
    Ints(Vec<i64>),
    /// `list<list<int64>>`.
    Ints2(Vec<Vec<i64>>),
    /// `list<list<list<int64>>>`.
    Ints3(Vec<Vec<Vec<i64>>>),
    Null,
}

/// A result column after `id`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

fn list(inner: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", inner, true)))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::F32 => DataType::Float32,
        Kind::Floats => list(DataType::Float32),
        Kind::Floats2 => list(list(DataType::Float32)),
        Kind::Ints => list(DataType::Int64),
        Kind::Ints2 => list(list(DataType::Int64)),
        Kind::Ints3 => list(list(list(DataType::Int64))),
    }
}

/// The name of the error column of a checkpoint chunk (null for a row that worked).
pub const ERROR: &str = "error";

/// The schema of the result shards: `id` then the job's columns (nullable).
pub fn results_schema(columns: &[Column]) -> SchemaRef {
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    fields.extend(
        columns
            .iter()
            .map(|c| Field::new(c.name, data_type(c.kind), true)),
    );
    Arc::new(Schema::new(fields))
}

/// The schema of a checkpoint chunk: the results' and `error`.
pub fn chunk_schema(columns: &[Column]) -> SchemaRef {
    let results = results_schema(columns);
    let mut fields: Vec<Field> = results
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(ERROR, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// The schema of the error tables: `id`, `message`.
pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// One item's outcome: its values (one per column) or its error message.
pub type Outcome = std::result::Result<Vec<Cell>, String>;

/// The rows `(id, outcome)` as a chunk batch.
pub fn chunk_batch(columns: &[Column], rows: &[(String, Outcome)]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 2);
    let mut ids = StringBuilder::new();
    for (id, _) in rows {
        ids.append_value(id);
    }
    arrays.push(Arc::new(ids.finish()));
    for (c, column) in columns.iter().enumerate() {
        let cells = rows.iter().map(|(_, o)| match o {
            Ok(cells) => cells.get(c).unwrap_or(&Cell::Null),
            Err(_) => &Cell::Null,
        });
        arrays.push(build(column, cells)?);
    }
    let mut errors = StringBuilder::new();
    for (_, o) in rows {
        match o {
            Ok(_) => errors.append_null(),
            Err(m) => errors.append_value(m),
        }
    }
    arrays.push(Arc::new(errors.finish()));
    Ok(RecordBatch::try_new(chunk_schema(columns), arrays)?)
}

fn mismatch(column: &Column, cell: &Cell) -> anyhow::Error {
    anyhow::anyhow!(
        "the column `{}` ({:?}) got the value {:?}",
        column.name,
        column.kind,
        std::mem::discriminant(cell)
    )
}

/// What a cell holds, for one kind of column: `Some(None)` for a null, `None` for a cell of another kind.
type Pick<V> = fn(&Cell) -> Option<Option<&V>>;

fn scalars<T: ArrowPrimitiveType>(
    column: &Column,
    cells: &[&Cell],
    pick: Pick<T::Native>,
) -> Result<ArrayRef> {
    let mut b = PrimitiveBuilder::<T>::new();
    for cell in cells {
        match pick(cell).ok_or_else(|| mismatch(column, cell))? {
            Some(v) => b.append_value(*v),
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn lists<T: ArrowPrimitiveType>(
    column: &Column,
    cells: &[&Cell],
    pick: Pick<Vec<T::Native>>,
) -> Result<ArrayRef> {
    let mut b = ListBuilder::new(PrimitiveBuilder::<T>::new());
    for cell in cells {
        match pick(cell).ok_or_else(|| mismatch(column, cell))? {
            Some(v) => {
                b.values().append_slice(v);
                b.append(true);
            }
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn lists2<T: ArrowPrimitiveType>(
    column: &Column,
    cells: &[&Cell],
    pick: Pick<Vec<Vec<T::Native>>>,
) -> Result<ArrayRef> {
    let mut b = ListBuilder::new(ListBuilder::new(PrimitiveBuilder::<T>::new()));
    for cell in cells {
        match pick(cell).ok_or_else(|| mismatch(column, cell))? {
            Some(rows) => {
                for r in rows {
                    b.values().values().append_slice(r);
                    b.values().append(true);
                }
                b.append(true);
            }
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn build<'a>(column: &Column, cells: impl Iterator<Item = &'a Cell>) -> Result<ArrayRef> {
    let cells: Vec<&Cell> = cells.collect();
    match column.kind {
        Kind::Int => scalars::<Int64Type>(column, &cells, |c| match c {
            Cell::Int(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::F32 => scalars::<Float32Type>(column, &cells, |c| match c {
            Cell::F32(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::Floats => lists::<Float32Type>(column, &cells, |c| match c {
            Cell::Floats(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::Ints => lists::<Int64Type>(column, &cells, |c| match c {
            Cell::Ints(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::Floats2 => lists2::<Float32Type>(column, &cells, |c| match c {
            Cell::Floats2(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::Ints2 => lists2::<Int64Type>(column, &cells, |c| match c {
            Cell::Ints2(v) => Some(Some(v)),
            Cell::Null => Some(None),
            _ => None,
        }),
        Kind::Ints3 => {
            let mut b = ListBuilder::new(ListBuilder::new(ListBuilder::new(Int64Builder::new())));
            for cell in cells {
                match cell {
                    Cell::Ints3(chunks) => {
                        for chunk in chunks {
                            for r in chunk {
                                b.values().values().values().append_slice(r);
                                b.values().values().append(true);
                            }
                            b.values().append(true);
                        }
                        b.append(true);
                    }
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(column, other)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
    }
}

/// Check that a job's cells fit its columns (a programming error otherwise, reported, not a panic).
pub fn check_row(columns: &[Column], cells: &[Cell]) -> Result<()> {
    if cells.len() != columns.len() {
        bail!(
            "a row of {} values for {} columns",
            cells.len(),
            columns.len()
        );
    }
    for (column, cell) in columns.iter().zip(cells) {
        let ok = matches!(
            (column.kind, cell),
            (_, Cell::Null)
                | (Kind::Int, Cell::Int(_))
                | (Kind::F32, Cell::F32(_))
                | (Kind::Floats, Cell::Floats(_))
                | (Kind::Floats2, Cell::Floats2(_))
                | (Kind::Ints, Cell::Ints(_))
                | (Kind::Ints2, Cell::Ints2(_))
                | (Kind::Ints3, Cell::Ints3(_))
        );
        if !ok {
            return Err(mismatch(column, cell));
        }
    }
    Ok(())
}
