//! `fedcredit score`: a model.json applied to a CSV or Parquet file of
//! applicants, one probability per row, in input order, written as CSV
//! (a file or standard output) or as Parquet (an `--out` ending in
//! `.parquet` or `.pq`).
//!
//! By default the first row that does not fit the model stops the run with
//! its file, line (CSV) or row (Parquet), column and value, and no output
//! file is left behind. With `--on-error skip` every such row goes to an
//! error file (`line,column,value,reason`, or `row,...` for Parquet input)
//! and the others are scored; the counts go to stderr. Output files are
//! written beside their destination and renamed into place only when the
//! run succeeds, so a file that exists is whole.
//!
//! Rows are scored on every core: a plain CSV file in blocks of lines, a
//! Parquet file in pieces of row groups, a window of them at a time, and
//! written in order. A CSV file with quoted cells is read by the `csv`
//! crate, record by record.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fedcredit_model::Encoder;
use fedcredit_model::job::{FittedModel, Linear};
use fedcredit_model::scorecard::{Assessment, Scorecard};
use fedcredit_participant::data::LineCounter;
use fedcredit_participant::data::blocks::{self, PlainCsv};
use fedcredit_participant::data::parquet_file::{
    BATCH_ROWS, ParquetTable, PieceReader, RowProblem, ScoreOut, Use, is_parquet,
};

/// Options of `fedcredit score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Applicants: a CSV or Parquet (`.parquet`, `.pq`) file with the model's feature columns
    /// (the label column is not needed).
    #[arg(long)]
    data: PathBuf,
    /// Output (`row,probability`, after the id column if one is given): Parquet if the name ends
    /// in `.parquet` or `.pq`, else CSV; default: CSV on standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Copy this column of the data to the output, as its first column (e.g. an applicant id).
    #[arg(long, value_name = "COL")]
    id_column: Option<String>,
    /// What a row that does not fit the model does: `fail` stops the run at it;
    /// `skip` writes it to the error file and scores the rest.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_error: OnError,
    /// With `--on-error skip`: where the skipped rows go (`line,column,value,reason`);
    /// default: the output file with the extension `.errors.csv` (`scores.csv` → `scores.errors.csv`).
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
}

/// What `score` does with a row that does not fit the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnError {
    /// Stop at the first bad row, naming it (the default).
    Fail,
    /// Write bad rows to the error file and score the rest.
    Skip,
}

/// Runs `fedcredit score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let errors_path = errors_path(&args)?;
    let text = std::fs::read_to_string(&args.model)
        .with_context(|| format!("{}: cannot read", args.model.display()))?;
    let model: FittedModel = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a fedcredit model file", args.model.display()))?;
    let data = &args.data;
    let input = Input::open(data)?;
    let header = input.header();
    let card = model.scorecard.as_ref();
    // A scorecard reads the raw features it binned; its model's own schema
    // holds the WOE features it was fitted on.
    let schema = card.map_or(&model.schema, |c| &c.schema);
    let encoder = Encoder::for_scoring(schema, header).with_context(|| {
        format!(
            "{}{} the header does not fit the model's schema",
            data.display(),
            input.at_header()
        )
    })?;
    if card.is_some()
        && (matches!(input, Input::Parquet(_)) || args.out.as_deref().is_some_and(is_parquet))
    {
        bail!(
            "{}: a scorecard model scores CSV files to CSV; Parquet input or output is not \
             supported for scorecards yet",
            args.model.display()
        );
    }
    if card.is_none() && encoder.width() != model.features.len() {
        bail!(
            "{}: the model's schema encodes {} columns but it has {} coefficients",
            args.model.display(),
            encoder.width(),
            model.features.len()
        );
    }
    if let Some(name) = &args.id_column
        && let Some(taken) = OUTPUT_COLUMNS.iter().find(|c| **c == name.as_str())
    {
        bail!(
            "--id-column `{name}`: the output has its own `{taken}` column, and two columns of \
             one name would be ambiguous (its columns: the id, {})",
            OUTPUT_COLUMNS.join(", ")
        );
    }
    let id = match &args.id_column {
        Some(name) => Some((
            name.as_str(),
            id_position(header, name, data, input.at_header())?,
        )),
        None => None,
    };
    let format = match &args.out {
        Some(path) if is_parquet(path) => Format::Parquet,
        _ => Format::Csv,
    };
    let mut out = Output::create(
        args.out.as_deref(),
        format,
        id.map(|(name, _)| name),
        card.is_some(),
    )?;
    let mut errors = match &errors_path {
        Some(path) => {
            let mut e = Staged::create(path)?;
            let place = if matches!(input, Input::Parquet(_)) {
                "row"
            } else {
                "line"
            };
            e.write_all(&csv_line(&[place, "column", "value", "reason"])?)?;
            Some(e)
        }
        None => None,
    };

    let job = Job {
        model: &model,
        scorecard: card,
        encoder: &encoder,
        id: id.map(|(_, j)| j),
        format,
    };
    let (mut scored, mut skipped) = (0u64, 0u64);
    let mut emit = |mut batch: Scored| -> Result<()> {
        scored += batch.probs.len() as u64;
        let csv = batch.csv_bytes()?;
        out.write(csv, batch.rows, batch.ids, batch.probs)?;
        for (place, problem) in batch.bad {
            let Some(errors) = errors.as_mut() else {
                bail!("{}{}: {}", data.display(), input.at(place), problem.message);
            };
            errors.write_all(&csv_line(&[
                place.to_string().as_str(),
                &problem.column,
                &problem.value,
                &problem.message,
            ])?)?;
            skipped += 1;
        }
        Ok(())
    };
    match &input {
        Input::Parquet(table) => score_parquet(table, &job, &mut emit)?,
        Input::Csv(_) => match PlainCsv::scan(data)
            .with_context(|| format!("{}: cannot read", data.display()))?
        {
            Some(plain) => score_plain(&plain, data, &job, &mut emit)?,
            None => score_csv(data, &job, &mut emit)?,
        },
    }

    let skipped_note = match (&errors_path, errors) {
        (Some(path), Some(e)) => {
            e.commit()?;
            format!(" (see {})", path.display())
        }
        _ => String::new(),
    };
    if scored == 0 && skipped > 0 {
        // The staged output is removed when dropped: no file of zero scores.
        bail!(
            "{}: no row could be scored: all {skipped} rows have errors{skipped_note}",
            data.display()
        );
    }
    out.finish()?;
    if errors_path.is_some() {
        eprintln!("scored {scored} rows, skipped {skipped}{skipped_note}");
    } else {
        eprintln!("scored {scored} rows");
    }
    Ok(())
}

