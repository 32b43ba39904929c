//! A Parquet file whose rows stay on disk: checked once, row by row, when
//! it is opened, then read again batch by batch for every round.
//!
//! A participant whose matrix would not fit its memory budget (see
//! [`super::MemoryBudget`]) keeps only the file's footer; each round's
//! local terms are computed by decoding the file anew, encoding each batch
//! with the job's schema, transforming it (standardizing, clipping) and
//! adding it to the round's accumulator.
//!
//! # Pipeline
//!
//! The file is cut into pieces (a row group, or [`PIECE_ROWS`] of one).
//! One decoding thread per core takes every `threads`-th piece and sends
//! its batches of [`STREAM_BATCH_ROWS`] rows, encoded and transformed, on
//! a channel of its own that holds at most [`IN_FLIGHT`] batches; the
//! caller's thread takes the pieces back in file order and accumulates.
//! Memory is therefore a few batches per thread plus one decoded page per
//! column per thread, whatever the row count, and the rows reach the
//! accumulator in file order.
//!
//! # Same results as rows in memory
//!
//! The accumulator is handed whole blocks of
//! [`CHUNK_ROWS`](fedcredit_model::logistic::newton::CHUNK_ROWS) rows
//! counted from the file's first row (rows of a batch that straddle a
//! row-group end are gathered into one block), which is how
//! [`fedcredit_model::logistic::newton::NewtonAccumulator`] cuts a matrix
//! held in memory; so a round's vector is the in-memory one, bit for bit.
//!
//! # Errors
//!
//! Opening reads every row, so a null, NaN, unknown category or undeclared
//! label stops the participant before the first round, naming the file, the
//! 1-based data row and the column, exactly as [`super::parquet_file`]
//! does for a file it loads. A file that changes afterwards (its length or
//! modification time) is refused in the round that notices, and a bad row
//! met then is named the same way.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::SystemTime;

use fedcredit_model::logistic::newton::CHUNK_ROWS;
use fedcredit_model::{Encoder, ModelError, Schema};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use super::blocks::threads;
use super::parquet_file::{
    BatchOut, ParquetTable, Piece, PieceReader, RowProblem, open_for_schema, row_uses, table_error,
};
use crate::ParticipantError;

/// Rows decoded, encoded and sent at a time: whole accumulator blocks.
pub const STREAM_BATCH_ROWS: usize = 4 * CHUNK_ROWS;

/// At most this many rows per piece, so that one large row group is still
/// shared by the decoding threads.
pub const PIECE_ROWS: usize = 1 << 18;

/// Batches a decoding thread may have sent that the caller has not taken.
pub const IN_FLIGHT: usize = 2;

/// Why a pass over a streamed file stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The file could not be read, changed, or holds a row the schema refuses.
    #[error(transparent)]
    Read(#[from] ParticipantError),
    /// The round's computation refused a batch.
    #[error("{}: {source}", file.display())]
    Terms {
        /// The file.
        file: std::path::PathBuf,
        /// What the model code said.
        source: ModelError,
    },
}

/// A Parquet training or test file read anew for every round.
pub struct ParquetStream {
    table: ParquetTable,
    encoder: Encoder,
    /// Length and modification time when the rows were checked.
    stamp: (u64, Option<SystemTime>),
}

/// Shape and origin only: never data rows.
impl std::fmt::Debug for ParquetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetStream")
            .field("path", &self.table.path())
            .field("rows", &self.rows())
            .field("width", &self.width())
            .finish_non_exhaustive()
    }
}

/// One batch on its way from a decoding thread to the caller.
struct Batch {
    x: Vec<f64>,
    y: Vec<f64>,
    problems: Vec<Option<RowProblem>>,
    rows: usize,
}

