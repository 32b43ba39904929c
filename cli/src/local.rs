//! `fedcredit local`: train on your own CSV files as if each were a
//! consortium member.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedcredit_model::job::ModelJobSpec;
use fedcredit_model::privacy::PrivacySetting;
use fedcredit_model::schema::{CellAt, SchemaInference};
use fedcredit_model::{LabelSpec, Schema};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::blocks::{self, PlainCsv};
use fedcredit_participant::data::parquet_file::{ParquetTable, is_parquet};
use fedcredit_participant::data::{self, Dataset, MemoryBudget, Rows, matrix_bytes};

use crate::credit::{self, Party};
use crate::progress::RoundProgress;
use crate::say;

/// The column names of a CSV or Parquet file, which must hold the `label`
/// column.
pub(crate) fn header_of(path: &Path, label: &str) -> Result<Vec<String>> {
    if !is_parquet(path) {
        return Ok(open_table(path, label)?.1);
    }
    let header = ParquetTable::open(path)?.header().to_vec();
    if !header.iter().any(|h| h == label) {
        let e = fedcredit_model::encoder::missing_column(&header, label, "the label");
        bail!("{}: {e}", path.display());
    }
    Ok(header)
}

/// Observes a Parquet file's rows: a column of numbers is numeric (its
/// values are not read; a NaN or null in it is refused when the file is
/// loaded), any other column's values are read as text. `pos` as for
/// [`observe_plain`].
fn observe_parquet(
    path: &Path,
    names: &[String],
    pos: &[usize],
    label: &str,
    inference: &mut SchemaInference,
) -> Result<()> {
    use fedcredit_participant::data::parquet_file::{BATCH_ROWS, PieceReader, Use};
    let table = ParquetTable::open(path)?;
    let mut uses = Vec::new();
    let mut slot = vec![None; pos.len()];
    let source = inference.row_source(path.display().to_string());
    let mut part = inference.fork();
    for (i, &c) in pos.iter().enumerate() {
        if table.is_numeric(c) && names[i] != label {
            part.forget_values(i);
        } else {
            slot[i] = Some(uses.len());
            uses.push((c, Use::Text(uses.len())));
        }
    }
    table.check(&uses)?;
    let file = table.reader()?;
    let mut texts = vec![Vec::new(); uses.len()];
    for piece in table.pieces(usize::MAX) {
        let mut reader = PieceReader::new(&table, &file, &piece, &uses)?;
        let mut left = piece.rows.len();
        while left > 0 {
            let n = left.min(BATCH_ROWS);
            reader.next_texts(n, &mut texts, path)?;
            let mut cells: Vec<&str> = Vec::with_capacity(pos.len());
            // One cell from each text column per row: indexing by row is the point.
            #[allow(clippy::needless_range_loop)]
            for row in 0..n {
                cells.clear();
                // A number's value does not matter: the column stays numeric.
                cells.extend(
                    slot.iter()
                        .map(|s| s.map_or("0", |k| texts[k][row].as_str())),
                );
                let line = (piece.first_row + piece.rows.len() - left + row + 1) as u64;
                part.observe_at(&cells, CellAt { source, line })
                    .with_context(|| {
                        format!("{}: row {line}: inferring the schema", path.display())
                    })?;
            }
            left -= n;
        }
    }
    inference
        .merge(part)
        .with_context(|| format!("{}: inferring the schema", path.display()))
}

/// Opens a CSV file and reads its header, which must hold the `label`
/// column; that is checked before any row is read, so that a semicolon- or
/// tab-separated file is named as such rather than failing on its first row.
fn open_table(path: &Path, label: &str) -> Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    if !header.iter().any(|h| h == label) {
        let e = fedcredit_model::encoder::missing_column(&header, label, "the label");
        bail!("{}:1: {e}", path.display());
    }
    Ok((reader, header))
}