/// The applicants' file.
enum Input {
    /// A CSV file and its header (names trimmed).
    Csv(Vec<String>),
    /// A Parquet file's footer.
    Parquet(ParquetTable),
}

impl Input {
    fn open(data: &Path) -> Result<Self> {
        if is_parquet(data) {
            return Ok(Self::Parquet(ParquetTable::open(data)?));
        }
        let file = File::open(data).with_context(|| format!("{}: cannot open", data.display()))?;
        let header = csv_reader(file)
            .headers()
            .with_context(|| format!("{}:1: cannot read the header", data.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        Ok(Self::Csv(header))
    }

    fn header(&self) -> &[String] {
        match self {
            Self::Csv(h) => h,
            Self::Parquet(t) => t.header(),
        }
    }

    /// Where the header is, after the file name.
    fn at_header(&self) -> &'static str {
        match self {
            Self::Csv(_) => ":1:",
            Self::Parquet(_) => ":",
        }
    }

    /// A row's place after the file name: its line in a CSV file, its row in a Parquet one.
    fn at(&self, place: u64) -> String {
        match self {
            Self::Csv(_) => format!(":{place}"),
            Self::Parquet(_) => format!(": row {place}"),
        }
    }
}

/// As the participants read their rows: header names trimmed (cells are
/// trimmed by the encoder); a short or long row is a bad row, not a CSV error.
fn csv_reader(file: File) -> csv::Reader<File> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .flexible(true)
        .from_reader(file)
}

/// The output's format: Parquet for an `--out` ending in `.parquet` or `.pq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

/// What scoring a run of rows needs.
struct Job<'a> {
    model: &'a FittedModel,
    /// The model's scorecard: points and reason codes go with each probability.
    scorecard: Option<&'a Scorecard>,
    encoder: &'a Encoder,
    /// The `--id-column`'s position.
    id: Option<usize>,
    format: Format,
}

/// A run of rows, scored: the output records (formatted CSV lines, or
/// the columns of a Parquet output) and the rows that did not fit.
struct Scored {
    csv: csv::Writer<Vec<u8>>,
    rows: Vec<i64>,
    ids: Vec<String>,
    probs: Vec<f64>,
    /// Line (CSV) or row (Parquet) of each bad row, and what is wrong.
    bad: Vec<(u64, RowProblem)>,
    /// Formatting buffers for a row's number and probability.
    text: (String, String),
}

impl Scored {
    fn new() -> Self {
        Self {
            csv: Self::writer(),
            rows: Vec::new(),
            ids: Vec::new(),
            probs: Vec::new(),
            bad: Vec::new(),
            text: (String::new(), String::new()),
        }
    }

    /// For about `rows` rows: the output buffers are allocated once.
    fn with_capacity(job: &Job<'_>, rows: usize) -> Self {
        let mut s = Self::new();
        match job.format {
            // `row,probability` is at most about 45 bytes, more with an id.
            Format::Csv => s.csv = Self::writer_for(rows * 48),
            Format::Parquet => {
                s.rows.reserve(rows);
                if job.id.is_some() {
                    s.ids.reserve(rows);
                }
            }
        }
        s.probs.reserve(rows);
        s
    }

