//! Loading a participant's rows: a CSV file with a header, encoded by the
//! job's schema into one feature matrix and a 0/1 label vector.
//!
//! Columns are matched by name (in any order; extra columns are ignored;
//! header names are trimmed, cells are trimmed by the
//! [`Encoder`]). Every problem is found here, before any round starts, and
//! reported as [`ParticipantError::Data`] naming the file, the line (the
//! header is line 1), the column, the value and what was expected:
//!
//! ```text
//! bank-a.csv:3: column `age`: value `abc` is not a number
//! bank-a.csv:1: column `housing` is missing from the header (the schema needs it as a categorical feature)
//! bank-a.csv:4: record has 3 fields, expected 4 (one per header column)
//! ```
//!
//! # Speed and memory
//!
//! The file is read twice: a first pass checks the CSV structure and counts
//! the records, so that the matrix is allocated once at its final size and
//! filled row by row in the second pass. The peak is the final matrix plus
//! one block per thread, never a second copy of the data.
//!
//! A plain file (no `"`, no lone `\r`; see [`blocks`]) is counted by a
//! byte scan and parsed in blocks on every core, straight into the matrix.
//! Any problem the fast path meets (a bad cell, a short row, invalid
//! UTF-8) sends the file to the sequential `csv` reader, which names it:
//! both paths accept the same files, give the same matrices and report the
//! same errors (tested on random files below).
//!
//! [`load_csv_visiting`] reads a plain file once for two uses: each block
//! goes to another reader (`fedcredit local`'s schema inference, which
//! must see every cell anyway) and is encoded beside it, so that a file
//! of numbers is not read and parsed a second time to be loaded.

pub mod blocks;
#[cfg(feature = "parquet")]
pub mod parquet_file;
#[cfg(feature = "parquet")]
pub mod stream;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use fedcredit_model::{Encoder, ModelError, Schema};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::ParticipantError;

/// One participant's encoded rows.
pub struct Dataset {
    /// Encoded features, `rows × schema.encoded_width()`, not standardized
    /// when loaded (a [`crate::credit::CreditData`] standardizes in place).
    pub x: Array2<f64>,
    /// Labels: 1 for the schema's positive (default) value, 0 for a negative one
    /// (a value the schema does not declare is refused when loading).
    pub y: Array1<f64>,
    /// The file the rows came from, for messages.
    pub path: PathBuf,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of encoded columns.
    pub fn width(&self) -> usize {
        self.x.ncols()
    }
}

/// Shape and origin only: a `Debug` of a dataset never prints data rows.
impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("rows", &self.rows())
            .field("width", &self.width())
            .finish_non_exhaustive()
    }
}

/// How much memory a participant's rows may take: the f64 matrix of
/// encoded features with its labels, `rows × (width + 1) × 8` bytes. A
/// Parquet file whose matrix would exceed it is streamed (see
/// [`stream`]) instead of loaded; a CSV file is always loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    bytes: u64,
}

impl MemoryBudget {
    /// The default, 4096 MB: the matrix of about 10 million rows of 50
    /// columns, leaving room on an 8 GB machine for everything else.
    pub const DEFAULT_MB: u64 = 4096;

    /// A budget of `mb` megabytes (10^6 bytes).
    pub fn from_mb(mb: u64) -> Self {
        Self {
            bytes: mb.saturating_mul(1_000_000),
        }
    }

    /// The budget in bytes.
    pub fn bytes(self) -> u64 {
        self.bytes
    }

    /// What is left after `used` bytes.
    pub fn minus(self, used: u64) -> Self {
        Self {
            bytes: self.bytes.saturating_sub(used),
        }
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::from_mb(Self::DEFAULT_MB)
    }
}

/// Bytes of the f64 matrix and labels of `rows` rows of `width` columns.
pub fn matrix_bytes(rows: usize, width: usize) -> u64 {
    (rows as u64)
        .saturating_mul(width as u64 + 1)
        .saturating_mul(8)
}

/// A participant's rows: held in memory, or read from their Parquet file
/// again for every round.
#[derive(Debug)]
pub enum Rows {
    /// Loaded and encoded once.
    InMemory(Dataset),
    /// Checked once, then streamed batch by batch each round.
    #[cfg(feature = "parquet")]
    Streamed(stream::ParquetStream),
}