/// Infers one schema from several files: a column of numbers in every
/// file is numeric, a column of text categorical (its categories the union
/// over all files), as is every column named in `categorical`. A NaN or
/// infinite cell, or a column of numbers with text in some cells, is
/// refused with its file and line. The files are streamed record by record
/// (never held in memory as strings).
///
/// Plain CSV files are also loaded on the way when every feature turns
/// out numeric: inference must read every cell anyway, so each file's
/// rows are encoded as they are read with the all-numeric schema they
/// would then have, and [`open_all`] takes them
/// instead of reading and parsing the files again. The matrices are the
/// ones [`Rows::open`] would give (see [`data::load_csv_visiting`]); a
/// file whose rows do not all encode, and every file once a column is
/// known not to be numeric, is left to [`Rows::open`] (which names any
/// problem as before).
pub fn infer_and_load(
    files: &[PathBuf],
    label: LabelSpec,
    categorical: &[String],
) -> Result<(Schema, Preloaded)> {
    let first_file = files.first().context("no data files given")?;
    let first = header_of(first_file, &label.column)?;
    // The schema if every feature is numeric.
    let mut numeric = categorical.is_empty().then(|| Schema {
        label: label.clone(),
        features: first
            .iter()
            .filter(|c| **c != label.column)
            .map(|c| fedcredit_model::Feature::Numeric { name: c.clone() })
            .collect(),
    });
    let mut preloaded: Preloaded = files.iter().map(|_| None).collect();
    let mut inference = SchemaInference::new(&first, label.clone())
        .with_context(|| format!("{}: inferring the schema", first_file.display()))?;
    for column in categorical {
        inference
            .declare_categorical(column)
            .with_context(|| format!("--categorical {column}: {}", first_file.display()))?;
    }
    let mut record = csv::StringRecord::new();
    let mut cells: Vec<String> = Vec::new();
    for (k, f) in files.iter().enumerate() {
        if numeric.is_some() && !inference.all_numeric() {
            // Not the all-numeric schema: free what was loaded for it.
            numeric = None;
            preloaded.iter_mut().for_each(|p| *p = None);
        }
        let h = header_of(f, &label.column)?;
        if h.len() != first.len() {
            bail!(
                "{}: has {} columns, {} has {}",
                f.display(),
                h.len(),
                first_file.display(),
                first.len()
            );
        }
        // Same columns in any order: read in the first file's order.
        let mut pos = Vec::with_capacity(first.len());
        for c in &first {
            pos.push(h.iter().position(|x| x == c).with_context(|| {
                format!(
                    "{}: column `{c}` is missing (it is in {})",
                    f.display(),
                    first_file.display()
                )
            })?);
        }
        if is_parquet(f) {
            observe_parquet(f, &first, &pos, &label.column, &mut inference)?;
            continue;
        }
        let source = inference.csv_source(f.display().to_string());
        if let Some(loaded) = observe_plain(f, &pos, source, &mut inference, numeric.as_ref()) {
            preloaded[k] = loaded;
            continue;
        }
        let in_order = pos.iter().enumerate().all(|(i, &p)| i == p);
        let (mut reader, _) = open_table(f, &label.column)?;
        while reader
            .read_record(&mut record)
            .with_context(|| format!("{}: malformed CSV", f.display()))?
        {
            let line = record.position().map_or(0, csv::Position::line);
            let at = CellAt { source, line };
            let observed = if in_order {
                let row: Vec<&str> = record.iter().collect();
                inference.observe_at(&row, at)
            } else {
                cells.clear();
                cells.extend(
                    pos.iter()
                        .map(|&i| record.get(i).unwrap_or_default().to_owned()),
                );
                inference.observe_at(&cells, at)
            };
            observed.with_context(|| format!("{}:{line}: inferring the schema", f.display()))?;
        }
    }
    let schema = inference.finish().context("inferring the schema")?;
    if numeric.as_ref() != Some(&schema) {
        preloaded.iter_mut().for_each(|p| *p = None);
    }
    Ok((schema, preloaded))
}

/// The rows of some files, already loaded (one entry per file, in order;
/// `None` for a file still to be read): see [`infer_and_load`].
pub type Preloaded = Vec<Option<Dataset>>;