    fn writer_for(bytes: usize) -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .buffer_capacity(1 << 12)
            .from_writer(Vec::with_capacity(bytes))
    }

    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .buffer_capacity(1 << 12)
            .from_writer(Vec::new())
    }

    /// The formatted CSV records.
    fn csv_bytes(&mut self) -> Result<Vec<u8>> {
        std::mem::replace(&mut self.csv, Self::writer())
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}", e.error()))
    }

    /// Adds a scored row.
    fn push(&mut self, job: &Job<'_>, row: u64, id: Option<&str>, scored: Scoring) -> Result<()> {
        use std::fmt::Write as _;
        let p = scored.probability;
        match job.format {
            Format::Csv => {
                let (r, q) = &mut self.text;
                r.clear();
                q.clear();
                write!(r, "{row}")?;
                write!(q, "{p}")?;
                if let (Some(card), Some(a)) = (job.scorecard, scored.card) {
                    let mut record = Vec::with_capacity(7);
                    if job.id.is_some() {
                        record.push(id.unwrap_or("").to_owned());
                    }
                    record.extend([r.clone(), q.clone(), a.points.to_string()]);
                    for k in 0..3 {
                        let reason = a
                            .reasons
                            .get(k)
                            .map(|&j| card.characteristics[j].name.as_str());
                        record.push(reason.unwrap_or("").to_owned());
                    }
                    self.csv.write_record(&record)?;
                } else if job.id.is_some() {
                    self.csv
                        .write_record([id.unwrap_or(""), r.as_str(), q.as_str()])?;
                } else {
                    self.csv.write_record([r.as_str(), q.as_str()])?;
                }
            }
            Format::Parquet => {
                self.rows.push(i64::try_from(row)?);
                if job.id.is_some() {
                    self.ids.push(id.unwrap_or("").to_owned());
                }
            }
        }
        self.probs.push(p);
        Ok(())
    }
}

/// A row's probability, with its points and reasons under a scorecard.
struct Scoring {
    probability: f64,
    card: Option<Assessment>,
}

impl Job<'_> {
    /// Scores an encoded row: the model's probability, or the scorecard's
    /// probability, points and reasons (a value in no bin is the row's error).
    fn score(&self, row: &[f64]) -> Result<Scoring, fedcredit_model::ModelError> {
        match self.scorecard {
            None => Ok(Scoring {
                probability: self.model.probability(row)?,
                card: None,
            }),
            Some(card) => {
                let a = card.assess(row)?;
                Ok(Scoring {
                    probability: a.probability,
                    card: Some(a),
                })
            }
        }
    }
}

/// One CSV record, quoted where needed, with its line break.
fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))
}

/// A plain CSV file (see `PlainCsv`), its blocks scored on every core a
/// window at a time and emitted in file order.
fn score_plain(
    plain: &PlainCsv,
    data: &Path,
    job: &Job<'_>,
    emit: &mut dyn FnMut(Scored) -> Result<()>,
) -> Result<()> {
    let threads = blocks::threads();
    for window in plain.blocks().chunks(threads * 4) {
        let mut slots: Vec<Option<Result<Scored>>> = window.iter().map(|_| None).collect();
        let jobs: Vec<&mut Option<Result<Scored>>> = slots.iter_mut().collect();
        plain
            .par_blocks(window, jobs, threads, |block, text, slot| {
                *slot = Some(score_block(block, text, job));
                true
            })
            .map_err(|e| match e {
                blocks::Stopped::Io(e) => {
                    anyhow::Error::new(e).context(format!("{}: cannot read", data.display()))
                }
                _ => anyhow::anyhow!(
                    "{}: the file changed while it was being read; score it again",
                    data.display()
                ),
            })?;
        for slot in slots {
            emit(slot.context("internal: a block was not scored")??)?;
        }
    }
    Ok(())
}

fn score_block(block: &blocks::Block, text: &str, job: &Job<'_>) -> Result<Scored> {
    let mut out = Scored::new();
    let mut row = vec![0.0; job.encoder.width()];
    let mut cells: Vec<&str> = Vec::new();
    for (k, (line, record)) in block.records(text).enumerate() {
        blocks::split_cells(record, &mut cells);
        match job
            .encoder
            .encode_features_into(&cells, &mut row)
            .and_then(|()| job.score(&row))
        {
            Ok(scored) => {
                let id = job.id.and_then(|j| cells.get(j).copied());
                out.push(job, (block.first_row + k + 1) as u64, id, scored)?;
            }
            Err(e) => out.bad.push((line, RowProblem::from(e))),
        }
    }
    Ok(out)
}