impl ParquetStream {
    /// Opens `path` for `schema` and checks every row (one streaming pass,
    /// nothing kept), so that a bad row is reported now, not in a round.
    pub fn open(path: &Path, schema: &Schema) -> Result<Self, ParticipantError> {
        let (table, encoder) = open_for_schema(path, schema)?;
        let stream = Self {
            stamp: stamp(path)?,
            table,
            encoder,
        };
        match stream.for_each_batch(|_| Ok(()), |_, _| Ok(())) {
            Ok(()) => Ok(stream),
            Err(StreamError::Read(e)) => Err(e),
            Err(e @ StreamError::Terms { .. }) => Err(table_error(
                path,
                None,
                format!("internal: checking the rows computed nothing, yet: {e}"),
            )),
        }
    }

    /// Data rows in the file.
    pub fn rows(&self) -> usize {
        self.table.rows()
    }

    /// Encoded columns of a row.
    pub fn width(&self) -> usize {
        self.encoder.width()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.table.path()
    }

    /// Reads every row once, in file order: each batch is encoded and
    /// given to `prepare` (on a decoding thread, in place: standardize,
    /// clip), then to `consume` (on this thread) in whole blocks of
    /// `CHUNK_ROWS` rows counted from the first row, the last block
    /// possibly shorter. The first error (in file order) stops the pass.
    pub fn for_each_batch<P, C>(&self, prepare: P, mut consume: C) -> Result<(), StreamError>
    where
        P: Fn(&mut ArrayViewMut2<'_, f64>) -> Result<(), ModelError> + Sync,
        C: FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> Result<(), ModelError>,
    {
        let path = self.table.path();
        if stamp(path)? != self.stamp {
            return Err(table_error(
                path,
                None,
                "the file changed since its rows were checked; restart the participant to check \
                 it again"
                    .into(),
            )
            .into());
        }
        let pieces = self.table.pieces(PIECE_ROWS);
        let workers = threads().clamp(1, pieces.len().max(1));
        let uses = row_uses(&self.encoder);
        let pool: Mutex<Vec<Batch>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let width = self.width();
        let terms = |source| StreamError::Terms {
            file: path.to_owned(),
            source,
        };
        std::thread::scope(|scope| {
            let mut receivers: Vec<Receiver<Result<Batch, StreamError>>> = Vec::new();
            for w in 0..workers {
                let (tx, rx) = sync_channel(IN_FLIGHT);
                receivers.push(rx);
                let (pieces, uses, pool, stop, prepare) = (&pieces, &uses, &pool, &stop, &prepare);
                scope.spawn(move || {
                    let mine = pieces.iter().skip(w).step_by(workers);
                    if let Err(e) = self.decode(mine, uses, pool, stop, prepare, &tx) {
                        // The caller meets it at its place in file order.
                        let _ = tx.send(Err(e));
                    }
                });
            }
            let mut blocks = Blocks::new(width);
            let result = (|| {
                for (i, piece) in pieces.iter().enumerate() {
                    let mut left = piece.rows.len();
                    while left > 0 {
                        let batch = receivers[i % workers].recv().map_err(|_| {
                            table_error(path, None, "internal: a decoding thread stopped".into())
                        })??;
                        left = left.saturating_sub(batch.rows);
                        blocks.feed(&batch, &mut consume).map_err(terms)?;
                        if let Ok(mut pool) = pool.lock() {
                            pool.push(batch);
                        }
                    }
                }
                blocks.flush(&mut consume).map_err(terms)
            })();
            // Unblock and end the decoding threads (their sends now fail).
            stop.store(true, Ordering::Relaxed);
            drop(receivers);
            result
        })
    }

    /// A decoding thread: the batches of `pieces`, in order, onto `tx`.
    fn decode<'p, P>(
        &self,
        pieces: impl Iterator<Item = &'p Piece>,
        uses: &[(usize, super::parquet_file::Use<'_>)],
        pool: &Mutex<Vec<Batch>>,
        stop: &AtomicBool,
        prepare: &P,
        tx: &SyncSender<Result<Batch, StreamError>>,
    ) -> Result<(), StreamError>
    where
        P: Fn(&mut ArrayViewMut2<'_, f64>) -> Result<(), ModelError> + Sync,
    {
        let path = self.table.path();
        let width = self.width();
        let file = self.table.reader()?;
        for piece in pieces {
            let mut reader = PieceReader::new(&self.table, &file, piece, uses)?;
            let mut done = 0;
            while done < piece.rows.len() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let n = STREAM_BATCH_ROWS.min(piece.rows.len() - done);
                let mut b = pool
                    .lock()
                    .ok()
                    .and_then(|mut p| p.pop())
                    .unwrap_or_else(|| Batch {
                        x: Vec::new(),
                        y: Vec::new(),
                        problems: Vec::new(),
                        rows: 0,
                    });
                b.rows = n;
                b.x.resize(n * width, 0.0);
                b.y.resize(n, 0.0);
                b.problems.resize(n, None);
                let mut out = BatchOut {
                    x: &mut b.x[..n * width],
                    y: Some(&mut b.y[..n]),
                    texts: &mut [],
                    problems: &mut b.problems[..n],
                };
                reader.next_batch(n, &self.encoder, &mut out, path)?;
                if let Some((i, p)) = b.problems[..n]
                    .iter()
                    .enumerate()
                    .find_map(|(i, p)| p.as_ref().map(|p| (i, p)))
                {
                    let row = (piece.first_row + done + i + 1) as u64;
                    return Err(table_error(path, Some(row), p.message.clone()).into());
                }
                let mut view = ArrayViewMut2::from_shape((n, width), &mut b.x[..n * width])
                    .map_err(|e| table_error(path, None, format!("internal: batch shape: {e}")))?;
                prepare(&mut view).map_err(|source| StreamError::Terms {
                    file: path.to_owned(),
                    source,
                })?;
                if tx.send(Ok(b)).is_err() {
                    return Ok(());
                }
                done += n;
            }
        }
        Ok(())
    }
}

/// Regroups batches into whole blocks of `CHUNK_ROWS` rows counted from
/// the first row: a batch's aligned middle is passed on as it is, the rows
/// around a misaligned cut are copied into one block.
struct Blocks {
    width: usize,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Blocks {
    fn new(width: usize) -> Self {
        Self {
            width,
            x: Vec::new(),
            y: Vec::new(),
        }
    }

    fn feed<C>(&mut self, batch: &Batch, consume: &mut C) -> Result<(), ModelError>
    where
        C: FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> Result<(), ModelError>,
    {
        let (w, n) = (self.width, batch.rows);
        let (x, y) = (&batch.x[..n * w], &batch.y[..n]);
        let mut at = 0;
        if !self.y.is_empty() {
            let take = (CHUNK_ROWS - self.y.len()).min(n);
            self.x.extend_from_slice(&x[..take * w]);
            self.y.extend_from_slice(&y[..take]);
            at = take;
            if self.y.len() == CHUNK_ROWS {
                self.flush(consume)?;
            }
        }
        let whole = (n - at) / CHUNK_ROWS * CHUNK_ROWS;
        if whole > 0 {
            consume(
                view(&x[at * w..(at + whole) * w], whole, w)?,
                ArrayView1::from(&y[at..at + whole]),
            )?;
            at += whole;
        }
        self.x.extend_from_slice(&x[at * w..]);
        self.y.extend_from_slice(&y[at..]);
        Ok(())
    }

    /// Passes on the rows gathered so far (the last, short block).
    fn flush<C>(&mut self, consume: &mut C) -> Result<(), ModelError>
    where
        C: FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> Result<(), ModelError>,
    {
        if !self.y.is_empty() {
            consume(
                view(&self.x, self.y.len(), self.width)?,
                ArrayView1::from(&self.y[..]),
            )?;
            self.x.clear();
            self.y.clear();
        }
        Ok(())
    }
}

fn view(x: &[f64], rows: usize, width: usize) -> Result<ArrayView2<'_, f64>, ModelError> {
    ArrayView2::from_shape((rows, width), x)
        .map_err(|e| ModelError::InvalidSetting(format!("internal: block shape: {e}")))
}

/// A file's length and modification time, to notice it changing.
fn stamp(path: &Path) -> Result<(u64, Option<SystemTime>), ParticipantError> {
    let meta = std::fs::metadata(path).map_err(|source| ParticipantError::ReadInput {
        file: path.to_owned(),
        source,
    })?;
    Ok((meta.len(), meta.modified().ok()))
}