/// Observes every row of `path`, a plain CSV file (see
/// [`fedcredit_participant::data::blocks`]), on all cores; `pos[i]` is the
/// position in this file of the first file's column `i`; `source` its
/// registered name. `None`, with `inference` unchanged, if the file is
/// not plain or a row does not fit: the `csv` reader then reads it and
/// names the problem. With `preload`, the rows are also encoded with that
/// schema as they are read (see [`data::load_csv_visiting`]), and the
/// dataset is returned if they all encode.
fn observe_plain(
    path: &Path,
    pos: &[usize],
    source: usize,
    inference: &mut SchemaInference,
    preload: Option<&Schema>,
) -> Option<Option<Dataset>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    let in_order = pos.iter().enumerate().all(|(i, &p)| i == p);
    // Columns with more distinct values than a category list may hold, as
    // soon as any block finds them: later blocks need not collect theirs.
    let overflowed: Vec<AtomicBool> = (0..pos.len()).map(|_| AtomicBool::new(false)).collect();
    for c in inference.overflowed() {
        overflowed[c].store(true, Ordering::Relaxed);
    }
    let seen = Mutex::new(inference.fork());
    let base = &*inference;
    // `numbers`: the block's rows all encoded with the all-numeric schema,
    // so every feature cell is a finite number, as inference would find.
    let observe = |block: &blocks::Block, text: &str, numbers: bool| -> bool {
        let mut part = base.fork();
        for (c, flag) in overflowed.iter().enumerate() {
            if flag.load(Ordering::Relaxed) {
                part.forget_values(c);
            }
        }
        let (mut cells, mut ordered) = (Vec::new(), Vec::new());
        for (line, record) in block.records(text) {
            blocks::split_cells(record, &mut cells);
            if cells.len() != pos.len() {
                return false;
            }
            let row: &[&str] = if in_order {
                &cells
            } else {
                ordered.clear();
                ordered.extend(pos.iter().map(|&i| cells[i]));
                &ordered
            };
            let at = CellAt { source, line };
            let observed = if numbers {
                part.observe_numbers_at(row, at)
            } else {
                part.observe_at(row, at)
            };
            if observed.is_err() {
                return false;
            }
        }
        let Ok(mut seen) = seen.lock() else {
            return false;
        };
        if seen.merge(part).is_err() {
            return false;
        }
        for c in seen.overflowed() {
            overflowed[c].store(true, Ordering::Relaxed);
        }
        true
    };
    let loaded = match preload {
        Some(schema) => data::load_csv_visiting(path, schema, &observe)?,
        None => {
            let plain = PlainCsv::scan(path).ok()??;
            let jobs = vec![(); plain.blocks().len()];
            plain
                .par_blocks(
                    plain.blocks(),
                    jobs,
                    blocks::threads(),
                    |block, text, ()| observe(block, text, false),
                )
                .ok()?;
            None
        }
    };
    let seen = seen.into_inner().ok()?;
    inference.merge(seen).ok()?;
    Some(loaded)
}

/// Opens the training files and the held-out file with `schema`, every
/// file on its own thread (parsing is most of the time before the first
/// round, and the files are independent). The files share `budget`, taken
/// in order, training files first: a Parquet file whose matrix fits what
/// is left is loaded, any other Parquet file streamed; CSV files are always
/// loaded (and not counted, since their row count is known only then).
///
/// Files that [`infer_and_load`] loaded (`preloaded`, in the same order:
/// training files, then the held-out one) are taken as they are.
pub fn open_all(
    train: &[PathBuf],
    test: Option<&PathBuf>,
    schema: &Schema,
    budget: MemoryBudget,
    mut preloaded: Preloaded,
) -> Result<(Vec<Rows>, Option<Rows>)> {
    preloaded.resize_with(train.len() + usize::from(test.is_some()), || None);
    let mut left = budget;
    let mut budgets = Vec::with_capacity(train.len() + 1);
    for path in train.iter().chain(test) {
        budgets.push(left);
        if is_parquet(path) {
            let need = matrix_bytes(ParquetTable::open(path)?.rows(), schema.encoded_width());
            if need <= left.bytes() {
                left = left.minus(need);
            }
        }
    }
    let (train, test) = std::thread::scope(|scope| {
        let mut handles: Vec<_> = train
            .iter()
            .chain(test)
            .zip(&budgets)
            .zip(preloaded)
            .map(|((path, &budget), data)| {
                scope.spawn(move || match data {
                    Some(data) => Ok(Rows::loaded(data, budget)),
                    None => Rows::open(path, schema, budget),
                })
            })
            .collect();
        let test = test.and_then(|_| handles.pop());
        let join = |h: std::thread::ScopedJoinHandle<'_, _>| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (
            handles.into_iter().map(join).collect::<Vec<_>>(),
            test.map(join),
        )
    });
    let test = test.transpose()?;
    let train = train.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((train, test))
}

/// Per encoded column, the smallest and largest value over all `files`
/// (streamed files are read once for it).
pub fn column_ranges(files: &[&Rows], width: usize) -> Result<Vec<[f64; 2]>> {
    let mut ranges = vec![[f64::INFINITY, f64::NEG_INFINITY]; width];
    let mut observe = |x: ndarray::ArrayView2<'_, f64>| {
        for row in x.rows() {
            for (r, &v) in ranges.iter_mut().zip(row) {
                r[0] = r[0].min(v);
                r[1] = r[1].max(v);
            }
        }
    };
    for rows in files {
        match rows {
            Rows::InMemory(d) => observe(d.x.view()),
            Rows::Streamed(s) => s.for_each_batch(
                |_| Ok(()),
                |x, _| {
                    observe(x);
                    Ok(())
                },
            )?,
        }
    }
    Ok(ranges)
}