/// Any CSV file, record by record with the `csv` crate (quoted cells may
/// span lines; invalid UTF-8 shows as U+FFFD in a bad row's value).
fn score_csv(data: &Path, job: &Job<'_>, emit: &mut dyn FnMut(Scored) -> Result<()>) -> Result<()> {
    let open = || File::open(data).with_context(|| format!("{}: cannot open", data.display()));
    let mut reader = csv_reader(open()?);
    reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the header", data.display()))?;
    let mut lines = LineCounter::new(open()?);
    let mut record = csv::ByteRecord::new();
    let mut row = vec![0.0; job.encoder.width()];
    let mut index = 0u64;
    let mut batch = Scored::new();
    while reader
        .read_byte_record(&mut record)
        .with_context(|| format!("{}: cannot read", data.display()))?
    {
        index += 1;
        let cells: Vec<std::borrow::Cow<'_, str>> =
            record.iter().map(String::from_utf8_lossy).collect();
        match job
            .encoder
            .encode_features_into(&cells, &mut row)
            .and_then(|()| job.score(&row))
        {
            Ok(scored) => {
                let id = job.id.and_then(|j| cells.get(j)).map(AsRef::as_ref);
                batch.push(job, index, id, scored)?;
            }
            Err(e) => {
                let line = match record.position() {
                    Some(pos) => lines
                        .line_at(pos.byte())
                        .with_context(|| format!("{}: cannot read", data.display()))?,
                    None => 0,
                };
                batch.bad.push((line, RowProblem::from(e)));
            }
        }
        if batch.probs.len() + batch.bad.len() >= BATCH_ROWS {
            emit(std::mem::replace(&mut batch, Scored::new()))?;
        }
    }
    emit(batch)
}

/// A Parquet file, its pieces decoded and scored on every core a window at
/// a time and emitted in file order.
fn score_parquet(
    table: &ParquetTable,
    job: &Job<'_>,
    emit: &mut dyn FnMut(Scored) -> Result<()>,
) -> Result<()> {
    let mut uses: Vec<(usize, Use<'_>)> = job
        .encoder
        .feature_columns()
        .map(|f| (f.column, Use::Feature(f)))
        .collect();
    uses.extend(job.id.map(|j| (j, Use::Text(0))));
    table.check(&uses)?;
    let linear = job.model.linear()?;
    let threads = blocks::threads();
    let pieces = table.pieces(16 * BATCH_ROWS);
    for window in pieces.chunks(threads * 2) {
        let mut slots: Vec<Option<Scored>> = window.iter().map(|_| None).collect();
        let jobs: Vec<_> = window.iter().zip(slots.iter_mut()).collect();
        blocks::par_jobs(
            jobs,
            threads,
            || Ok::<_, anyhow::Error>(table.reader()?),
            |file, (piece, slot)| {
                let mut reader = PieceReader::new(table, file, piece, &uses)?;
                let mut scored = Scored::with_capacity(job, piece.rows.len());
                let mut z = vec![0.0; BATCH_ROWS];
                let mut texts = vec![vec![String::new(); BATCH_ROWS]];
                let mut problems = vec![None; BATCH_ROWS];
                let mut done = 0;
                while done < piece.rows.len() {
                    let n = (piece.rows.len() - done).min(BATCH_ROWS);
                    let mut out = ScoreOut {
                        z: &mut z,
                        texts: &mut texts,
                        problems: &mut problems,
                    };
                    reader.next_scores(n, job.encoder, &linear, &mut out, table.path())?;
                    Linear::probabilities(&mut z[..n]);
                    for i in 0..n {
                        let row = (piece.first_row + done + i + 1) as u64;
                        match problems[i].take() {
                            Some(p) => scored.bad.push((row, p)),
                            None => {
                                let id = job.id.map(|_| texts[0][i].as_str());
                                let p = Scoring {
                                    probability: z[i],
                                    card: None,
                                };
                                scored.push(job, row, id, p)?;
                            }
                        }
                    }
                    done += n;
                }
                *slot = Some(scored);
                Ok(())
            },
        )?;
        for slot in slots {
            emit(slot.context("internal: a piece was not scored")?)?;
        }
    }
    Ok(())
}

/// Where skipped rows go: only with `--on-error skip`, never onto the data or the output.
fn errors_path(args: &ScoreArgs) -> Result<Option<PathBuf>> {
    let path = match (args.on_error, &args.errors, &args.out) {
        (OnError::Fail, None, _) => return Ok(None),
        (OnError::Fail, Some(_), _) => {
            bail!("--errors names the file of skipped rows; it needs --on-error skip")
        }
        (OnError::Skip, Some(e), _) => e.clone(),
        (OnError::Skip, None, Some(out)) => out.with_extension("errors.csv"),
        (OnError::Skip, None, None) => bail!(
            "--on-error skip writes the skipped rows to a file: give --errors FILE (or --out FILE, \
             and they go to FILE with the extension .errors.csv)"
        ),
    };
    if path == args.data || args.out.as_ref() == Some(&path) {
        bail!(
            "--errors {}: the error file must differ from --data and --out",
            path.display()
        );
    }
    Ok(Some(path))
}

/// The columns `score` writes after the id column (the last four for a
/// scorecard only).
const OUTPUT_COLUMNS: [&str; 6] = [
    "row",
    "probability",
    "points",
    "reason_1",
    "reason_2",
    "reason_3",
];

/// The position of the `--id-column` in the header, which must hold it exactly once.
fn id_position(header: &[String], name: &str, data: &Path, at: &str) -> Result<usize> {
    let mut hits = header.iter().enumerate().filter(|(_, h)| *h == name);
    match (hits.next(), hits.next()) {
        (Some((j, _)), None) => Ok(j),
        (Some(_), Some(_)) => bail!(
            "{}{at} --id-column `{name}` appears more than once in the header",
            data.display()
        ),
        (None, _) => {
            let shown: Vec<String> = header.iter().take(12).map(|h| format!("`{h}`")).collect();
            let more = if header.len() > 12 { ", …" } else { "" };
            bail!(
                "{}{at} --id-column `{name}` is not in the header (it has {}{more})",
                data.display(),
                shown.join(", ")
            )
        }
    }
}

/// Where the scores go: CSV (a file or standard output), or a Parquet
/// file written when the run succeeds.
enum Output<'a> {
    Csv(Sink<'a>),
    Parquet {
        file: Staged,
        id: Option<String>,
        rows: Vec<i64>,
        ids: Vec<String>,
        probs: Vec<f64>,
    },
}

enum Sink<'a> {
    File(Staged),
    Stdout(std::io::BufWriter<std::io::StdoutLock<'a>>),
}

impl Output<'_> {
    fn create(
        path: Option<&Path>,
        format: Format,
        id: Option<&str>,
        scorecard: bool,
    ) -> Result<Self> {
        if format == Format::Parquet {
            let path = path.context("internal: Parquet output needs a file")?;
            return Ok(Output::Parquet {
                file: Staged::create(path)?,
                id: id.map(str::to_owned),
                rows: Vec::new(),
                ids: Vec::new(),
                probs: Vec::new(),
            });
        }
        let mut sink = match path {
            Some(path) => Sink::File(Staged::create(path)?),
            None => Sink::Stdout(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout().lock(),
            )),
        };
        let mut titles = Vec::with_capacity(7);
        titles.extend(id);
        let ours = if scorecard {
            &OUTPUT_COLUMNS[..]
        } else {
            &OUTPUT_COLUMNS[..2]
        };
        titles.extend(ours);
        sink.write_all(&csv_line(&titles)?)?;
        Ok(Output::Csv(sink))
    }

    fn write(&mut self, csv: Vec<u8>, r: Vec<i64>, i: Vec<String>, p: Vec<f64>) -> Result<()> {
        match self {
            Output::Csv(sink) => sink.write_all(&csv),
            Output::Parquet {
                rows, ids, probs, ..
            } => {
                rows.extend(r);
                ids.extend(i);
                probs.extend(p);
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Csv(Sink::File(s)) => s.commit(),
            Output::Csv(Sink::Stdout(mut w)) => Ok(w.flush()?),
            Output::Parquet {
                mut file,
                id,
                rows,
                ids,
                probs,
            } => {
                let w = file
                    .file
                    .take()
                    .context("internal: output already written")?;
                let w = write_parquet(w, id.as_deref(), &ids, &rows, &probs)
                    .with_context(|| format!("{}: cannot write", file.tmp.display()))?;
                file.file = Some(w);
                file.commit()
            }
        }
    }
}

