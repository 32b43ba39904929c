//! Parquet files as a participant's rows (and `score`'s applicants): the
//! same schema checks and messages as CSV, read column by column with the
//! `parquet` crate's typed column readers straight into the f64 matrix.
//!
//! A flat table is expected (no nested or repeated columns). Numeric
//! features may be `DOUBLE`, `FLOAT`, `INT32` or `INT64` (plain integers,
//! not decimals or dates); categorical features, the label and an id
//! column may be strings, integers or booleans (compared with the schema's
//! values as their decimal or `true`/`false` text). A null, NaN or
//! infinite value is refused naming its column and 1-based data row:
//!
//! ```text
//! bank-a.parquet: row 3: column `income`: null, expected a number
//! bank-a.parquet: column `age` holds BYTE_ARRAY (String) values, expected numbers (a numeric feature)
//! ```
//!
//! Rows are read in pieces (a row group, or part of one) on every core; a
//! piece is decoded a batch of rows at a time, so memory beside the matrix
//! is one decoded page per column per thread. A flat `DOUBLE` column
//! stored `PLAIN` throughout (no dictionary), as the bench files are and
//! any writer's with dictionaries off, is read page by page and its values
//! taken from the page itself (nulls from its definition levels): the
//! column reader would first zero a vector and copy every value into it.
//! Those pages are read, and decompressed, into buffers reused from page
//! to page and piece to piece (one page per column, as the column reader
//! holds, and one read buffer that a thread's compressed columns share),
//! not into fresh memory per page.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ::parquet::basic::{Compression, ConvertedType, Encoding, LogicalType, Type as Physical};
use ::parquet::column::page::{Page, PageReader};
use ::parquet::column::reader::ColumnReader;
use ::parquet::data_type::ByteArray;
use ::parquet::errors::ParquetError;
use ::parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use ::parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedPageReader};
use bytes::{Bytes, BytesMut};
use fedcredit_model::encoder::FeatureColumn;
use fedcredit_model::job::Linear;
use fedcredit_model::{Encoder, ModelError, Schema};
use ndarray::{Array1, Array2};

use super::Dataset;
use super::blocks::{par_jobs, threads};
use crate::ParticipantError;

/// Rows decoded at a time: a batch of the matrix stays in cache while
/// each of its columns is written.
pub const BATCH_ROWS: usize = 4096;

/// Whether `path` names a Parquet file (by its extension, `.parquet` or `.pq`).
pub use super::is_parquet;

/// A Parquet file's footer: its columns and row groups.
#[derive(Debug)]
pub struct ParquetTable {
    path: PathBuf,
    header: Vec<String>,
    /// Per column: physical type, logical type, whether it can hold nulls.
    types: Vec<(Physical, Option<LogicalType>, ConvertedType, i16)>,
    groups: Vec<usize>,
    /// The page path's buffers, kept from one piece's columns to the next.
    buffers: Arc<BufferPool>,
}

/// The page path's buffers not in use: pages as stored, and decompressed.
#[derive(Default)]
struct BufferPool {
    stored: Mutex<Vec<BytesMut>>,
    plain: Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("stored", &lock(&self.stored).len())
            .field("plain", &lock(&self.plain).len())
            .finish()
    }
}

impl BufferPool {
    /// A slot holding a buffer from the pool, if it has one.
    fn slot(&self) -> Slot {
        Arc::new(Mutex::new(lock(&self.stored).pop().map(BytesMut::freeze)))
    }
}

/// Where a [`PageBytes`] reads pages into: the buffer it handed out last,
/// taken back and read into again once nothing else holds it.
type Slot = Arc<Mutex<Option<Bytes>>>;

/// A run of rows inside one row group.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The row group.
    pub group: usize,
    /// Rows within the group.
    pub rows: Range<usize>,
    /// Data rows of the file before this piece.
    pub first_row: usize,
}

/// What one row holds that the model cannot take, as a CSV cell's error
/// would say it: for error messages and `score`'s error file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The column.
    pub column: String,
    /// The value as text (empty for a null).
    pub value: String,
    /// The whole message, naming column and value.
    pub message: String,
}

impl From<ModelError> for RowProblem {
    fn from(e: ModelError) -> Self {
        Self {
            column: e.column().unwrap_or_default().to_owned(),
            value: e.value().unwrap_or_default().to_owned(),
            message: e.to_string(),
        }
    }
}

impl RowProblem {
    fn null(column: &str, expected: &str) -> Self {
        Self {
            column: column.to_owned(),
            value: String::new(),
            message: format!("column `{column}`: null, expected {expected}"),
        }
    }
}

/// What a reader takes from a column.
#[derive(Debug, Clone, Copy)]
pub enum Use<'e> {
    /// A schema feature, encoded into the row.
    Feature(FeatureColumn<'e>),
    /// The label.
    Label,
    /// A column copied as text (e.g. `score --id-column`), into text slot `k`.
    Text(usize),
}

impl ParquetTable {
    /// Reads the footer of `path`; refuses nested and repeated columns.
    pub fn open(path: &Path) -> Result<Self, ParticipantError> {
        let reader = reader(path)?;
        let meta = reader.file.metadata();
        let mut header = Vec::new();
        let mut types = Vec::new();
        for c in meta.file_metadata().schema_descr().columns() {
            if c.path().parts().len() != 1 || c.max_rep_level() > 0 {
                return Err(table_error(
                    path,
                    None,
                    format!(
                        "column `{}` is nested or repeated; fedcredit reads flat tables",
                        c.path().string()
                    ),
                ));
            }
            header.push(c.name().to_owned());
            types.push((
                c.physical_type(),
                c.logical_type_ref().cloned(),
                c.converted_type(),
                c.max_def_level(),
            ));
        }
        let groups = meta
            .row_groups()
            .iter()
            .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
            .collect();
        Ok(Self {
            path: path.to_owned(),
            header,
            types,
            groups,
            buffers: Arc::default(),
        })
    }

    /// Column names, in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Data rows in the file.
    pub fn rows(&self) -> usize {
        self.groups.iter().sum()
    }

    /// Whether column `col` holds numbers (floats or plain integers): a
    /// numeric feature when the schema is inferred.
    pub fn is_numeric(&self, col: usize) -> bool {
        self.types
            .get(col)
            .is_some_and(|(physical, _, converted, _)| {
                matches!(physical, Physical::DOUBLE | Physical::FLOAT)
                    || (matches!(physical, Physical::INT32 | Physical::INT64)
                        && plain_int(converted))
            })
    }