impl Rows {
    /// Opens `path` with `schema`, loading it if its matrix fits `budget`
    /// (see [`MemoryBudget`]) and streaming it otherwise. Either way every
    /// row has been checked when this returns.
    pub fn open(
        path: &Path,
        schema: &Schema,
        budget: MemoryBudget,
    ) -> Result<Self, ParticipantError> {
        #[cfg(feature = "parquet")]
        if is_parquet(path) {
            let (table, encoder) = parquet_file::open_for_schema(path, schema)?;
            let need = matrix_bytes(table.rows(), encoder.width());
            if need > budget.bytes() {
                tracing::info!(
                    file = %path.display(),
                    rows = table.rows(),
                    matrix_mb = need / 1_000_000,
                    budget_mb = budget.bytes() / 1_000_000,
                    "the rows exceed the memory budget: streaming them from the file every round"
                );
                return stream::ParquetStream::open(path, schema).map(Rows::Streamed);
            }
            return parquet_file::load_parquet(path, schema).map(Rows::InMemory);
        }
        load(path, schema).map(|data| Self::loaded(data, budget))
    }

    /// Rows loaded already (e.g. by [`load_csv_visiting`]), as
    /// [`Rows::open`] keeps a CSV file's.
    pub fn loaded(data: Dataset, budget: MemoryBudget) -> Self {
        let path = &data.path;
        let need = matrix_bytes(data.rows(), data.width());
        if need > budget.bytes() {
            tracing::warn!(
                file = %path.display(),
                matrix_mb = need / 1_000_000,
                budget_mb = budget.bytes() / 1_000_000,
                "the rows exceed the memory budget but a CSV file is always loaded; \
                 convert it to Parquet to stream it"
            );
        }
        Rows::InMemory(data)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Rows::InMemory(d) => d.rows(),
            #[cfg(feature = "parquet")]
            Rows::Streamed(s) => s.rows(),
        }
    }

    /// Number of encoded columns.
    pub fn width(&self) -> usize {
        match self {
            Rows::InMemory(d) => d.width(),
            #[cfg(feature = "parquet")]
            Rows::Streamed(s) => s.width(),
        }
    }

    /// The file the rows come from.
    pub fn path(&self) -> &Path {
        match self {
            Rows::InMemory(d) => &d.path,
            #[cfg(feature = "parquet")]
            Rows::Streamed(s) => s.path(),
        }
    }

    /// Every raw (unstandardized) row to `f`: the whole matrix when held
    /// in memory, else batch by batch from the file. Errors name the file.
    pub fn for_each_raw_batch(
        &self,
        mut f: impl FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> Result<(), ModelError>,
    ) -> Result<(), String> {
        match self {
            Rows::InMemory(d) => {
                f(d.x.view(), d.y.view()).map_err(|e| format!("{}: {e}", d.path.display()))
            }
            #[cfg(feature = "parquet")]
            Rows::Streamed(s) => s
                .for_each_batch(|_| Ok(()), f)
                .map_err(|e| format!("{}: {e}", s.path().display())),
        }
    }

    /// The rows as the WOE of their bins (one column per feature), held in
    /// memory: a scorecard's rounds after binning run on these.
    pub fn woe_encoded(
        &self,
        encoder: &fedcredit_model::scorecard::WoeEncoder,
    ) -> Result<Dataset, String> {
        let width = encoder.width();
        let (mut x, mut y) = (Vec::with_capacity(self.rows() * width), Vec::new());
        let (mut row, mut out) = (vec![0.0; self.width()], vec![0.0; width]);
        self.for_each_raw_batch(|xb, yb| {
            for r in xb.rows() {
                for (dst, v) in row.iter_mut().zip(r) {
                    *dst = *v;
                }
                encoder.encode(&row, &mut out)?;
                x.extend_from_slice(&out);
            }
            y.extend(yb.iter().copied());
            Ok(())
        })?;
        let x = Array2::from_shape_vec((y.len(), width), x)
            .map_err(|e| format!("{}: WOE rows: {e}", self.path().display()))?;
        Ok(Dataset {
            x,
            y: Array1::from(y),
            path: self.path().to_owned(),
        })
    }

    /// Bytes of memory the rows hold (0 when streamed).
    pub fn memory_bytes(&self) -> u64 {
        match self {
            Rows::InMemory(d) => matrix_bytes(d.rows(), d.width()),
            #[cfg(feature = "parquet")]
            Rows::Streamed(_) => 0,
        }
    }
}