impl Sink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::File(s) => s.write_all(bytes),
            Sink::Stdout(w) => Ok(w.write_all(bytes)?),
        }
    }
}

/// Writes the scores as a Parquet file (snappy): the id column (text)
/// if given, `row` (int64) and `probability` (double).
fn write_parquet(
    w: BufWriter<File>,
    id: Option<&str>,
    ids: &[String],
    rows: &[i64],
    probs: &[f64],
) -> Result<BufWriter<File>> {
    use parquet::basic::{Compression, Encoding, LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::ColumnPath;
    use parquet::schema::types::Type;
    use std::sync::Arc;
    let column = |name: &str, physical, logical| {
        Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(logical)
            .build()
            .map(Arc::new)
    };
    let mut fields = Vec::with_capacity(3);
    if let Some(id) = id {
        fields.push(column(id, Physical::BYTE_ARRAY, Some(LogicalType::String))?);
    }
    fields.push(column("row", Physical::INT64, None)?);
    fields.push(column("probability", Physical::DOUBLE, None)?);
    let schema = Arc::new(
        Type::group_type_builder("scores")
            .with_fields(fields)
            .build()?,
    );
    // Every column holds one distinct value per row (ids, row numbers,
    // probabilities): a dictionary would only be built to be dropped
    // (it was ~9% of `score`'s CPU). Row numbers count up: delta-encoded.
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_column_encoding(ColumnPath::from("row"), Encoding::DELTA_BINARY_PACKED)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(w, schema, props)?;
    const GROUP: usize = 1 << 20;
    for start in (0..probs.len()).step_by(GROUP) {
        let end = (start + GROUP).min(probs.len());
        let mut group = writer.next_row_group()?;
        if id.is_some() {
            let values: Vec<ByteArray> = ids[start..end]
                .iter()
                .map(|s| ByteArray::from(s.as_str()))
                .collect();
            let mut col = group.next_column()?.context("id column")?;
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)?;
            col.close()?;
        }
        let mut col = group.next_column()?.context("row column")?;
        col.typed::<Int64Type>()
            .write_batch(&rows[start..end], None, None)?;
        col.close()?;
        let mut col = group.next_column()?.context("probability column")?;
        col.typed::<DoubleType>()
            .write_batch(&probs[start..end], None, None)?;
        col.close()?;
        group.close()?;
    }
    Ok(writer.into_inner()?)
}