    /// Checks that every column `uses` reads holds values of a type it
    /// can take, before any row is read.
    pub fn check(&self, uses: &[(usize, Use<'_>)]) -> Result<(), ParticipantError> {
        for &(col, u) in uses {
            let (physical, logical, converted, _) = &self.types[col];
            let plain_int = plain_int(converted);
            let (ok, expected, role) = match u {
                Use::Feature(f) if f.numeric => (
                    match physical {
                        Physical::DOUBLE | Physical::FLOAT => true,
                        Physical::INT32 | Physical::INT64 => plain_int,
                        _ => false,
                    },
                    "numbers",
                    "a numeric feature",
                ),
                _ => (
                    match physical {
                        Physical::BYTE_ARRAY | Physical::BOOLEAN => true,
                        Physical::INT32 | Physical::INT64 => plain_int,
                        _ => false,
                    },
                    "text, integers or booleans",
                    match u {
                        Use::Label => "the label",
                        Use::Text(_) => "copied to the output",
                        Use::Feature(_) => "a categorical feature",
                    },
                ),
            };
            if !ok {
                let logical = logical
                    .as_ref()
                    .map_or_else(String::new, |l| format!(" ({l:?})"));
                return Err(table_error(
                    &self.path,
                    None,
                    format!(
                        "column `{}` holds {physical}{logical} values, expected {expected} ({role})",
                        self.header[col]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The file's rows cut into pieces of at most about `rows` rows, in
    /// file order (a row group is never shared by two pieces' readers'
    /// pages more than at the cut).
    pub fn pieces(&self, rows: usize) -> Vec<Piece> {
        let rows = rows.max(1);
        let mut out = Vec::new();
        let mut first_row = 0;
        for (group, &n) in self.groups.iter().enumerate() {
            let mut start = 0;
            while start < n {
                let end = start.saturating_add(rows).min(n);
                out.push(Piece {
                    group,
                    rows: start..end,
                    first_row: first_row + start,
                });
                start = end;
            }
            first_row += n;
        }
        out
    }

    /// Opens the file again (a reader per thread) for [`PieceReader::new`].
    pub fn reader(&self) -> Result<TableReader, ParticipantError> {
        reader(&self.path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A file opened for [`PieceReader::new`] (one per thread): the `parquet`
/// crate's reader (footer, page index, column readers) and the same open
/// file for the page path's own reads.
pub struct TableReader {
    file: SerializedFileReader<File>,
    raw: Arc<File>,
    /// The file's length.
    len: u64,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("row_groups", &self.file.num_row_groups())
            .finish_non_exhaustive()
    }
}

/// Reads one [`Piece`], a batch of rows at a time.
pub struct PieceReader<'e> {
    /// Per column read: its use, its values, its max definition level and
    /// its name (for an error reading it).
    columns: Vec<(Use<'e>, Source, i16, String)>,
    left: usize,
    /// Data rows of the file before the next row unread.
    next_row: usize,
    scratch: Scratch,
}

impl std::fmt::Debug for PieceReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceReader")
            .field("columns", &self.columns.len())
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Scratch {
    defs: Vec<i16>,
    f64s: Vec<f64>,
    f32s: Vec<f32>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    bools: Vec<bool>,
    bytes: Vec<ByteArray>,
    /// One text per row of the batch (reused), and whether it is present.
    texts: Vec<String>,
    present: Vec<bool>,
}

/// One batch's output: rows `× width` features, labels, texts, problems.
#[derive(Debug)]
pub struct BatchOut<'b> {
    /// Encoded features, `n × width`.
    pub x: &'b mut [f64],
    /// Labels, when the label is read.
    pub y: Option<&'b mut [f64]>,
    /// Text slots (`Use::Text(k)` fills `texts[k][i]`).
    pub texts: &'b mut [Vec<String>],
    /// The first problem of each row (label first, then features in schema
    /// order, as the CSV encoder checks them); `None` for a good row.
    pub problems: &'b mut [Option<RowProblem>],
}

impl<'e> PieceReader<'e> {
    /// Column readers for `uses` (`(column, use)`, read in this order),
    /// positioned at the piece's first row.
    pub fn new(
        table: &ParquetTable,
        file: &TableReader,
        piece: &Piece,
        uses: &[(usize, Use<'e>)],
    ) -> Result<Self, ParticipantError> {
        let fail = |e: ParquetError| parquet_error(&table.path, &e);
        let group = file.file.get_row_group(piece.group).map_err(fail)?;
        // The compressed columns' stored pages: a page is decompressed as
        // soon as it is read, so one buffer serves them all.
        let shared = table.buffers.slot();
        let mut columns = Vec::with_capacity(uses.len());
        for &(col, u) in uses {
            let plain = match u {
                Use::Feature(f) if f.numeric => {
                    PlainDoubles::open(file, (&table.buffers, &shared), piece.group, col)
                        .map_err(fail)?
                }
                _ => None,
            };
            let mut r = match plain {
                Some(p) => Source::Plain(Box::new(p)),
                None => Source::Reader(Box::new(group.get_column_reader(col).map_err(fail)?)),
            };
            let skip = piece.rows.start;
            let name = &table.header[col];
            let skipped = r
                .skip(skip)
                .map_err(|e| column_error(&table.path, name, piece.first_row, 1, &e))?;
            if skipped != skip {
                return Err(short(&table.path));
            }
            columns.push((u, r, table.types[col].3, name.clone()));
        }
        Ok(Self {
            columns,
            left: piece.rows.len(),
            next_row: piece.first_row,
            scratch: Scratch::default(),
        })
    }

    /// Reads the next `n` rows of a reader made with [`Use::Text`] columns
    /// only into `texts` (a null as an empty text).
    pub fn next_texts(
        &mut self,
        n: usize,
        texts: &mut [Vec<String>],
        path: &Path,
    ) -> Result<(), ParticipantError> {
        let n = n.min(self.left);
        let (s, at) = (&mut self.scratch, self.next_row);
        for (u, reader, max_def, name) in &mut self.columns {
            let Use::Text(k) = *u else {
                return Err(table_error(
                    path,
                    None,
                    "internal: not a text column".into(),
                ));
            };
            read_texts(reader.column(path)?, n, *max_def, s)
                .map_err(|e| column_error(path, name, at, n, &e))?;
            let out = &mut texts[k];
            out.resize(n, String::new());
            for (i, slot) in out.iter_mut().enumerate() {
                slot.clear();
                if s.present[i] {
                    slot.push_str(&s.texts[i]);
                }
            }
        }
        self.left -= n;
        self.next_row += n;
        Ok(())
    }

    /// Reads the next `n` rows (at most what is left of the piece) into
    /// `out`, whose slices hold at least `n` rows.
    pub fn next_batch(
        &mut self,
        n: usize,
        encoder: &Encoder,
        out: &mut BatchOut<'_>,
        path: &Path,
    ) -> Result<(), ParticipantError> {
        let n = n.min(self.left);
        let width = encoder.width();
        let at = self.next_row;
        for p in out.problems[..n].iter_mut() {
            *p = None;
        }
        let s = &mut self.scratch;
        for (u, reader, max_def, name) in &mut self.columns {
            let fail = |e: ParquetError| column_error(path, name, at, n, &e);
            match *u {
                Use::Feature(f) if f.numeric => {
                    if let Source::Plain(p) = reader {
                        // Straight from the page into the rows.
                        let (x, problems) = (&mut *out.x, &mut *out.problems);
                        let taken = p
                            .take(n, |at, run| {
                                let values = match run {
                                    Run::Values(values) => values,
                                    Run::Nulls(k) => {
                                        for i in at..at + k {
                                            x[i * width + f.out] = 0.0;
                                            number_problem(&mut problems[i], encoder, &f, None);
                                        }
                                        return;
                                    }
                                };
                                for (i, v) in (at..).zip(values) {
                                    let v = f64::from_le_bytes(*v);
                                    let cell = &mut x[i * width + f.out];
                                    if v.is_finite() {
                                        *cell = v;
                                    } else {
                                        *cell = 0.0;
                                        number_problem(&mut problems[i], encoder, &f, Some(v));
                                    }
                                }
                            })
                            .map_err(fail)?;
                        if taken != n {
                            return Err(short(path));
                        }
                        continue;
                    }
                    read_numbers(reader.column(path)?, n, s).map_err(fail)?;
                    let mut values = s.f64s.iter();
                    for i in 0..n {
                        let present = *max_def == 0 || s.defs.get(i).copied() == Some(*max_def);
                        let v = if present { values.next() } else { None };
                        let cell = &mut out.x[i * width + f.out];
                        match v {
                            Some(&v) if v.is_finite() => *cell = v,
                            v => {
                                *cell = 0.0;
                                number_problem(&mut out.problems[i], encoder, &f, v.copied());
                            }
                        }
                    }
                    if values.next().is_some() {
                        return Err(short(path));
                    }
                }
                _ => {
                    read_texts(reader.column(path)?, n, *max_def, s).map_err(fail)?;
                    for i in 0..n {
                        let text = s.present[i].then(|| s.texts[i].as_str());
                        match *u {
                            Use::Feature(f) => {
                                let row = &mut out.x[i * width..(i + 1) * width];
                                let r = match text {
                                    Some(t) => encoder
                                        .category_into(f.feature, t, row)
                                        .map_err(RowProblem::from),
                                    None => Err(RowProblem::null(f.name, "a category")),
                                };
                                if let Err(p) = r {
                                    out.problems[i].get_or_insert(p);
                                }
                            }
                            Use::Label => {
                                let r = match text {
                                    Some(t) => encoder.label(t).map_err(RowProblem::from),
                                    None => encoder.label("").map_err(RowProblem::from),
                                };
                                match (r, out.y.as_deref_mut()) {
                                    (Ok(l), Some(y)) => y[i] = l,
                                    (Ok(_), None) => {}
                                    (Err(p), _) => {
                                        out.problems[i].get_or_insert(p);
                                    }
                                }
                            }
                            Use::Text(k) => {
                                let slot = &mut out.texts[k][i];
                                slot.clear();
                                slot.push_str(text.unwrap_or(""));
                            }
                        }
                    }
                }
            }
        }
        self.left -= n;
        self.next_row += n;
        Ok(())
    }
}

/// One batch of `score`'s output: the linear predictor of each row (the
/// model applied column by column, see [`Linear`]), texts and problems.
#[derive(Debug)]
pub struct ScoreOut<'b> {
    /// `z` per row; meaningless for a row with a problem.
    pub z: &'b mut [f64],
    /// Text slots (`Use::Text(k)` fills `texts[k][i]`).
    pub texts: &'b mut [Vec<String>],
    /// The first problem of each row, in schema order as
    /// [`PieceReader::next_batch`] finds it; `None` for a good row.
    pub problems: &'b mut [Option<RowProblem>],
}

impl PieceReader<'_> {
    /// Reads the next `n` rows (at most what is left of the piece) and
    /// adds each feature column's terms of `linear` into `out.z`, a column
    /// at a time, without building the rows: the same scores and problems
    /// as [`PieceReader::next_batch`] followed by the model row by row.
    pub fn next_scores(
        &mut self,
        n: usize,
        encoder: &Encoder,
        linear: &Linear,
        out: &mut ScoreOut<'_>,
        path: &Path,
    ) -> Result<(), ParticipantError> {
        let n = n.min(self.left);
        let at = self.next_row;
        for p in out.problems[..n].iter_mut() {
            *p = None;
        }
        let z = &mut out.z[..n];
        linear.start(z);
        let s = &mut self.scratch;
        for (u, reader, max_def, name) in &mut self.columns {
            let fail = |e: ParquetError| column_error(path, name, at, n, &e);
            match *u {
                Use::Feature(f) if f.numeric => {
                    if let Source::Plain(p) = reader {
                        // Straight from the page, a run of values at a time.
                        let problems = &mut *out.problems;
                        let taken = p
                            .take(n, |at, run| {
                                let values = match run {
                                    Run::Values(values) => values,
                                    Run::Nulls(k) => {
                                        for p in &mut problems[at..at + k] {
                                            number_problem(p, encoder, &f, None);
                                        }
                                        return;
                                    }
                                };
                                let z = &mut z[at..at + values.len()];
                                if all_finite(values.iter().map(|v| u64::from_le_bytes(*v))) {
                                    linear.add_column_le(f.out, values, z);
                                    return;
                                }
                                for (i, (z, v)) in z.iter_mut().zip(values).enumerate() {
                                    let v = f64::from_le_bytes(*v);
                                    if v.is_finite() {
                                        linear.add_one(f.out, v, z);
                                    } else {
                                        number_problem(&mut problems[at + i], encoder, &f, Some(v));
                                    }
                                }
                            })
                            .map_err(fail)?;
                        if taken != n {
                            return Err(short(path));
                        }
                        continue;
                    }
                    read_numbers(reader.column(path)?, n, s).map_err(fail)?;
                    // Every row present and finite (the usual case): one
                    // pass over the column that the compiler vectorizes.
                    if s.f64s.len() == n && all_finite(s.f64s.iter().map(|v| v.to_bits())) {
                        linear.add_column(f.out, &s.f64s, z);
                        continue;
                    }
                    let mut values = s.f64s.iter();
                    for (i, z) in z.iter_mut().enumerate() {
                        let present = *max_def == 0 || s.defs.get(i).copied() == Some(*max_def);
                        let v = if present { values.next() } else { None };
                        match v {
                            Some(&v) if v.is_finite() => linear.add_one(f.out, v, z),
                            v => number_problem(&mut out.problems[i], encoder, &f, v.copied()),
                        }
                    }
                    if values.next().is_some() {
                        return Err(short(path));
                    }
                }
                Use::Feature(f) => {
                    read_texts(reader.column(path)?, n, *max_def, s).map_err(fail)?;
                    for (i, z) in z.iter_mut().enumerate() {
                        let r = if s.present[i] {
                            encoder
                                .category_index(f.feature, &s.texts[i])
                                .map_err(RowProblem::from)
                        } else {
                            Err(RowProblem::null(f.name, "a category"))
                        };
                        match r {
                            Ok(index) => linear.add_category(f.out, f.width + 1, index, z),
                            Err(p) => {
                                out.problems[i].get_or_insert(p);
                            }
                        }
                    }
                }
                Use::Text(k) => {
                    read_texts(reader.column(path)?, n, *max_def, s).map_err(fail)?;
                    let texts = &mut out.texts[k];
                    for (i, slot) in texts[..n].iter_mut().enumerate() {
                        slot.clear();
                        if s.present[i] {
                            slot.push_str(&s.texts[i]);
                        }
                    }
                }
                Use::Label => {
                    return Err(table_error(
                        path,
                        None,
                        "internal: scoring does not read the label".into(),
                    ));
                }
            }
        }
        self.left -= n;
        self.next_row += n;
        Ok(())
    }
}

/// Reads and encodes `path` with `schema`, as [`super::load_csv`] does
/// for CSV; see the module docs for the types and errors.
pub fn load_parquet(path: &Path, schema: &Schema) -> Result<Dataset, ParticipantError> {
    let (table, encoder) = open_for_schema(path, schema)?;
    let uses = row_uses(&encoder);
    let (rows, width) = (table.rows(), encoder.width());
    let mut x = Array2::<f64>::zeros((rows, width));
    let mut y = Array1::<f64>::zeros(rows);
    let threads = threads();
    let pieces = table.pieces(rows.div_ceil(threads * 4).max(8 * BATCH_ROWS));
    let mut jobs = Vec::with_capacity(pieces.len());
    {
        let internal = || table_error(path, None, "internal: matrix is not contiguous".into());
        let (mut xs, mut ys) = (
            x.as_slice_mut().ok_or_else(internal)?,
            y.as_slice_mut().ok_or_else(internal)?,
        );
        for p in &pieces {
            let (xp, xr) = xs.split_at_mut(p.rows.len() * width);
            let (yp, yr) = ys.split_at_mut(p.rows.len());
            jobs.push((p, xp, yp));
            (xs, ys) = (xr, yr);
        }
    }
    // The first bad row over all pieces (they may finish in any order).
    let first_bad: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let result = par_jobs(
        jobs,
        threads,
        || table.reader(),
        |file, (piece, xp, yp)| {
            let mut reader = PieceReader::new(&table, file, piece, &uses)?;
            let mut problems = vec![None; BATCH_ROWS];
            let mut done = 0;
            for (xb, yb) in xp
                .chunks_mut(BATCH_ROWS * width)
                .zip(yp.chunks_mut(BATCH_ROWS))
            {
                let n = yb.len();
                let mut out = BatchOut {
                    x: xb,
                    y: Some(yb),
                    texts: &mut [],
                    problems: &mut problems,
                };
                reader.next_batch(n, &encoder, &mut out, path)?;
                if let Some((i, p)) = problems[..n]
                    .iter()
                    .enumerate()
                    .find_map(|(i, p)| p.as_ref().map(|p| (i, p)))
                {
                    let row = (piece.first_row + done + i + 1) as u64;
                    if let Ok(mut first) = first_bad.lock()
                        && first.as_ref().is_none_or(|(r, _)| row < *r)
                    {
                        *first = Some((row, p.message.clone()));
                    }
                    // Later rows of this piece cannot be first.
                    return Ok(());
                }
                done += n;
            }
            Ok(())
        },
    );
    result?;
    if let Some((row, message)) = first_bad.into_inner().ok().flatten() {
        return Err(table_error(path, Some(row), message));
    }
    Ok(Dataset {
        x,
        y,
        path: path.to_owned(),
    })
}

/// The footer of `path` and the encoder of `schema` for its header, with
/// every column the rows need checked for its type, and at least one data
/// row: what [`load_parquet`] and a streamed file check before any row.
pub fn open_for_schema(
    path: &Path,
    schema: &Schema,
) -> Result<(ParquetTable, Encoder), ParticipantError> {
    let table = ParquetTable::open(path)?;
    let encoder =
        Encoder::new(schema, table.header()).map_err(|e| table_error(path, None, e.to_string()))?;
    table.check(&row_uses(&encoder))?;
    if table.rows() == 0 {
        return Err(table_error(path, None, "the file has no data rows".into()));
    }
    Ok((table, encoder))
}

/// The columns a training row is read from: the label first, then the
/// features, the order the CSV encoder checks a row in (so the first
/// problem of a row is the one CSV would name).
pub fn row_uses(encoder: &Encoder) -> Vec<(usize, Use<'_>)> {
    let mut uses = Vec::new();
    if let Some(l) = encoder.label_column() {
        uses.push((l, Use::Label));
    }
    uses.extend(
        encoder
            .feature_columns()
            .map(|f| (f.column, Use::Feature(f))),
    );
    uses
}

/// Integers that mean their value (not decimals, dates or times).
fn plain_int(converted: &ConvertedType) -> bool {
    matches!(
        converted,
        ConvertedType::NONE
            | ConvertedType::INT_8
            | ConvertedType::INT_16
            | ConvertedType::INT_32
            | ConvertedType::INT_64
            | ConvertedType::UINT_8
            | ConvertedType::UINT_16
            | ConvertedType::UINT_32
            | ConvertedType::UINT_64
    )
}

/// Opens `path` with its page index (when the writer wrote one, as the
/// `parquet` crate and pyarrow do by default): a piece's reader then skips
/// the pages before its first row without reading them, and reads each
/// page with one read instead of a buffered read of its header first.
fn reader(path: &Path) -> Result<TableReader, ParticipantError> {
    open_reader(path, true)
}

/// [`reader`], with the page index read or not.
fn open_reader(path: &Path, page_index: bool) -> Result<TableReader, ParticipantError> {
    let read_failed = |source| ParticipantError::ReadInput {
        file: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_failed)?;
    let raw = Arc::new(file.try_clone().map_err(read_failed)?);
    let len = raw.metadata().map_err(read_failed)?.len();
    let mut options = ReadOptionsBuilder::new();
    if page_index {
        options = options.with_page_index();
    }
    let file = SerializedFileReader::new_with_options(file, options.build())
        .map_err(|e| parquet_error(path, &e))?;
    Ok(TableReader { file, raw, len })
}

fn skip_records(r: &mut ColumnReader, n: usize) -> Result<usize, ParquetError> {
    match r {
        ColumnReader::BoolColumnReader(r) => r.skip_records(n),
        ColumnReader::Int32ColumnReader(r) => r.skip_records(n),
        ColumnReader::Int64ColumnReader(r) => r.skip_records(n),
        ColumnReader::Int96ColumnReader(r) => r.skip_records(n),
        ColumnReader::FloatColumnReader(r) => r.skip_records(n),
        ColumnReader::DoubleColumnReader(r) => r.skip_records(n),
        ColumnReader::ByteArrayColumnReader(r) => r.skip_records(n),
        ColumnReader::FixedLenByteArrayColumnReader(r) => r.skip_records(n),
    }
}

/// Records the problem of a numeric feature's cell that is null (`None`)
/// or not finite, unless its row already has one (the first one counts).
fn number_problem(
    problem: &mut Option<RowProblem>,
    encoder: &Encoder,
    f: &FeatureColumn<'_>,
    v: Option<f64>,
) {
    if problem.is_none() {
        *problem = match v {
            Some(v) => encoder.number(f, v).err().map(RowProblem::from),
            None => Some(RowProblem::null(f.name, "a number")),
        };
    }
}

/// Whether no value is NaN or infinite, from the doubles' bits: a fold
/// that does not stop early, so that it vectorizes.
fn all_finite(bits: impl Iterator<Item = u64>) -> bool {
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    !bits.fold(false, |bad, b| bad | (b & EXPONENT == EXPONENT))
}

/// Where a column's values come from.
enum Source {
    /// The `parquet` crate's column reader: any type, encoding or nulls.
    Reader(Box<ColumnReader>),
    /// A flat `DOUBLE` column stored `PLAIN`, read page by page.
    Plain(Box<PlainDoubles>),
}

impl Source {
    /// Skips `n` rows; returns how many there were.
    fn skip(&mut self, n: usize) -> Result<usize, ParquetError> {
        match self {
            Source::Reader(r) => skip_records(r, n),
            Source::Plain(p) => p.skip(n),
        }
    }

    /// The column reader (a `Plain` column is read only by its own path).
    fn column(&mut self, path: &Path) -> Result<&mut ColumnReader, ParticipantError> {
        match self {
            Source::Reader(r) => Ok(r),
            Source::Plain(_) => Err(table_error(
                path,
                None,
                "internal: a PLAIN double column read through the column reader".into(),
            )),
        }
    }
}

/// A column chunk of flat `DOUBLE` values, required or optional, whose
/// metadata lists no dictionary and only `PLAIN` values (and `RLE`
/// definition levels), stored uncompressed or with snappy: its data pages
/// hold the present doubles as 8 little-endian bytes each, after the
/// levels of an optional column.
struct PlainDoubles {
    /// The chunk's pages as stored (the reader is told the chunk is
    /// uncompressed, so that it hands over the stored bytes).
    pages: SerializedPageReader<PageBytes>,
    /// What `pages` reads the file through (its buffer goes back to
    /// `buffers` when this column is dropped, as does `plain`).
    bytes: Arc<PageBytes>,
    buffers: Arc<BufferPool>,
    /// The snappy decoder, for a chunk stored with snappy.
    snappy: Option<snap::raw::Decoder>,
    /// 1 for an optional column, 0 for a required one.
    max_def: i16,
    /// The most rows a page may claim (its row group's).
    group_rows: usize,
    /// The current page as stored; its values are read from `plain`
    /// instead when `decompressed`.
    page: Option<Page>,
    /// The current page decompressed, reused from page to page.
    plain: Vec<u8>,
    decompressed: bool,
    /// The byte range of the current page's unread values.
    at: usize,
    end: usize,
    /// The current page's rows, and the next one unread.
    rows: usize,
    row: usize,
    /// Whether each row of the current page holds a value; empty when all
    /// do (the usual case, read as one run).
    present: Vec<bool>,
}

impl Drop for PlainDoubles {
    /// Hands the column's buffers back for the next piece's columns (a
    /// shared read buffer goes back once, with the first column dropped).
    fn drop(&mut self) {
        self.page = None;
        let stored = lock(&self.bytes.last).take();
        if let Some(stored) = stored.and_then(|b| b.try_into_mut().ok()) {
            lock(&self.buffers.stored).push(stored);
        }
        if self.plain.capacity() > 0 {
            lock(&self.buffers.plain).push(std::mem::take(&mut self.plain));
        }
    }
}

/// Locks `m`, whose data stays usable when a holder panicked (buffers only).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A run of rows handed out by [`PlainDoubles::take`].
enum Run<'a> {
    /// Rows that hold these values, one each.
    Values(&'a [[u8; 8]]),
    /// This many null rows.
    Nulls(usize),
}

impl PlainDoubles {
    /// Column `col` of row group `group`, when its chunk is such a column;
    /// its buffers from `pool`, reading a compressed chunk into `shared`.
    fn open(
        file: &TableReader,
        (pool, shared): (&Arc<BufferPool>, &Slot),
        group: usize,
        col: usize,
    ) -> Result<Option<Self>, ParquetError> {
        let footer = file.file.metadata();
        let rows = footer.row_group(group);
        let meta = rows.column(col);
        let descr = meta.column_descr();
        let plain = meta
            .encodings()
            .all(|e| matches!(e, Encoding::PLAIN | Encoding::RLE));
        let snappy = match meta.compression() {
            Compression::UNCOMPRESSED => None,
            Compression::SNAPPY => Some(snap::raw::Decoder::new()),
            _ => return Ok(None),
        };
        if meta.column_type() != Physical::DOUBLE
            || descr.max_def_level() > 1
            || descr.max_rep_level() != 0
            || meta.dictionary_page_offset().is_some()
            || !plain
        {
            return Ok(None);
        }
        let group_rows = usize::try_from(rows.num_rows()).unwrap_or(0);
        let locations = footer
            .offset_index()
            .and_then(|index| index.get(group)?.get(col))
            .map(|o| o.page_locations().clone());
        let stored = meta
            .clone()
            .into_builder()
            .set_compression(Compression::UNCOMPRESSED)
            .build()?;
        // An uncompressed page is read from where it was read into, so
        // such a column keeps a buffer of its own.
        let last = match snappy {
            Some(_) => Arc::clone(shared),
            None => pool.slot(),
        };
        let bytes = Arc::new(PageBytes {
            file: Arc::clone(&file.raw),
            len: file.len,
            last,
        });
        Ok(Some(Self {
            pages: SerializedPageReader::new(Arc::clone(&bytes), &stored, group_rows, locations)?,
            bytes,
            buffers: Arc::clone(pool),
            snappy,
            max_def: descr.max_def_level(),
            group_rows,
            page: None,
            plain: lock(&pool.plain).pop().unwrap_or_default(),
            decompressed: false,
            at: 0,
            end: 0,
            rows: 0,
            row: 0,
            present: Vec::new(),
        }))
    }

    /// Loads the next page; false at the chunk's end. A page that is not
    /// `PLAIN` doubles, does not decompress, whose levels do not decode, or
    /// whose byte count is not 8 per present value is an error: the
    /// chunk's metadata, or the page's own header, said otherwise.
    fn load(&mut self) -> Result<bool, ParquetError> {
        let bad = |what: String| Err(ParquetError::General(what));
        // The page before goes first, so that its buffer is read into again.
        self.page = None;
        let Some(page) = self.pages.get_next_page()? else {
            return Ok(false);
        };
        let optional = self.max_def == 1;
        // The page's rows; the bytes stored uncompressed before the rest
        // (a v2 page's levels); the levels (v1: a length, then the levels,
        // at the start of the decompressed bytes); whether the rest is
        // compressed; and the nulls, when the header says.
        let (rows, prefix, levels, compressed, nulls) = match &page {
            Page::DataPage {
                num_values,
                encoding: Encoding::PLAIN,
                def_level_encoding,
                ..
            } => {
                if optional && *def_level_encoding != Encoding::RLE {
                    return bad(format!(
                        "definition levels in {def_level_encoding}, not RLE"
                    ));
                }
                let levels = if optional { Levels::V1 } else { Levels::None };
                (
                    *num_values as usize,
                    0,
                    levels,
                    true,
                    (!optional).then_some(0),
                )
            }
            Page::DataPageV2 {
                num_values,
                encoding: Encoding::PLAIN,
                num_nulls,
                num_rows,
                def_levels_byte_len,
                rep_levels_byte_len,
                is_compressed,
                ..
            } => {
                if num_rows != num_values {
                    return bad(format!(
                        "a flat page of {num_rows} rows and {num_values} values"
                    ));
                }
                if *num_nulls > 0 && !optional {
                    return bad(format!("{num_nulls} nulls in a required column"));
                }
                let rep = *rep_levels_byte_len as usize;
                let end = rep.saturating_add(*def_levels_byte_len as usize);
                let nulls = (*num_nulls == 0).then_some(0);
                let levels = Levels::V2(rep..end);
                (*num_values as usize, end, levels, *is_compressed, nulls)
            }
            other => {
                return bad(format!(
                    "a {:?} page ({}) in a DOUBLE column whose metadata lists only PLAIN values",
                    other.page_type(),
                    other.encoding()
                ));
            }
        };
        if rows > self.group_rows {
            return bad(format!(
                "a page of {rows} rows in a row group of {}",
                self.group_rows
            ));
        }
        self.decompressed = false;
        match self.snappy.as_mut().filter(|_| compressed) {
            Some(decoder) => {
                let snappy = |e: snap::Error| ParquetError::General(format!("snappy: {e}"));
                let stored = page.buffer();
                let Some((head, body)) = stored.split_at_checked(prefix) else {
                    return bad("a page shorter than its levels".into());
                };
                let len = snap::raw::decompress_len(body).map_err(snappy)?;
                // Levels take at most two bytes a row, a value eight.
                if len > rows.saturating_mul(16).saturating_add(64) {
                    return bad(format!(
                        "a page of {rows} rows that decompresses to {len} bytes"
                    ));
                }
                // Grown (and zeroed) only past its longest page so far,
                // and then to the page's size (not doubled, as a vector
                // grows): a column holds one page, as the column reader does.
                let need = prefix + len;
                self.plain
                    .reserve_exact(need.saturating_sub(self.plain.len()));
                self.plain.resize(need, 0);
                self.plain[..prefix].copy_from_slice(head);
                let n = decoder
                    .decompress(body, &mut self.plain[prefix..])
                    .map_err(snappy)?;
                if n != len {
                    return bad(format!("a page that decompresses to {n} of {len} bytes"));
                }
                self.decompressed = true;
            }
            None => self.page = Some(page),
        }
        let data = page_data(self.decompressed, &self.plain, &self.page);
        let (levels, start) = match levels {
            Levels::None => (0..0, 0),
            Levels::V2(levels) => (levels, prefix),
            Levels::V1 => {
                // A v1 page: the levels' length, the levels, the values.
                let len = data
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(|| {
                        ParquetError::General("a page shorter than its levels".into())
                    })?;
                let end = 4usize.saturating_add(len as usize);
                (4..end, end)
            }
        };
        self.present.clear();
        let values = match nulls {
            Some(n) => rows - n,
            None => {
                let Some(levels) = data.get(levels) else {
                    return bad("a page shorter than its levels".into());
                };
                def_levels(levels, rows, &mut self.present)?;
                let values = self.present.iter().filter(|&&p| p).count();
                if values == rows {
                    self.present.clear();
                }
                values
            }
        };
        let bytes = values * 8;
        if data.len().checked_sub(start) != Some(bytes) {
            return bad(format!(
                "a PLAIN page of {values} doubles holds {} bytes of values",
                data.len().saturating_sub(start)
            ));
        }
        (self.at, self.end) = (start, start + bytes);
        (self.rows, self.row) = (rows, 0);
        Ok(true)
    }

    /// The next run of at most `n` rows of the current page, alike
    /// (all holding values, or all null): its length and whether it holds
    /// values.
    fn next_run(&self, n: usize) -> (usize, bool) {
        let want = (self.rows - self.row).min(n);
        match self.present.get(self.row..self.row + want) {
            Some(rows @ [first, ..]) if !self.present.is_empty() => {
                (rows.iter().take_while(|&&p| p == *first).count(), *first)
            }
            _ => (want, true),
        }
    }

    /// Skips `n` rows (whole pages unread where the page index or header
    /// says they lie before the next row wanted); returns how many it
    /// skipped, fewer at the chunk's end.
    fn skip(&mut self, n: usize) -> Result<usize, ParquetError> {
        let mut done = 0;
        while done < n {
            if self.row < self.rows {
                let (k, values) = self.next_run(n - done);
                if values {
                    self.at += 8 * k;
                }
                self.row += k;
                done += k;
                continue;
            }
            let Some(next) = self.pages.peek_next_page()? else {
                break;
            };
            match next.num_rows.or(next.num_levels) {
                Some(rows) if !next.is_dict && rows <= n - done => {
                    self.pages.skip_next_page()?;
                    done += rows;
                }
                _ => {
                    if !self.load()? {
                        break;
                    }
                }
            }
        }
        Ok(done)
    }

    /// Hands the next `n` rows to `f` in runs (a run ends at a page's end
    /// or where nulls start or stop), each with its offset among the `n`;
    /// returns how many rows it read.
    fn take(&mut self, n: usize, mut f: impl FnMut(usize, Run<'_>)) -> Result<usize, ParquetError> {
        let mut done = 0;
        while done < n {
            if self.row == self.rows {
                if !self.load()? {
                    break;
                }
                continue;
            }
            let (k, values) = self.next_run(n - done);
            if values {
                let data = page_data(self.decompressed, &self.plain, &self.page);
                let run = &data[self.at..self.at + 8 * k];
                f(done, Run::Values(run.as_chunks::<8>().0));
                self.at += 8 * k;
            } else {
                f(done, Run::Nulls(k));
            }
            self.row += k;
            done += k;
        }
        Ok(done)
    }
}

/// Where a page's definition levels are.
enum Levels {
    /// None: a required column.
    None,
    /// A v1 page's: a 4-byte length, then the levels, before the values.
    V1,
    /// A v2 page's: this byte range, stored uncompressed.
    V2(Range<usize>),
}

/// The current page's bytes, decompressed: `plain` when the page was
/// decompressed into it, else the page as stored.
fn page_data<'a>(decompressed: bool, plain: &'a [u8], page: &'a Option<Page>) -> &'a [u8] {
    if decompressed {
        plain
    } else {
        page.as_ref().map_or(&[], |p| p.buffer())
    }
}

/// The file as a [`PlainDoubles`] page reader reads it: a page's stored
/// bytes are read with one positional read into a buffer that is taken
/// back, and read into again, once that page has been dropped. Reading a
/// column then costs no fresh memory (and so no page faults) per page.
struct PageBytes {
    file: Arc<File>,
    len: u64,
    /// What the last call handed out (the buffer to take back), shared
    /// by the compressed columns of one piece.
    last: Slot,
}

impl Length for PageBytes {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PageBytes {
    type T = BufReader<FileAt>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        Ok(BufReader::new(FileAt {
            file: Arc::clone(&self.file),
            at: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        // A length from the file is checked against it before any memory
        // is set aside for it.
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at offset {start} of a file of {} bytes",
                self.len
            )));
        }
        let mut last = lock(&self.last);
        let mut buf = match last.take().map(Bytes::try_into_mut) {
            Some(Ok(buf)) => buf,
            _ => BytesMut::new(),
        };
        if buf.capacity() < length {
            // To the page's size, not doubled as `resize` would grow it.
            buf = BytesMut::zeroed(length);
        } else {
            buf.resize(length, 0);
        }
        self.file.read_exact_at(&mut buf, start)?;
        let bytes = buf.freeze();
        *last = Some(bytes.clone());
        Ok(bytes)
    }
}

/// A [`Read`] of a shared file from an offset of its own (positional
/// reads, so that readers of one file do not move each other).
struct FileAt {
    file: Arc<File>,
    at: u64,
}

impl Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The definition levels of `n` rows of a flat optional column (bit
/// width one) in Parquet's RLE / bit-packed hybrid encoding, as whether
/// each row holds a value, into `out`.
fn def_levels(mut bytes: &[u8], n: usize, out: &mut Vec<bool>) -> Result<(), ParquetError> {
    let bad = |what: &str| ParquetError::General(format!("definition levels: {what}"));
    out.clear();
    out.reserve(n);
    while out.len() < n {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let (&b, rest) = bytes.split_first().ok_or_else(|| bad("truncated"))?;
            bytes = rest;
            if shift > 56 {
                return Err(bad("a run header too long"));
            }
            header |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let left = n - out.len();
        let count = usize::try_from(header >> 1).unwrap_or(usize::MAX);
        if header & 1 == 0 {
            // A repeated run: the count, then the level in one byte.
            let (&level, rest) = bytes.split_first().ok_or_else(|| bad("truncated"))?;
            bytes = rest;
            if level > 1 {
                return Err(bad("a level above 1 in a flat optional column"));
            }
            out.extend(std::iter::repeat_n(level == 1, count.min(left)));
        } else {
            // Bit-packed: `count` groups of 8 levels, one byte each.
            if count > bytes.len() {
                return Err(bad("truncated"));
            }
            let (packed, rest) = bytes.split_at(count);
            bytes = rest;
            for b in packed {
                for bit in 0..8 {
                    if out.len() == n {
                        break;
                    }
                    out.push(b >> bit & 1 == 1);
                }
            }
        }
    }
    Ok(())
}

/// `n` rows of a numeric column: its present values as f64 in
/// `s.f64s`, its definition levels in `s.defs`.
fn read_numbers(r: &mut ColumnReader, n: usize, s: &mut Scratch) -> Result<(), ParquetError> {
    s.defs.clear();
    s.f64s.clear();
    let defs = Some(&mut s.defs);
    let read = match r {
        ColumnReader::DoubleColumnReader(r) => r.read_records(n, defs, None, &mut s.f64s)?.0,
        ColumnReader::FloatColumnReader(r) => {
            s.f32s.clear();
            let k = r.read_records(n, defs, None, &mut s.f32s)?.0;
            s.f64s.extend(s.f32s.iter().map(|&v| f64::from(v)));
            k
        }
        ColumnReader::Int32ColumnReader(r) => {
            s.i32s.clear();
            let k = r.read_records(n, defs, None, &mut s.i32s)?.0;
            s.f64s.extend(s.i32s.iter().map(|&v| f64::from(v)));
            k
        }
        ColumnReader::Int64ColumnReader(r) => {
            s.i64s.clear();
            let k = r.read_records(n, defs, None, &mut s.i64s)?.0;
            // Beyond 2^53 the nearest double, as pandas reads it.
            #[allow(clippy::cast_precision_loss)]
            s.f64s.extend(s.i64s.iter().map(|&v| v as f64));
            k
        }
        _ => return Err(ParquetError::General("not a numeric column".into())),
    };
    if read == n {
        Ok(())
    } else {
        Err(ParquetError::EOF(format!("{read} of {n} rows")))
    }
}

/// `n` rows of a text-like column, as text, into `s.texts` / `s.present`.
fn read_texts(
    r: &mut ColumnReader,
    n: usize,
    max_def: i16,
    s: &mut Scratch,
) -> Result<(), ParquetError> {
    use std::fmt::Write as _;
    s.defs.clear();
    let defs = Some(&mut s.defs);
    if s.texts.len() < n {
        s.texts.resize(n, String::new());
    }
    s.present.clear();
    s.present.resize(n, true);
    let read = match r {
        ColumnReader::ByteArrayColumnReader(r) => {
            s.bytes.clear();
            r.read_records(n, defs, None, &mut s.bytes)?.0
        }
        ColumnReader::Int32ColumnReader(r) => {
            s.i32s.clear();
            r.read_records(n, defs, None, &mut s.i32s)?.0
        }
        ColumnReader::Int64ColumnReader(r) => {
            s.i64s.clear();
            r.read_records(n, defs, None, &mut s.i64s)?.0
        }
        ColumnReader::BoolColumnReader(r) => {
            s.bools.clear();
            r.read_records(n, defs, None, &mut s.bools)?.0
        }
        _ => return Err(ParquetError::General("not a text column".into())),
    };
    if read != n {
        return Err(ParquetError::EOF(format!("{read} of {n} rows")));
    }
    let mut v = 0;
    for i in 0..n {
        if max_def > 0 && s.defs.get(i) != Some(&max_def) {
            s.present[i] = false;
            continue;
        }
        let t = &mut s.texts[i];
        t.clear();
        match r {
            ColumnReader::ByteArrayColumnReader(_) => {
                let b = s.bytes.get(v).map_or(&[][..], ByteArray::data);
                // Invalid UTF-8 shows as U+FFFD, as `score` shows such CSV cells.
                t.push_str(&String::from_utf8_lossy(b));
            }
            ColumnReader::Int32ColumnReader(_) => {
                let _ = write!(t, "{}", s.i32s.get(v).copied().unwrap_or_default());
            }
            ColumnReader::Int64ColumnReader(_) => {
                let _ = write!(t, "{}", s.i64s.get(v).copied().unwrap_or_default());
            }
            _ => {
                let _ = write!(t, "{}", s.bools.get(v).copied().unwrap_or_default());
            }
        }
        v += 1;
    }
    Ok(())
}

pub(crate) fn table_error(path: &Path, row: Option<u64>, problem: String) -> ParticipantError {
    ParticipantError::Table {
        file: path.to_owned(),
        row,
        problem,
    }
}

/// An error reading column `name` in the `n` rows after the first `at`.
fn column_error(
    path: &Path,
    name: &str,
    at: usize,
    n: usize,
    e: &ParquetError,
) -> ParticipantError {
    let rows = if n > 1 {
        format!("rows {} to {}", at + 1, at + n)
    } else {
        format!("row {}", at + 1)
    };
    table_error(
        path,
        None,
        format!("column `{name}`, {rows}: cannot be read: {e}"),
    )
}

fn parquet_error(path: &Path, e: &ParquetError) -> ParticipantError {
    table_error(path, None, format!("not a readable Parquet file: {e}"))
}

fn short(path: &Path) -> ParticipantError {
    table_error(
        path,
        None,
        "a column holds fewer values than its row group's rows".into(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ::parquet::data_type::{ByteArrayType, DoubleType, Int64Type};
    use ::parquet::file::properties::{WriterProperties, WriterVersion};
    use ::parquet::file::writer::SerializedFileWriter;
    use ::parquet::schema::parser::parse_message_type;
    use fedcredit_model::{Feature, LabelSpec};

    use super::*;

    fn schema() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "age".into() },
                Feature::Categorical {
                    name: "housing".into(),
                    categories: vec!["free".into(), "own".into(), "rent".into()],
                },
                Feature::Numeric {
                    name: "income".into(),
                },
            ],
        }
    }

    /// One row of the test table: `None` is a null.
    type Row<'a> = (Option<f64>, &'a str, Option<i64>, &'a str);

    /// Writes `rows` (columns `y, income, housing, age`: another order than
    /// the schema's) in row groups of `group` rows with small pages.
    fn write(path: &Path, rows: &[Row<'static>], group: usize) {
        let message = "message t { required binary y (UTF8); optional int64 income; \
                       required binary housing (UTF8); optional double age; }";
        let schema = Arc::new(parse_message_type(message).expect("schema"));
        let props = Arc::new(
            WriterProperties::builder()
                .set_data_page_row_count_limit(7)
                .set_write_batch_size(7)
                .build(),
        );
        let file = File::create(path).expect("create");
        let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
        for part in rows.chunks(group) {
            let mut g = w.next_row_group().expect("group");
            let text = |f: for<'r> fn(&'r Row<'static>) -> &'r str| -> Vec<ByteArray> {
                part.iter().map(|r| ByteArray::from(f(r))).collect()
            };
            let levels =
                |present: Vec<bool>| -> Vec<i16> { present.into_iter().map(i16::from).collect() };
            let mut c = g.next_column().expect("col").expect("y");
            c.typed::<ByteArrayType>()
                .write_batch(&text(|r| r.3), None, None)
                .expect("y");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("income");
            let incomes: Vec<i64> = part.iter().filter_map(|r| r.2).collect();
            let defs = levels(part.iter().map(|r| r.2.is_some()).collect());
            c.typed::<Int64Type>()
                .write_batch(&incomes, Some(&defs), None)
                .expect("income");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("housing");
            c.typed::<ByteArrayType>()
                .write_batch(&text(|r| r.1), None, None)
                .expect("housing");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("age");
            let ages: Vec<f64> = part.iter().filter_map(|r| r.0).collect();
            let defs = levels(part.iter().map(|r| r.0.is_some()).collect());
            c.typed::<DoubleType>()
                .write_batch(&ages, Some(&defs), None)
                .expect("age");
            c.close().expect("close");
            g.close().expect("group");
        }
        w.close().expect("close");
    }

    fn good_rows(n: usize) -> Vec<Row<'static>> {
        (0..n)
            .map(|i| {
                let housing = ["free", " own", "rent"][i % 3];
                let label = if i % 4 == 0 { "bad" } else { "good" };
                (Some(i as f64 * 0.5), housing, Some(i as i64 * 10), label)
            })
            .collect()
    }

    /// The CSV text of the same rows, loaded by the CSV reader.
    fn csv_of(dir: &Path, rows: &[Row<'_>]) -> Dataset {
        let mut text = String::from("age,housing,income,y\n");
        for r in rows {
            text.push_str(&format!(
                "{},{},{},{}\n",
                r.0.unwrap_or_default(),
                r.1,
                r.2.unwrap_or_default(),
                r.3
            ));
        }
        let path = dir.join("same.csv");
        std::fs::write(&path, text).expect("write");
        super::super::load_csv(&path, &schema()).expect("csv")
    }

    #[test]
    fn loads_what_the_csv_of_the_same_rows_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = good_rows(3000);
        for group in [3000, 1000, 333] {
            let path = dir.path().join("a.parquet");
            write(&path, &rows, group);
            assert!(is_parquet(&path));
            let d = super::super::load(&path, &schema()).expect("load");
            let c = csv_of(dir.path(), &rows);
            assert_eq!(d.x, c.x, "group {group}");
            assert_eq!(d.y, c.y);
        }
    }

    #[test]
    fn nulls_nan_and_bad_values_name_the_first_bad_row_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-a.parquet");
        let cases: [(usize, Row<'static>, &str); 5] = [
            (
                1500,
                (None, "own", Some(1), "good"),
                "row 1501: column `age`: null, expected a number",
            ),
            (
                20,
                (Some(f64::NAN), "own", Some(1), "good"),
                "row 21: column `age`: value `NaN` is not finite, expected a finite number",
            ),
            (
                2500,
                (Some(1.0), "boat", None, "good"),
                "row 2501: column `housing`: value `boat` is not a listed category",
            ),
            (
                7,
                (Some(1.0), "own", None, "good"),
                "row 8: column `income`: null, expected a number",
            ),
            (
                0,
                (None, "own", Some(1), "BAD"),
                "row 1: label column `y`: value `BAD` is neither `bad` (positive) nor `good`",
            ),
        ];
        for (at, bad, message) in cases {
            let mut rows = good_rows(3000);
            rows[at] = bad;
            // A later bad row in another row group must not hide the first.
            rows[2990].0 = Some(f64::INFINITY);
            write(&path, &rows, 1000);
            let e = load_parquet(&path, &schema())
                .expect_err("bad row")
                .to_string();
            assert!(
                e.starts_with(&format!("{}: {message}", path.display())),
                "{e}"
            );
        }
    }

    /// One required DOUBLE column `x` of `values`, PLAIN without a
    /// dictionary, pages of 7 rows, in the given format version, stored
    /// with snappy when `snappy`.
    fn write_plain(path: &Path, values: &[f64], version: WriterVersion, snappy: bool) {
        let values: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        write_plain_nullable(path, &values, version, false, snappy);
    }

    /// [`write_plain`] with nulls: `optional` when `optional`.
    fn write_plain_nullable(
        path: &Path,
        values: &[Option<f64>],
        version: WriterVersion,
        optional: bool,
        snappy: bool,
    ) {
        let message = if optional {
            "message t { optional double x; }"
        } else {
            "message t { required double x; }"
        };
        let schema = Arc::new(parse_message_type(message).expect("schema"));
        let props = Arc::new(
            WriterProperties::builder()
                .set_writer_version(version)
                .set_compression(if snappy {
                    Compression::SNAPPY
                } else {
                    Compression::UNCOMPRESSED
                })
                .set_dictionary_enabled(false)
                .set_data_page_row_count_limit(7)
                .set_write_batch_size(7)
                .build(),
        );
        let file = File::create(path).expect("create");
        let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
        let mut g = w.next_row_group().expect("group");
        let mut c = g.next_column().expect("col").expect("x");
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        let defs = optional.then_some(&defs[..]);
        c.typed::<DoubleType>()
            .write_batch(&present, defs, None)
            .expect("x");
        c.close().expect("close");
        g.close().expect("group");
        w.close().expect("close");
    }

    /// Every row of column 0 of `path` read through [`PlainDoubles`]
    /// after skipping `skip`, `take` rows at a time.
    fn read_plain(path: &Path, indexed: bool, skip: usize, take: usize) -> Vec<Option<f64>> {
        let file = open_reader(path, indexed).expect("reader");
        let mut p = PlainDoubles::open(&file, (&Arc::default(), &Slot::default()), 0, 0)
            .expect("open")
            .expect("a PLAIN double column is read from its pages");
        assert_eq!(p.skip(skip).expect("skip"), skip);
        let mut got = Vec::new();
        loop {
            let before = got.len();
            let n = p
                .take(take, |at, run| {
                    assert_eq!(at, got.len() - before);
                    match run {
                        Run::Values(v) => {
                            got.extend(v.iter().map(|v| Some(f64::from_le_bytes(*v))));
                        }
                        Run::Nulls(k) => got.extend(std::iter::repeat_n(None, k)),
                    }
                })
                .expect("take");
            assert_eq!(n, got.len() - before);
            if n < take {
                return got;
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Nulls anywhere (runs the writer encodes as repeats, and mixes it
        /// bit-packs), both page formats, stored with snappy or not, any
        /// starting row: what the page path reads is what was written.
        /// Values from a few (`few`) compress, so that v2 pages are stored
        /// compressed too (the writer keeps a v2 page's values
        /// uncompressed when snappy does not make them smaller).
        #[test]
        fn plain_double_pages_read_back_what_was_written_nulls_included(
            values in proptest::collection::vec(
                proptest::option::weighted(0.7, -1e6f64..1e6),
                1..300,
            ),
            few: bool,
            v2: bool,
            indexed: bool,
            snappy: bool,
            skip in 0usize..320,
            take in 1usize..40,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("x.parquet");
            let values: Vec<Option<f64>> = if few {
                values.iter().map(|v| v.map(|v| (v.abs() % 3.0).floor())).collect()
            } else {
                values
            };
            let version = if v2 { WriterVersion::PARQUET_2_0 } else { WriterVersion::PARQUET_1_0 };
            write_plain_nullable(&path, &values, version, true, snappy);
            let skip = skip.min(values.len());
            let got = read_plain(&path, indexed, skip, take);
            proptest::prop_assert_eq!(&got[..], &values[skip..]);
        }
    }

    #[test]
    fn definition_levels_that_do_not_decode_are_refused() {
        let mut out = Vec::new();
        // A repeated run of 3 ones, then a bit-packed group: 0b0000_0101.
        def_levels(&[6, 1, 3, 0b101], 11, &mut out).expect("levels");
        let want = [
            true, true, true, true, false, true, false, false, false, false, false,
        ];
        assert_eq!(out, want);
        // A run longer than the page is cut at the page's rows.
        def_levels(&[0xfe, 0xff, 0x03, 1], 5, &mut out).expect("levels");
        assert_eq!(out, [true; 5]);
        for (bytes, why) in [
            (&[6u8][..], "truncated"),
            (&[6, 2][..], "a level above 1"),
            (&[5, 0xff][..], "truncated"),
            (
                &[
                    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1,
                ][..],
                "too long",
            ),
        ] {
            let e = def_levels(bytes, 8, &mut out).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn plain_double_pages_skip_and_read_across_page_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.parquet");
        let values: Vec<f64> = (0..50).map(|i| f64::from(i) * 1.5 - 3.0).collect();
        let versions = [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0];
        for (version, snappy) in versions.into_iter().flat_map(|v| [(v, false), (v, true)]) {
            write_plain(&path, &values, version, snappy);
            let indexed = reader(&path).expect("reader");
            let plain = open_reader(&path, false).expect("reader");
            for file in [&indexed, &plain] {
                for skip in [0, 3, 7, 14, 20, 49, 50] {
                    for take in [1, 6, 7, 8, 30, 60] {
                        let mut p =
                            PlainDoubles::open(file, (&Arc::default(), &Slot::default()), 0, 0)
                                .expect("open")
                                .expect("a required PLAIN double column is read from its pages");
                        assert_eq!(p.skip(skip).expect("skip"), skip);
                        let mut got = Vec::new();
                        let n = p
                            .take(take, |at, run| {
                                assert_eq!(at, got.len());
                                let Run::Values(run) = run else {
                                    panic!("no nulls here");
                                };
                                got.extend(run.iter().map(|v| f64::from_le_bytes(*v)));
                            })
                            .expect("take");
                        let end = (skip + take).min(values.len());
                        let case = format!("{version:?} snappy {snappy} skip {skip} take {take}");
                        assert_eq!(n, end - skip, "{case}");
                        assert_eq!(got, values[skip..end], "{case}");
                    }
                }
                assert_eq!(
                    PlainDoubles::open(file, (&Arc::default(), &Slot::default()), 0, 0)
                        .expect("open")
                        .expect("plain")
                        .skip(51)
                        .expect("skip"),
                    50
                );
            }
        }
        // A column with a dictionary goes through the column reader.
        write(&path, &good_rows(10), 10);
        let file = reader(&path).expect("reader");
        assert!(
            PlainDoubles::open(&file, (&Arc::default(), &Slot::default()), 0, 3)
                .expect("open")
                .is_none()
        );
    }

    #[test]
    fn a_page_buffer_is_read_into_again_only_once_its_page_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bytes");
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        std::fs::write(&path, &data).expect("write");
        let bytes = PageBytes {
            file: Arc::new(File::open(&path).expect("open")),
            len: 4096,
            last: Slot::default(),
        };
        let a = bytes.get_bytes(0, 1000).expect("read");
        let first = a.as_ptr();
        let held = a.slice(10..20);
        drop(a);
        // A slice of the page is still held: the next read goes elsewhere
        // and the page is left as it was.
        let b = bytes.get_bytes(100, 900).expect("read");
        assert_ne!(b.as_ptr(), first);
        assert_eq!(held[..], data[10..20]);
        assert_eq!(b[..], data[100..1000]);
        drop(held);
        // Once the page is dropped its buffer is read into again.
        let second = b.as_ptr();
        drop(b);
        let c = bytes.get_bytes(2000, 500).expect("read");
        assert_eq!(c.as_ptr(), second);
        assert_eq!(c[..], data[2000..2500]);
        // A range past the end is refused before memory is set aside for it.
        for (start, len) in [(4000, 97), (u64::MAX - 1, 2), (0, usize::MAX)] {
            let e = bytes.get_bytes(start, len).expect_err("past the end");
            assert!(
                e.to_string()
                    .contains(&format!("{len} bytes at offset {start}")),
                "{e}"
            );
        }
        assert_eq!(
            bytes.get_bytes(4000, 96).expect("the last bytes")[..],
            data[4000..]
        );
    }

    #[test]
    fn compressed_columns_share_one_read_buffer_and_hold_one_page_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.parquet");
        let values: Vec<f64> = (0..50).map(f64::from).collect();
        for snappy in [true, false] {
            write_plain(&path, &values, WriterVersion::PARQUET_1_0, snappy);
            let file = reader(&path).expect("reader");
            let pool = Arc::default();
            let shared = Slot::default();
            let open = || {
                PlainDoubles::open(&file, (&pool, &shared), 0, 0)
                    .expect("open")
                    .expect("plain")
            };
            let (mut a, mut b) = (open(), open());
            let mut got = (Vec::new(), Vec::new());
            for _ in 0..10 {
                for (p, got) in [(&mut a, &mut got.0), (&mut b, &mut got.1)] {
                    p.take(5, |_, run| {
                        if let Run::Values(v) = run {
                            got.extend(v.iter().map(|v| f64::from_le_bytes(*v)));
                        }
                    })
                    .expect("take");
                }
            }
            assert_eq!((&got.0, &got.1), (&values, &values));
            drop((a, b));
            let (stored, plain) = (lock(&pool.stored).len(), lock(&pool.plain).len());
            // Snappy: one read buffer between them, a decompressed page
            // each; uncompressed: a read buffer each, holding its page.
            let want = if snappy { (1, 2) } else { (2, 0) };
            assert_eq!((stored, plain), want, "snappy {snappy}");
        }
    }

    /// A file pyarrow wrote with page checksums (see
    /// `tests/fixtures/README.md`).
    const CHECKSUMS: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/checksums.parquet"
    ));

    #[test]
    fn a_page_that_does_not_match_its_checksum_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-a.parquet");
        let schema = Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "x".into() },
                Feature::Numeric { name: "z".into() },
            ],
        };
        std::fs::write(&path, CHECKSUMS).expect("write");
        let data = load_parquet(&path, &schema).expect("the file as written");
        assert_eq!(data.x.dim(), (300, 2));
        assert_eq!(
            (data.x[[3, 0]], data.x[[3, 1]], data.y[4]),
            (-18.5, 3.0, 1.0)
        );
        // `x` is read from its pages, `z` (a dictionary) by the column
        // reader: a byte flipped in a data page of either, or in the
        // dictionary page, is refused by the page's checksum.
        let file = reader(&path).expect("reader");
        let footer = file.file.metadata();
        let index = footer.offset_index().expect("a page index");
        let last_byte = |col: usize| {
            let page = &index[0][col].page_locations()[0];
            usize::try_from(page.offset + i64::from(page.compressed_page_size) - 1).expect("at")
        };
        let dictionary = footer.row_group(0).column(1).dictionary_page_offset();
        let before_data = usize::try_from(index[0][1].page_locations()[0].offset).expect("at");
        assert!(dictionary.is_some());
        let corrupt = [
            (last_byte(0), "x"),
            (last_byte(1), "z"),
            (before_data - 1, "z"),
        ];
        for (at, column) in corrupt {
            let mut bad = CHECKSUMS.to_vec();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).expect("write");
            let e = load_parquet(&path, &schema)
                .expect_err("corrupt")
                .to_string();
            let named = format!("{}: column `{column}`, rows 1 to ", path.display());
            let why = "cannot be read: Parquet error: Page CRC checksum mismatch";
            assert!(e.starts_with(&named) && e.contains(why), "byte {at}: {e}");
        }
    }

    #[test]
    fn a_corrupt_snappy_page_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.parquet");
        let values: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.25).collect();
        write_plain(&path, &values, WriterVersion::PARQUET_1_0, true);
        let file = reader(&path).expect("reader");
        let page = file.file.metadata().offset_index().expect("a page index")[0][0]
            .page_locations()[0]
            .clone();
        let good = std::fs::read(&path).expect("read");
        let read_all = || -> Result<usize, ParquetError> {
            let file = reader(&path).map_err(|e| ParquetError::General(e.to_string()))?;
            let mut p = PlainDoubles::open(&file, (&Arc::default(), &Slot::default()), 0, 0)?
                .expect("plain");
            p.take(1000, |_, _| {})
        };
        let mut snappy = 0;
        // Every byte of the first page (its header and its snappy data)
        // flipped in turn: an error or the 50 rows, never a panic.
        let start = usize::try_from(page.offset).expect("offset");
        let end = start + usize::try_from(page.compressed_page_size).expect("size");
        for at in start..end {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            std::fs::write(&path, &bad).expect("write");
            match read_all() {
                Ok(n) => assert_eq!(n, 50, "byte {at}"),
                Err(e) => snappy += usize::from(e.to_string().contains("snappy")),
            }
        }
        assert!(
            snappy > 0,
            "no flipped byte was refused by the decompressor"
        );
    }

    #[test]
    fn schema_problems_are_named_before_any_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        write(&path, &good_rows(10), 10);
        let mut s = schema();
        s.features.push(Feature::Numeric {
            name: "debt".into(),
        });
        let e = load_parquet(&path, &s).expect_err("missing").to_string();
        assert!(
            e.ends_with("t.parquet: column `debt` is missing from the header (the schema needs it as a numeric feature)"),
            "{e}"
        );
        let mut s = schema();
        s.features[0] = Feature::Numeric {
            name: "housing".into(),
        };
        s.features[1] = Feature::Categorical {
            name: "age".into(),
            categories: vec!["1".into(), "2".into()],
        };
        let e = load_parquet(&path, &s).expect_err("types").to_string();
        assert!(
            e.contains("t.parquet: column `housing` holds BYTE_ARRAY")
                && e.ends_with("values, expected numbers (a numeric feature)"),
            "{e}"
        );
        std::fs::write(&path, b"not parquet").expect("write");
        let e = load_parquet(&path, &schema())
            .expect_err("garbage")
            .to_string();
        assert!(e.contains("t.parquet: not a readable Parquet file"), "{e}");
    }
}