/// Reads and encodes `path` with `schema`: a Parquet file by its extension
/// (`.parquet`, `.pq`; see [`parquet_file`]), else CSV ([`load_csv`]).
pub fn load(path: &Path, schema: &Schema) -> Result<Dataset, ParticipantError> {
    if is_parquet(path) {
        #[cfg(feature = "parquet")]
        return parquet_file::load_parquet(path, schema);
        #[cfg(not(feature = "parquet"))]
        return Err(data_error(
            path,
            0,
            "a Parquet file, but this build has no Parquet support \
             (the `parquet` feature of fedcredit-participant is off)"
                .to_owned(),
        ));
    }
    load_csv(path, schema)
}

/// Whether `path` names a Parquet file: its extension is `.parquet` or `.pq`
/// (any case). Everything else is read as CSV.
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

/// Reads and encodes `path` with `schema`. The file must have a header row
/// and at least one data row; see the module docs for the errors.
pub fn load_csv(path: &Path, schema: &Schema) -> Result<Dataset, ParticipantError> {
    load_csv_with(path, |header| Encoder::new(schema, header))
}

/// Reads and encodes the features of `path` with `schema`, without labels
/// (new applicants: the label column may be absent, and is ignored if
/// present; `y` is all zeros). Errors as [`load_csv`]'s.
pub fn load_unlabelled_csv(path: &Path, schema: &Schema) -> Result<Dataset, ParticipantError> {
    load_csv_with(path, |header| Encoder::for_scoring(schema, header))
}

fn load_csv_with(
    path: &Path,
    encoder: impl FnOnce(&[String]) -> fedcredit_model::Result<Encoder>,
) -> Result<Dataset, ParticipantError> {
    let mut reader = open(path)?;
    let header = read_header(&mut reader, path)?;
    let encoder = encoder(&header).map_err(|e| data_error(path, 1, e.to_string()))?;
    drop(reader);
    match load_plain(path, &encoder, blocks::threads(), blocks::BLOCK_BYTES) {
        Some(dataset) => Ok(dataset),
        None => load_sequential(path, &header, &encoder),
    }
}

/// The fast path: a plain file parsed in blocks on `threads` threads.
/// `None` when the file is not plain or anything in it is wrong (the
/// sequential reader then says what).
fn load_plain(
    path: &Path,
    encoder: &Encoder,
    threads: usize,
    block_bytes: usize,
) -> Option<Dataset> {
    if encoder.width() == 0 {
        return None;
    }
    let plain = blocks::PlainCsv::scan_blocks(path, block_bytes).ok()??;
    encode_plain(&plain, path, Some(encoder), threads, None).ok()?
}

/// A block visitor of [`load_csv_visiting`], given each block's text and
/// whether its rows all encoded (every feature cell a number, for an
/// all-numeric schema): `false` stops the reading.
pub type Visit<'v> = &'v (dyn Fn(&blocks::Block, &str, bool) -> bool + Sync);

/// Reads the plain CSV file `path` once (see [`blocks`]), on all cores:
/// every block is encoded with `schema` and its text then goes to
/// `visit` (e.g. schema inference, which must see every cell anyway), so
/// that the file need not be read and parsed again to load it.
///
/// `None` when the file is not plain, cannot be read, or `visit` returned
/// `false` for a block. Else every block was visited, and the dataset is
/// `Some` exactly when [`load_csv`]`(path, schema)` would return it from
/// the fast path: the same matrix, bit for bit (the same encoder, built
/// the same way, on the same records); it is `None` when a row does not
/// encode with `schema` (a cell that is not a number, say), and
/// [`load_csv`] then reads the file (and names any problem) as usual.
pub fn load_csv_visiting(
    path: &Path,
    schema: &Schema,
    visit: Visit<'_>,
) -> Option<Option<Dataset>> {
    let plain = blocks::PlainCsv::scan_blocks(path, blocks::BLOCK_BYTES).ok()??;
    let encoder = open(path)
        .ok()
        .and_then(|mut reader| read_header(&mut reader, path).ok())
        .and_then(|header| Encoder::new(schema, &header).ok());
    encode_plain(
        &plain,
        path,
        encoder.as_ref(),
        blocks::threads(),
        Some(visit),
    )
    .ok()
}