/// A file written under a temporary name beside `dest`, renamed to
/// `dest` by [`Staged::commit`]; dropped uncommitted, it is removed.
struct Staged {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    fn create(dest: &Path) -> Result<Self> {
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file name", dest.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".partial-{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file =
            File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        Ok(Self {
            file: Some(BufWriter::with_capacity(1 << 16, file)),
            tmp,
            dest: dest.to_owned(),
            committed: false,
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .as_mut()
            .context("internal: output already written")?
            .write_all(bytes)
            .with_context(|| format!("{}: cannot write", self.tmp.display()))
    }

    fn commit(mut self) -> Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()
                .with_context(|| format!("{}: cannot write", self.tmp.display()))?;
        }
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("{}: cannot write", self.dest.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fedcredit_participant::data::parquet_file::BatchOut;
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use parquet::schema::types::ColumnPath;

    use super::*;

    /// The scores file reads back value for value, its ids and row numbers
    /// without a dictionary (one distinct value per row) and the row
    /// numbers delta-encoded.
    #[test]
    fn parquet_scores_read_back_without_dictionaries() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scores.parquet");
        let ids: Vec<String> = (0..3000).map(|i| format!("A{i}")).collect();
        let rows: Vec<i64> = (2..3002).collect();
        let probs: Vec<f64> = (0..3000).map(|i| f64::from(i) / 3001.0).collect();
        let w = BufWriter::new(File::create(&path).expect("create"));
        write_parquet(w, Some("applicant"), &ids, &rows, &probs)
            .expect("written")
            .flush()
            .expect("flushed");

        let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("reader");
        let group = reader.metadata().row_group(0);
        for c in group.columns() {
            assert!(
                c.dictionary_page_offset().is_none(),
                "{}: no dictionary",
                c.column_path()
            );
        }
        assert!(
            group
                .column(1)
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        );
        let read: Vec<(String, i64, f64)> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| {
                let r = r.expect("row");
                let mut cols = r.get_column_iter().map(|(_, f)| f.clone());
                match (cols.next(), cols.next(), cols.next()) {
                    (Some(Field::Str(id)), Some(Field::Long(row)), Some(Field::Double(p))) => {
                        (id, row, p)
                    }
                    other => panic!("unexpected row {other:?}"),
                }
            })
            .collect();
        assert_eq!(read.len(), 3000);
        for (i, (id, row, p)) in read.iter().enumerate() {
            assert_eq!(
                (id, *row, p.to_bits()),
                (&ids[i], rows[i], probs[i].to_bits())
            );
        }
    }

    /// A model on `age` (numeric), `housing` (three levels, `free` the
    /// reference) and `income` (numeric, its mean large against its spread,
    /// where folding the standardization into the coefficients would lose
    /// digits).
    fn model() -> FittedModel {
        let text = r#"{
          "format": "fedcredit-model/1", "job_id": "t", "job_spec_hash": "00",
          "features": ["age", "housing=own", "housing=rent", "income"],
          "schema": {
            "label": {"column": "y", "positive": "bad", "negative": "good"},
            "features": [
              {"kind": "numeric", "name": "age"},
              {"kind": "categorical", "name": "housing", "categories": ["free", "own", "rent"]},
              {"kind": "numeric", "name": "income"}
            ]
          },
          "standardized": {"intercept": -0.3125, "coefficients": [0.7, -1.3, 0.45, 2.2]},
          "original": {"intercept": 0.0, "coefficients": [0.0, 0.0, 0.0, 0.0]},
          "standardization": {"count": 100.0, "mean": [41.3, 0.37, 0.21, 52310.7],
                              "std": [11.9, 0.48, 0.41, 3.7], "zero_variance": []},
          "l2": 1.0, "optimizer": "newton", "rounds": 1, "converged": true,
          "history": [], "metrics": null
        }"#;
        serde_json::from_str(text).expect("model")
    }