/// Says which files are streamed rather than loaded.
pub(crate) fn say_streamed<'a>(rows: impl Iterator<Item = &'a Rows>, max_memory: MemoryBudget) {
    for rows in rows {
        if let Rows::Streamed(s) = rows {
            say(&format!(
                "  {}: {} rows streamed from the file every round (its matrix exceeds what is \
                 left of --max-memory-mb {})",
                s.path().display(),
                s.rows(),
                max_memory.bytes() / 1_000_000
            ));
        }
    }
}

/// Options of `fedcredit local`.
#[derive(Debug)]
pub struct LocalArgs {
    pub data: Vec<PathBuf>,
    /// The label column and its positive and negative values.
    pub label: LabelSpec,
    pub test: Option<PathBuf>,
    pub l2: f64,
    pub out: PathBuf,
    /// (ε, δ) of a private job; `None` runs exact.
    pub privacy: Option<(f64, f64)>,
    /// Memory for the rows of all files (see [`open_all`]).
    pub max_memory: MemoryBudget,
    /// Columns declared categorical (`--categorical`), whatever their cells.
    pub categorical: Vec<String>,
}

/// Runs `fedcredit local`. Every label value must be declared, and the job
/// stops after its statistics round if the pooled rows lack either class.
pub async fn run(args: LocalArgs) -> Result<()> {
    let label = args.label.clone();
    let mut files = args.data.clone();
    if let Some(t) = &args.test {
        files.push(t.clone());
    }
    let (schema, preloaded) = infer_and_load(&files, label, &args.categorical)?;
    let (train, test) = open_all(
        &args.data,
        args.test.as_ref(),
        &schema,
        args.max_memory,
        preloaded,
    )?;
    say_streamed(train.iter().chain(&test), args.max_memory);
    // The held-out file is evaluated by the first participant.
    let mut test = test;
    let privacy = match args.privacy {
        None => PrivacySetting::None,
        Some((epsilon, delta)) => {
            let files: Vec<&Rows> = train.iter().chain(&test).collect();
            let ranges = column_ranges(&files, schema.encoded_width())?;
            let spec = credit::privacy_from_ranges(&schema, &ranges, epsilon, delta);
            say(&format!(
                "  private job: ε = {epsilon}, δ = {delta}; feature bounds taken from these files \
                 ({} numeric features). A real consortium fixes them in the job spec \
                 ([job.privacy.bounds]) from public knowledge, never from the rows.",
                spec.bounds.len()
            ));
            PrivacySetting::Private(Box::new(spec))
        }
    };
    let spec = ModelJobSpec {
        schema: schema.clone(),
        l2: args.l2,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: Default::default(),
        fedavg: Default::default(),
        bins: fedcredit_model::metrics::DEFAULT_BINS,
        privacy: Some(privacy),
        scorecard: None,
    };
    let mut parties = Vec::with_capacity(train.len());
    for (i, train) in train.into_iter().enumerate() {
        parties.push(Party {
            id: format!("party-{}", i + 1),
            data: CreditData::from_rows(train, test.take()),
        });
    }
    say(&format!(
        "fedcredit local: {} data sets as {} consortium members, {} encoded features, l2 = {}",
        args.data.len(),
        args.data.len(),
        schema.encoded_width(),
        args.l2
    ));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let log_path = args.out.join("rounds.log");
    let progress = RoundProgress::start(spec.planned_rounds());
    let outcome = credit::run("local", spec, parties, &log_path, progress.reporter()).await?;
    drop(progress);
    credit::write_outputs(&args.out, &outcome)?;
    let m = &outcome.model;
    say(&format!(
        "  model: {} optimization rounds, converged: {}, intercept {:.6}",
        m.rounds, m.converged, m.original.intercept
    ));
    say(&format!("  {}", credit::describe_privacy(m)));
    if let Some(p) = m.metrics {
        say(&format!(
            "  held-out ({} rows): AUC {}  KS {}  log-loss {:.4}  default rate {:.3}",
            p.n,
            credit::fmt_opt(p.auc),
            credit::fmt_opt(p.ks),
            p.logloss,
            p.default_rate
        ));
    }
    if let Some(c) = &m.calibration {
        say(&format!("  {}", credit::describe_calibration(c)));
    }
    say(&format!(
        "  wrote {} and {}; round log {}",
        args.out.join("model.json").display(),
        args.out.join("metrics.json").display(),
        log_path.display()
    ));
    Ok(())
}