/// Encodes every block of `plain` into one matrix on `threads` threads,
/// then gives it to `visit` (if any). `Err` when the file
/// could not be read or `visit` refused a block; `Ok(None)` when a row
/// did not encode (which stops the reading when there is no `visit`) or
/// there is no encoder of some width.
fn encode_plain(
    plain: &blocks::PlainCsv,
    path: &Path,
    encoder: Option<&Encoder>,
    threads: usize,
    visit: Option<Visit<'_>>,
) -> Result<Option<Dataset>, blocks::Stopped> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let encoder = encoder.filter(|e| e.width() > 0);
    let (rows, width) = (plain.rows(), encoder.map_or(0, Encoder::width));
    let mut x = Array2::<f64>::zeros((rows, width));
    let mut y = Array1::<f64>::zeros(if encoder.is_some() { rows } else { 0 });
    let mut jobs: Vec<Option<(&mut [f64], &mut [f64])>> = Vec::with_capacity(plain.blocks().len());
    let mut encoding = false;
    match (encoder, x.as_slice_mut(), y.as_slice_mut()) {
        (Some(_), Some(mut xs), Some(mut ys)) => {
            encoding = true;
            for b in plain.blocks() {
                let (xb, xr) = xs.split_at_mut(b.rows * width);
                let (yb, yr) = ys.split_at_mut(b.rows);
                jobs.push(Some((xb, yb)));
                (xs, ys) = (xr, yr);
            }
        }
        _ => jobs.extend(plain.blocks().iter().map(|_| None)),
    }
    let failed = AtomicBool::new(!encoding);
    plain.par_blocks(plain.blocks(), jobs, threads, |block, text, job| {
        let encoded = match (encoder, job) {
            (Some(encoder), Some((xb, yb))) if !failed.load(Ordering::Relaxed) => {
                encode_block(encoder, block, text, xb, yb)
            }
            _ => false,
        };
        if !encoded {
            failed.store(true, Ordering::Relaxed);
        }
        // Without a visitor, a block that did not encode ends the work.
        visit.map_or(encoded, |visit| visit(block, text, encoded))
    })?;
    if failed.into_inner() {
        return Ok(None);
    }
    Ok(Some(Dataset {
        x,
        y,
        path: path.to_owned(),
    }))
}

/// Encodes the records of one block into its rows of the matrix; `false`
/// at the first problem, or if the block holds another number of records.
fn encode_block(
    encoder: &Encoder,
    block: &blocks::Block,
    text: &str,
    x: &mut [f64],
    y: &mut [f64],
) -> bool {
    let mut cells: Vec<&str> = Vec::new();
    let mut rows = x.chunks_exact_mut(encoder.width()).zip(y.iter_mut());
    for (_, record) in block.records(text) {
        let Some((row, label)) = rows.next() else {
            return false;
        };
        blocks::split_cells(record, &mut cells);
        match encode_row(encoder, &cells, row) {
            Ok(l) => *label = l,
            Err(_) => return false,
        }
    }
    rows.next().is_none()
}

/// The `csv` crate's reader, record by record: any CSV, and the exact
/// error for any problem.
fn load_sequential(
    path: &Path,
    header: &[String],
    encoder: &Encoder,
) -> Result<Dataset, ParticipantError> {
    // Pass 1: structure and record count.
    let mut reader = open(path)?;
    if read_header(&mut reader, path)? != header {
        return Err(changed(path, 1));
    }
    // Counting needs the record structure only: bytes, not UTF-8 (pass 2
    // checks the text of every cell it encodes).
    let mut counted = csv::ByteRecord::new();
    let mut rows = 0usize;
    while reader
        .read_byte_record(&mut counted)
        .map_err(|e| csv_error(path, header, e))?
    {
        rows += 1;
    }
    let mut record = csv::StringRecord::new();
    if rows == 0 {
        return Err(data_error(
            path,
            1,
            "the header is not followed by any data rows".into(),
        ));
    }

    // Pass 2: encode straight into the final matrix.
    let width = encoder.width();
    let mut x = Array2::<f64>::zeros((rows, width));
    let mut y = Array1::<f64>::zeros(rows);
    let mut reader = open(path)?;
    if read_header(&mut reader, path)? != header {
        return Err(changed(path, 1));
    }
    let mut i = 0usize;
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, header, e))?
    {
        if i >= rows {
            return Err(changed(path, line_of(path, record.position())));
        }
        let cells: Vec<&str> = record.iter().collect();
        let mut row = x.row_mut(i);
        let Some(slice) = row.as_slice_mut() else {
            // A freshly allocated matrix is in standard layout.
            return Err(data_error(
                path,
                line_of(path, record.position()),
                "internal: matrix row is not contiguous".into(),
            ));
        };
        y[i] = encode_row(encoder, &cells, slice)
            .map_err(|e| data_error(path, line_of(path, record.position()), e.to_string()))?;
        i += 1;
    }
    if i != rows {
        return Err(changed(path, 1));
    }
    Ok(Dataset {
        x,
        y,
        path: path.to_owned(),
    })
}

