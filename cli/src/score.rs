//! `fedcredit score`: a model.json applied to a CSV file of applicants, one
//! probability per row, in input order.
//!
//! By default the first row that does not fit the model stops the run with
//! its file, line, column and value, and no output file is left behind.
//! With `--on-error skip` every such row goes to an error file (`line,
//! column,value,reason`) and the others are scored; the counts go to
//! stderr. Output files are written beside their destination and renamed
//! into place only when the run succeeds, so a file that exists is whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fedcredit_model::Encoder;
use fedcredit_model::job::FittedModel;
use fedcredit_participant::data::LineCounter;

/// Options of `fedcredit score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Applicants: a CSV file with the model's feature columns (the label column is not needed).
    #[arg(long)]
    data: PathBuf,
    /// Output CSV (`row,probability`, after the id column if one is given); default: standard output.
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
    let file = File::open(data).with_context(|| format!("{}: cannot open", data.display()))?;
    // As the participants read their rows: header names trimmed (cells are
    // trimmed by the encoder); a short or long row is a bad row, not a CSV error.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .flexible(true)
        .from_reader(file);
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the header", data.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let encoder = Encoder::for_scoring(&model.schema, &header).with_context(|| {
        format!(
            "{}:1: the header does not fit the model's schema",
            data.display()
        )
    })?;
    if encoder.width() != model.features.len() {
        bail!(
            "{}: the model's schema encodes {} columns but it has {} coefficients",
            args.model.display(),
            encoder.width(),
            model.features.len()
        );
    }
    let id = match &args.id_column {
        Some(name) => Some((name.as_str(), id_position(&header, name, data)?)),
        None => None,
    };

    let mut out = match &args.out {
        Some(path) => Sink::File(Staged::create(path)?),
        None => Sink::Stdout(csv::Writer::from_writer(std::io::stdout().lock())),
    };
    let mut titles = Vec::with_capacity(3);
    titles.extend(id.map(|(name, _)| name));
    titles.extend(["row", "probability"]);
    out.write(&titles)?;
    let mut errors = match &errors_path {
        Some(path) => {
            let mut e = Staged::create(path)?;
            e.writer
                .write_record(["line", "column", "value", "reason"])?;
            Some(e)
        }
        None => None,
    };

    let mut lines = LineCounter::new(
        File::open(data).with_context(|| format!("{}: cannot open", data.display()))?,
    );
    let mut record = csv::ByteRecord::new();
    let mut row = vec![0.0; encoder.width()];
    let (mut index, mut scored, mut skipped) = (0u64, 0u64, 0u64);
    while reader
        .read_byte_record(&mut record)
        .with_context(|| format!("{}: cannot read", data.display()))?
    {
        index += 1;
        // Invalid UTF-8 shows as U+FFFD: such a cell cannot be a number or
        // a category, so it is reported with the replacement in its value.
        let cells: Vec<std::borrow::Cow<'_, str>> =
            record.iter().map(String::from_utf8_lossy).collect();
        match encoder.encode_features_into(&cells, &mut row) {
            Ok(()) => {
                let p = model.probability(&row)?;
                let (index, p) = (index.to_string(), p.to_string());
                let mut fields = Vec::with_capacity(3);
                if let Some((_, j)) = id {
                    fields.push(cells.get(j).map_or("", |c| c.as_ref()));
                }
                fields.extend([index.as_str(), p.as_str()]);
                out.write(&fields)?;
                scored += 1;
            }
            Err(e) => {
                let line = match record.position() {
                    Some(pos) => lines
                        .line_at(pos.byte())
                        .with_context(|| format!("{}: cannot read", data.display()))?,
                    None => 0,
                };
                let Some(errors) = errors.as_mut() else {
                    bail!("{}:{line}: {e}", data.display());
                };
                errors.writer.write_record([
                    line.to_string().as_str(),
                    e.column().unwrap_or(""),
                    e.value().unwrap_or(""),
                    &e.to_string(),
                ])?;
                skipped += 1;
            }
        }
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

/// The position of the `--id-column` in the header, which must hold it exactly once.
fn id_position(header: &[String], name: &str, data: &Path) -> Result<usize> {
    let mut hits = header.iter().enumerate().filter(|(_, h)| *h == name);
    match (hits.next(), hits.next()) {
        (Some((j, _)), None) => Ok(j),
        (Some(_), Some(_)) => bail!(
            "{}:1: --id-column `{name}` appears more than once in the header",
            data.display()
        ),
        (None, _) => {
            let shown: Vec<String> = header.iter().take(12).map(|h| format!("`{h}`")).collect();
            let more = if header.len() > 12 { ", …" } else { "" };
            bail!(
                "{}:1: --id-column `{name}` is not in the header (it has {}{more})",
                data.display(),
                shown.join(", ")
            )
        }
    }
}

/// Where the scores go.
enum Sink<'a> {
    File(Staged),
    Stdout(csv::Writer<std::io::StdoutLock<'a>>),
}

impl Sink<'_> {
    fn write<S: AsRef<[u8]>>(&mut self, fields: &[S]) -> Result<()> {
        match self {
            Sink::File(s) => s.writer.write_record(fields)?,
            Sink::Stdout(w) => w.write_record(fields)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::File(s) => s.commit(),
            Sink::Stdout(mut w) => Ok(w.flush()?),
        }
    }
}

/// A CSV file written under a temporary name beside `dest`, renamed to
/// `dest` by [`Staged::commit`]; dropped uncommitted, it is removed.
struct Staged {
    writer: csv::Writer<File>,
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
            writer: csv::Writer::from_writer(file),
            tmp,
            dest: dest.to_owned(),
            committed: false,
        })
    }

    fn commit(mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("{}: cannot write", self.tmp.display()))?;
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