    /// One row: age (`None` null), housing, income (`None` null), id.
    type Row = (Option<f64>, &'static str, Option<i64>, String);

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let age = 18.0 + (i as f64 * 0.37) % 60.0;
                let housing = ["free", " own", "rent"][i % 3];
                let income = 52_300 + (i as i64 * 7) % 25;
                (Some(age), housing, Some(income), format!("A{i}"))
            })
            .collect()
    }

    /// Writes `rows` in row groups of `group` rows and pages of 1000 rows
    /// (so that pieces start inside groups and pages), columns in another
    /// order than the schema's, with an id column. `age` is optional, or
    /// with `plain` `PLAIN` without a dictionary in that format version,
    /// and required if asked (read from its pages, not by the column
    /// reader), stored with that compression.
    fn write_as(
        path: &Path,
        rows: &[Row],
        group: usize,
        plain: Option<(WriterVersion, bool, Compression)>,
    ) {
        let required = plain.is_some_and(|(_, required, _)| required);
        let age = if required { "required" } else { "optional" };
        let message = format!(
            "message t {{ required binary id (UTF8); optional int64 income; \
             required binary housing (UTF8); {age} double age; }}"
        );
        let schema = Arc::new(parse_message_type(&message).expect("schema"));
        let mut props = WriterProperties::builder()
            .set_data_page_row_count_limit(1000)
            .set_write_batch_size(1000);
        if let Some((v, _, compression)) = plain {
            props = props
                .set_writer_version(v)
                .set_compression(compression)
                .set_column_dictionary_enabled(ColumnPath::from("age"), false);
        }
        let props = Arc::new(props.build());
        let file = File::create(path).expect("create");
        let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
        for part in rows.chunks(group) {
            let mut g = w.next_row_group().expect("group");
            let ids: Vec<ByteArray> = part.iter().map(|r| ByteArray::from(r.3.as_str())).collect();
            let mut c = g.next_column().expect("col").expect("id");
            c.typed::<ByteArrayType>()
                .write_batch(&ids, None, None)
                .expect("id");
            c.close().expect("close");
            let incomes: Vec<i64> = part.iter().filter_map(|r| r.2).collect();
            let defs: Vec<i16> = part.iter().map(|r| i16::from(r.2.is_some())).collect();
            let mut c = g.next_column().expect("col").expect("income");
            c.typed::<Int64Type>()
                .write_batch(&incomes, Some(&defs), None)
                .expect("income");
            c.close().expect("close");
            let housing: Vec<ByteArray> = part.iter().map(|r| ByteArray::from(r.1)).collect();
            let mut c = g.next_column().expect("col").expect("housing");
            c.typed::<ByteArrayType>()
                .write_batch(&housing, None, None)
                .expect("housing");
            c.close().expect("close");
            let ages: Vec<f64> = part.iter().filter_map(|r| r.0).collect();
            let defs: Vec<i16> = part.iter().map(|r| i16::from(r.0.is_some())).collect();
            let defs = (!required).then_some(&defs[..]);
            let mut c = g.next_column().expect("col").expect("age");
            c.typed::<DoubleType>()
                .write_batch(&ages, defs, None)
                .expect("age");
            c.close().expect("close");
            g.close().expect("group");
        }
        w.close().expect("close");
    }

    fn write(path: &Path, rows: &[Row], group: usize) {
        write_as(path, rows, group, None);
    }

    /// A row's id and probability, or its problem.
    type Scores = Result<(String, f64), RowProblem>;

    /// Scores `path` as `score` does (Parquet output, with the id column):
    /// per data row, its id and probability or its problem.
    fn score_new(path: &Path, model: &FittedModel) -> Vec<(u64, Scores)> {
        let table = ParquetTable::open(path).expect("open");
        let encoder = Encoder::for_scoring(&model.schema, table.header()).expect("encoder");
        let job = Job {
            model,
            scorecard: None,
            encoder: &encoder,
            id: Some(0),
            format: Format::Parquet,
        };
        let mut got = Vec::new();
        score_parquet(&table, &job, &mut |s: Scored| {
            for ((row, id), p) in s.rows.iter().zip(&s.ids).zip(&s.probs) {
                got.push((u64::try_from(*row)?, Ok((id.clone(), *p))));
            }
            got.extend(s.bad.into_iter().map(|(row, p)| (row, Err(p))));
            Ok(())
        })
        .expect("score");
        got.sort_by_key(|(row, _)| *row);
        got
    }

    /// The rows as the per-row path reads them (`next_batch` into encoded
    /// rows): each row's encoded values or problem.
    fn rows_old(path: &Path, model: &FittedModel) -> Vec<Result<Vec<f64>, RowProblem>> {
        let table = ParquetTable::open(path).expect("open");
        let encoder = Encoder::for_scoring(&model.schema, table.header()).expect("encoder");
        let uses: Vec<_> = encoder
            .feature_columns()
            .map(|f| (f.column, Use::Feature(f)))
            .collect();
        let file = table.reader().expect("reader");
        let width = encoder.width();
        let mut got = Vec::new();
        for piece in table.pieces(usize::MAX) {
            let mut reader = PieceReader::new(&table, &file, &piece, &uses).expect("piece");
            let n = piece.rows.len();
            let mut x = vec![0.0; n * width];
            let mut problems = vec![None; n];
            let mut out = BatchOut {
                x: &mut x,
                y: None,
                texts: &mut [],
                problems: &mut problems,
            };
            reader
                .next_batch(n, &encoder, &mut out, path)
                .expect("batch");
            for (i, p) in problems.into_iter().enumerate() {
                got.push(match p {
                    Some(p) => Err(p),
                    None => Ok(x[i * width..(i + 1) * width].to_vec()),
                });
            }
        }
        got
    }

    #[test]
    fn parquet_scores_column_by_column_are_the_per_row_scores_bit_for_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("apps.parquet");
        let model = model();
        // More rows than a piece (16 batches), so that pieces start inside
        // row groups and pages.
        let mut rows = rows(70_003);
        rows[5].0 = None; // null age
        rows[6].0 = Some(f64::NAN);
        rows[7].0 = Some(f64::NEG_INFINITY);
        rows[8].1 = "boat"; // unknown category
        rows[9].2 = None; // null income
        rows[10] = (Some(f64::INFINITY), "boat", None, "A10".into()); // the first problem counts
        rows[66_000].1 = "castle";
        rows[69_999].0 = None;
        for group in [70_003, 30_000] {
            write(&path, &rows, group);
            let got = score_new(&path, &model);
            let old = rows_old(&path, &model);
            assert_eq!(got.len(), rows.len());
            for (k, (((row, new), old), r)) in got.iter().zip(&old).zip(&rows).enumerate() {
                assert_eq!(*row, k as u64 + 1);
                match (new, old) {
                    (Ok((id, p)), Ok(x)) => {
                        assert_eq!(id, &r.3);
                        // The encoding the per-row path reads, checked
                        // independently of the reader.
                        let own = f64::from(r.1.trim() == "own");
                        let rent = f64::from(r.1.trim() == "rent");
                        let age = r.0.expect("a good row has an age");
                        let income = r.2.expect("a good row has an income") as f64;
                        assert_eq!(x, &[age, own, rent, income]);
                        let want = model.probability(x).expect("probability");
                        assert_eq!(p.to_bits(), want.to_bits(), "row {row}: {p} vs {want}");
                    }
                    (Err(new), Err(old)) => assert_eq!(new, old, "row {row}"),
                    _ => panic!("row {row}: {new:?} vs {old:?}"),
                }
            }
            let bad: Vec<(u64, &str)> = got
                .iter()
                .filter_map(|(row, r)| r.as_ref().err().map(|p| (*row, p.message.as_str())))
                .collect();
            let want = [
                (6, "column `age`: null, expected a number"),
                (7, "column `age`: value `NaN` is not finite"),
                (8, "column `age`: value `-inf` is not finite"),
                (9, "column `housing`: value `boat` is not a listed category"),
                (10, "column `income`: null, expected a number"),
                (11, "column `age`: value `inf` is not finite"),
                (
                    66_001,
                    "column `housing`: value `castle` is not a listed category",
                ),
                (70_000, "column `age`: null, expected a number"),
            ];
            assert_eq!(bad.len(), want.len(), "{bad:?}");
            for ((row, message), (want_row, start)) in bad.iter().zip(want) {
                assert_eq!(*row, want_row, "{message}");
                assert!(message.starts_with(start), "row {row}: {message}");
            }
        }
    }

    /// A `PLAIN` double column, required or optional with nulls, is read
    /// from its pages (format v1 and v2): the same probabilities, bit for
    /// bit, encoded rows and problems as the column reader gives for the
    /// same values.
    #[test]
    fn plain_double_pages_score_as_the_column_reader_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (reader_path, pages_path) =
            (dir.path().join("r.parquet"), dir.path().join("p.parquet"));
        let model = model();
        let mut rows = rows(70_003);
        rows[6].0 = Some(f64::NAN);
        rows[7].0 = Some(f64::NEG_INFINITY);
        rows[8].1 = "boat";
        rows[9].2 = None;
        rows[10].0 = Some(f64::INFINITY);
        rows[65_537].0 = Some(f64::NAN); // in the second piece
        rows[69_999].0 = Some(-0.0);
        type Bits = Vec<(u64, Result<(String, u64), RowProblem>)>;
        let bits = |scores: Vec<(u64, Scores)>| -> Bits {
            scores
                .into_iter()
                .map(|(row, s)| (row, s.map(|(id, p)| (id, p.to_bits()))))
                .collect()
        };
        // With nulls for the optional layout: one, a run across a page's
        // end, and scattered ones the writer bit-packs.
        let mut with_nulls = rows.clone();
        with_nulls[12].0 = None;
        for r in &mut with_nulls[990..1_013] {
            r.0 = None;
        }
        for r in with_nulls.iter_mut().skip(40_000).step_by(3).take(500) {
            r.0 = None;
        }
        for group in [70_003, 30_000] {
            for (rows, required) in [(&rows, true), (&with_nulls, false), (&rows, false)] {
                write(&reader_path, rows, group);
                let want = (
                    bits(score_new(&reader_path, &model)),
                    rows_old(&reader_path, &model),
                );
                // Six bad rows, and the 524 nulls where there are nulls.
                let bad = if std::ptr::eq(rows, &with_nulls) {
                    530
                } else {
                    6
                };
                assert_eq!(want.0.iter().filter(|(_, s)| s.is_err()).count(), bad);
                let versions = [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0];
                let stored = [Compression::UNCOMPRESSED, Compression::SNAPPY];
                for (version, compression) in
                    versions.into_iter().flat_map(|v| stored.map(|c| (v, c)))
                {
                    write_as(
                        &pages_path,
                        rows,
                        group,
                        Some((version, required, compression)),
                    );
                    let got = (
                        bits(score_new(&pages_path, &model)),
                        rows_old(&pages_path, &model),
                    );
                    assert!(
                        got == want,
                        "{version:?}, {compression}, required {required}, groups of {group}"
                    );
                }
            }
        }
    }
}