/// One record's features into `row`; returns its label (0 for an
/// encoder without a label column).
fn encode_row(encoder: &Encoder, cells: &[&str], row: &mut [f64]) -> fedcredit_model::Result<f64> {
    match encoder.label_column() {
        Some(_) => encoder.encode_into(cells, row),
        None => encoder.encode_features_into(cells, row).map(|()| 0.0),
    }
}

fn open(path: &Path) -> Result<csv::Reader<File>, ParticipantError> {
    let file = File::open(path).map_err(|source| ParticipantError::ReadInput {
        file: path.to_owned(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(file))
}

fn read_header(
    reader: &mut csv::Reader<File>,
    path: &Path,
) -> Result<Vec<String>, ParticipantError> {
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, &[], e))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(data_error(
            path,
            1,
            "empty file, expected a header row naming the columns".into(),
        ));
    }
    Ok(header)
}

/// The 1-based line (of the file, header = line 1) where the record at
/// `pos` starts. Only called on the error path.
///
/// csv's own `Position::line` skips blank lines and miscounts `\r\n`, and
/// its byte offset points at the end of the previous record; so the line is
/// counted here from the file: skip the line breaks after the offset, then
/// count the breaks (`\n`, `\r\n` or a lone `\r`, as csv accepts) before.
fn line_of(path: &Path, pos: Option<&csv::Position>) -> u64 {
    let Some(pos) = pos else { return 1 };
    count_lines(path, pos.byte()).unwrap_or_else(|_| pos.line())
}

fn count_lines(path: &Path, byte: u64) -> std::io::Result<u64> {
    LineCounter::new(File::open(path)?).line_at(byte)
}

/// Maps the byte offsets csv reports for records to 1-based file lines
/// (header = line 1), reading the file once, forward only: for reporting
/// many rows of one file (e.g. `fedcredit score --on-error skip`) without
/// rereading it for each.
///
/// ```
/// use fedcredit_participant::data::LineCounter;
///
/// let text = "h\r\na\r\n\r\nc\n";
/// let mut lines = LineCounter::new(text.as_bytes());
/// // csv puts a record's offset at the end of the previous one (here 1 and 4).
/// assert_eq!(lines.line_at(1).unwrap(), 2);
/// assert_eq!(lines.line_at(4).unwrap(), 4);
/// ```
#[derive(Debug)]
pub struct LineCounter<R> {
    reader: std::io::BufReader<R>,
    /// Bytes consumed so far.
    offset: u64,
    /// The line of the byte at `offset`.
    line: u64,
    /// The last byte consumed was a `\r` (so a `\n` after it ends no new line).
    after_cr: bool,
}

impl<R: Read> LineCounter<R> {
    /// Starts at the beginning of `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader: std::io::BufReader::with_capacity(64 * 1024, reader),
            offset: 0,
            line: 1,
            after_cr: false,
        }
    }

    /// The line of the first byte at or after `byte` that is not a line
    /// break (`\n`, `\r\n` or a lone `\r`, as csv accepts), or of the end of
    /// input. Offsets must not decrease between calls; an earlier one gets
    /// the current line.
    pub fn line_at(&mut self, byte: u64) -> std::io::Result<u64> {
        use std::io::BufRead;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(self.line);
            }
            let (mut used, mut found) = (0, false);
            for &b in buf {
                match b {
                    b'\n' if self.after_cr => self.after_cr = false,
                    b'\n' => self.line += 1,
                    b'\r' => {
                        self.line += 1;
                        self.after_cr = true;
                    }
                    _ if self.offset >= byte => {
                        found = true;
                        break;
                    }
                    _ => self.after_cr = false,
                }
                self.offset += 1;
                used += 1;
            }
            self.reader.consume(used);
            if found {
                return Ok(self.line);
            }
        }
    }
}

fn data_error(path: &Path, line: u64, problem: String) -> ParticipantError {
    ParticipantError::Data {
        file: path.to_owned(),
        line,
        problem,
    }
}

fn changed(path: &Path, line: u64) -> ParticipantError {
    data_error(
        path,
        line,
        "the file changed while it was being loaded; load it again".into(),
    )
}

/// csv's errors, reworded with the file, the line and the column name.
fn csv_error(path: &Path, header: &[String], e: csv::Error) -> ParticipantError {
    let line = line_of(path, e.position());
    let problem = match e.into_kind() {
        csv::ErrorKind::Io(source) => {
            return ParticipantError::ReadInput {
                file: path.to_owned(),
                source,
            };
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("record has {len} fields, expected {expected_len} (one per header column)"),
        csv::ErrorKind::Utf8 { err, .. } => {
            let column = header.get(err.field()).map_or_else(
                || format!("field {}", err.field() + 1),
                |h| format!("column `{h}`"),
            );
            format!(
                "{column}: the cell is not valid UTF-8 (after byte {}), expected UTF-8 text",
                err.valid_up_to()
            )
        }
        // Seeking and serde are not used here; keep whatever csv says.
        other => format!("CSV error: {other:?}"),
    };
    data_error(path, line, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_model::{Feature, LabelSpec};

    fn schema() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "age".into() },
                Feature::Categorical {
                    name: "housing".into(),
                    categories: vec!["free".into(), "own".into(), "rent".into()],
                },
            ],
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A random CSV file: mostly good rows, sometimes a bad cell, a short
    /// row, a quote, a lone CR, invalid UTF-8, blank and CRLF lines.
    fn random_file() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let age = prop_oneof![
            8 => (-1000i32..1000).prop_map(|v| v.to_string()),
            4 => (-1e6f64..1e6).prop_map(|v| format!(" {v} ")),
            2 => prop::sample::select(vec!["1e3", ".5", "5.", "+2", "-0", "0x1", "1_0"])
                .prop_map(str::to_owned),
            1 => prop::sample::select(vec!["", "abc", "NaN", "inf", "1e400", "\"7\"", "é"])
                .prop_map(str::to_owned),
        ];
        let housing = prop_oneof![
            10 => prop::sample::select(vec!["own", " rent", "free "]).prop_map(str::to_owned),
            1 => prop::sample::select(vec!["boat", "", "Own"]).prop_map(str::to_owned),
        ];
        let label = prop_oneof![
            10 => prop::sample::select(vec!["bad", "good"]).prop_map(str::to_owned),
            1 => prop::sample::select(vec!["BAD", "", "0"]).prop_map(str::to_owned),
        ];
        let ending = prop_oneof![
            20 => Just(b"\n".to_vec()),
            4 => Just(b"\r\n".to_vec()),
            2 => Just(b"\n\n".to_vec()),
            1 => Just(b"\r".to_vec()),
            1 => Just(b"\n\xff\n".to_vec()),
        ];
        let row = (age, housing, label, 0u8..40, ending).prop_map(|(a, h, l, shape, end)| {
            let mut r = match shape {
                0 => format!("{a},{h}"),
                1 => format!("{a},{h},{l},extra"),
                _ => format!("{a},{h},{l}"),
            }
            .into_bytes();
            r.extend(end);
            r
        });
        (proptest::collection::vec(row, 0..60), any::<bool>()).prop_map(|(rows, last_break)| {
            let mut text = b"age,housing,y\n".to_vec();
            for r in rows {
                text.extend(r);
            }
            if !last_break && text.ends_with(b"\n") {
                text.pop();
            }
            text
        })
    }

    /// The block-parallel path and the `csv` reader agree on every file:
    /// the same matrix when both read it, and the fast path never refuses
    /// a plain file the `csv` reader accepts. (Errors always come from the
    /// `csv` reader, so they are the same by construction.)
    #[test]
    fn the_fast_path_agrees_with_the_csv_reader() {
        use proptest::prelude::*;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        let config = ProptestConfig::with_cases(400);
        proptest!(config, |(text in random_file(), block in 1usize..200, threads in 1usize..4)| {
            std::fs::write(&path, &text).expect("write");
            let header = ["age", "housing", "y"].map(String::from);
            let encoder = Encoder::new(&schema(), &header).expect("encoder");
            let slow = load_sequential(&path, &header, &encoder);
            let fast = load_plain(&path, &encoder, threads, block);
            let plain = !text.contains(&b'"')
                && !text.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
                && !text.ends_with(b"\r");
            match (&slow, &fast) {
                (Ok(s), Some(f)) => {
                    prop_assert_eq!(&s.x, &f.x);
                    prop_assert_eq!(&s.y, &f.y);
                }
                (Ok(_), None) => prop_assert!(!plain, "a plain file the csv reader accepts"),
                (Err(e), Some(_)) => prop_assert!(false, "fast path accepted a bad file: {}", e),
                (Err(_), None) => {}
            }
            // Read once beside another pass (schema inference): every block
            // is visited, and the matrix is the fast path's when it has one.
            let visits = std::sync::atomic::AtomicUsize::new(0);
            let count = |_: &blocks::Block, _: &str, _: bool| {
                visits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            };
            let visited = load_csv_visiting(&path, &schema(), &count);
            let scanned = blocks::PlainCsv::scan(&path).expect("scan");
            prop_assert_eq!(visited.is_some(), scanned.is_some());
            if let Some(scanned) = &scanned {
                prop_assert_eq!(visits.into_inner(), scanned.blocks().len());
            }
            let full = load_plain(&path, &encoder, threads, blocks::BLOCK_BYTES);
            match (&full, visited.flatten()) {
                (Some(f), Some(v)) => {
                    prop_assert_eq!(&f.x, &v.x);
                    prop_assert_eq!(&f.y, &v.y);
                }
                (None, None) => {}
                (f, v) => prop_assert!(false, "fast path {:?}, visiting {:?}", f, v),
            }
            // What callers get: the fast result or the csv reader's error.
            let loaded = load_csv(&path, &schema());
            match (&slow, &loaded) {
                (Ok(s), Ok(l)) => prop_assert_eq!(&s.x, &l.x),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "load_csv disagrees with the csv reader"),
            }
        });
    }

    /// A visitor that refuses a block stops the reading; a row that does
    /// not encode leaves the dataset out but every block visited.
    #[test]
    fn visiting_stops_or_leaves_the_dataset_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write(
            dir.path(),
            "g.csv",
            "age,housing,y\n30,own,bad\n41,free,good\n",
        );
        let loaded = load_csv_visiting(&good, &schema(), &|_, _, encoded| encoded)
            .expect("plain")
            .expect("encodes");
        assert_eq!(loaded.x, load_csv(&good, &schema()).expect("load").x);
        assert!(load_csv_visiting(&good, &schema(), &|_, _, _| false).is_none());
        let bad = write(
            dir.path(),
            "b.csv",
            "age,housing,y\n30,boat,bad\n41,free,good\n",
        );
        let seen = std::sync::Mutex::new(String::new());
        let visit = |_: &blocks::Block, text: &str, encoded: bool| {
            assert!(!encoded);
            seen.lock().expect("lock").push_str(text);
            true
        };
        assert!(
            load_csv_visiting(&bad, &schema(), &visit)
                .expect("plain")
                .is_none()
        );
        assert_eq!(
            seen.into_inner().expect("lock"),
            "30,boat,bad\n41,free,good\n"
        );
        let quoted = write(dir.path(), "q.csv", "age,housing,y\n30,\"own\",bad\n");
        assert!(load_csv_visiting(&quoted, &schema(), &|_, _, _| true).is_none());
    }

    #[test]
    fn loads_rows_and_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "a.csv",
            "age,housing,y\n30,own,bad\n\n 41 ,free,good\n",
        );
        let d = load_csv(&path, &schema()).expect("load");
        assert_eq!(d.x, ndarray::array![[30.0, 1.0, 0.0], [41.0, 0.0, 0.0]]);
        assert_eq!(d.y, ndarray::array![1.0, 0.0]);
        assert_eq!((d.rows(), d.width()), (2, 3));
        assert!(format!("{d:?}").contains("rows: 2"));
    }

    #[test]
    fn unlabelled_rows_load_with_or_without_the_label_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = write(dir.path(), "new.csv", "housing,age\nown,30\nfree, 41\n");
        let d = load_unlabelled_csv(&plain, &schema()).expect("load");
        assert_eq!(d.x, ndarray::array![[30.0, 1.0, 0.0], [41.0, 0.0, 0.0]]);
        assert_eq!(d.y, ndarray::array![0.0, 0.0]);
        // A label column, even with empty cells, is ignored; the quoted file
        // goes through the sequential reader, with the same result.
        let quoted = write(
            dir.path(),
            "q.csv",
            "age,housing,y\n30,\"own\",\n41,free,bad\n",
        );
        let q = load_unlabelled_csv(&quoted, &schema()).expect("load");
        assert_eq!(q.x, d.x);
        let err = load_unlabelled_csv(&write(dir.path(), "w.csv", "age,home\n30,own\n"), &schema())
            .expect_err("missing column");
        assert!(
            err.to_string()
                .contains("w.csv:1: column `housing` is missing"),
            "{err}"
        );
    }

    #[test]
    fn line_numbers_count_blank_and_quoted_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "a.csv",
            "age,housing,y,note\n30,own,bad,\"two\nlines\"\n\n31,boat,good,x\n",
        );
        let err = load_csv(&path, &schema()).expect_err("bad category");
        assert!(err.to_string().ends_with(
            "a.csv:5: column `housing`: value `boat` is not a listed category, \
             expected one of `free`, `own`, `rent`"
        ));
    }

    #[test]
    fn line_numbers_with_crlf_bom_and_blank_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "\u{feff}age,housing,y\r\n\r\n30,own,bad\r\n\r\n\r\n31,own,\r\n";
        let err = load_csv(&write(dir.path(), "crlf.csv", text), &schema()).expect_err("label");
        assert!(
            err.to_string()
                .contains("crlf.csv:6: label column `y`: empty cell"),
            "{err}"
        );
        let text = "age,housing,y\n30,own,bad\n\n\n31,own\n";
        let err = load_csv(&write(dir.path(), "short.csv", text), &schema()).expect_err("short");
        assert!(
            err.to_string()
                .ends_with("short.csv:5: record has 2 fields, expected 3 (one per header column)"),
            "{err}"
        );
    }

    #[test]
    fn counts_lines_before_a_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "l.csv", "h\r\na\r\n\r\nc\rd\n\ne");
        // csv reports the end of the previous record; the count skips to the record.
        for (byte, line) in [
            (0, 1),
            (1, 2),
            (2, 2),
            (3, 2),
            (5, 4),
            (8, 4),
            (10, 5),
            (11, 7),
        ] {
            assert_eq!(count_lines(&path, byte).expect("read"), line, "byte {byte}");
        }
    }

    #[test]
    fn one_counter_answers_increasing_offsets_like_fresh_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "h\r\na\r\n\r\nc\rd\n\ne";
        let path = write(dir.path(), "l.csv", text);
        let mut counter = LineCounter::new(text.as_bytes());
        for byte in 0..=12 {
            assert_eq!(
                counter.line_at(byte).expect("read"),
                count_lines(&path, byte).expect("read"),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn undeclared_labels_name_file_line_column_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, value) in [("upper.csv", "BAD"), ("coded.csv", "0")] {
            let text = format!("age,housing,y\n30,own,bad\n31,own,good\n\n32,own,{value}\n");
            let err = load_csv(&write(dir.path(), name, &text), &schema()).expect_err("label");
            assert!(
                err.to_string().ends_with(&format!(
                    "{name}:5: label column `y`: value `{value}` is neither `bad` (positive) nor \
                     `good` (negative){}",
                    if value == "BAD" {
                        " (label values are case-sensitive)"
                    } else {
                        ""
                    }
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_semicolon_header_says_so_at_line_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "semi.csv", "age;housing;y\n30;own;bad\n");
        let err = load_csv(&path, &schema()).expect_err("separator");
        assert!(
            err.to_string().contains(
                "semi.csv:1: the header is a single column `age;housing;y`, which looks \
                 semicolon-separated; fedcredit reads comma-separated CSV. Convert it, e.g.: python3"
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_and_header_only_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_csv(&write(dir.path(), "e.csv", ""), &schema()).expect_err("empty");
        assert!(err.to_string().contains("e.csv:1: empty file"), "{err}");
        let err =
            load_csv(&write(dir.path(), "h.csv", "age,housing,y\n"), &schema()).expect_err("none");
        assert!(
            err.to_string()
                .contains("h.csv:1: the header is not followed by any data rows")
        );
    }
}
