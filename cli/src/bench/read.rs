//! `fedcredit bench-read`: how fast `local` reads its training files
//! (schema inference over all files, then each file loaded into its
//! matrix), and how much memory that takes beside the matrices; and, with
//! `--write-synthetic`, the seeded files to read (the same rows and format
//! as `bench-credit --memory` writes for its participant processes).
//!
//! Figures go to stdout; whole-process timings against another reader
//! (pandas) are taken from outside, on the same files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use fedcredit_model::LabelSpec;
use fedcredit_model::synthetic::{generate, known_beta, split_rows};

/// Options of `fedcredit bench-read`.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Files to read as `local` reads them (CSV, or Parquet by extension).
    #[arg(long = "data", required_unless_present = "write_synthetic")]
    data: Vec<PathBuf>,
    /// The label column, its positive and its negative value.
    #[arg(long, default_value = "default")]
    label: String,
    #[arg(long, default_value = "1")]
    positive: String,
    #[arg(long, default_value = "0")]
    negative: String,
    /// Instead of reading: write `--parties` files of seeded synthetic rows
    /// (`x1..xD` Gaussian, `default` 0/1) into this folder.
    #[arg(long, value_name = "DIR", conflicts_with = "data")]
    write_synthetic: Option<PathBuf>,
    /// With --write-synthetic: write Parquet files (snappy) instead of CSV.
    #[arg(long, requires = "write_synthetic")]
    parquet: bool,
    /// Synthetic rows in all files.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Synthetic features per row.
    #[arg(long, default_value_t = 50)]
    features: usize,
    /// Synthetic files.
    #[arg(long, default_value_t = 10)]
    parties: usize,
    /// Seed of the synthetic rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `fedcredit bench-read`.
pub fn run(args: ReadArgs) -> Result<()> {
    if let Some(dir) = &args.write_synthetic {
        return write_synthetic(&args, dir);
    }
    let label = LabelSpec::binary(&args.label, &args.positive, &args.negative);
    let bytes: u64 = args
        .data
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let start = Instant::now();
    let schema = crate::local::infer_schema(&args.data, label)?;
    let inferred = start.elapsed().as_secs_f64();
    let (train, _) = crate::local::load_all(&args.data, None, &schema)?;
    let total = start.elapsed().as_secs_f64();
    let rows: usize = train.iter().map(|d| d.rows()).sum();
    let matrix = train
        .iter()
        .map(|d| (d.x.len() + d.y.len()) * 8)
        .sum::<usize>() as f64;
    let peak = peak_rss().map_or_else(
        || "n/a".to_owned(),
        |p| format!("{:.0} MB ({:.2}x the f64 matrix)", p / 1e6, p / matrix),
    );
    let mb = bytes as f64 / 1e6;
    say(&format!(
        "read {} files, {mb:.0} MB, {rows} rows x {} encoded columns",
        args.data.len(),
        schema.encoded_width()
    ));
    say(&format!(
        "  schema inference {inferred:.3} s, loading {:.3} s, total {total:.3} s \
         ({:.0} MB/s, {:.2} M rows/s)",
        total - inferred,
        mb / total,
        rows as f64 / total / 1e6
    ));
    say(&format!("  peak memory {peak}"));
    Ok(())
}

fn write_synthetic(args: &ReadArgs, dir: &std::path::Path) -> Result<()> {
    let (n, d, k) = (args.rows, args.features, args.parties);
    if k == 0 || d == 0 || n < k {
        bail!("--write-synthetic needs --parties >= 1, --features >= 1 and --rows >= --parties");
    }
    std::fs::create_dir_all(dir)?;
    let (x, y) = generate(n, d, &known_beta(d), args.seed)?;
    let ids: Vec<String> = (1..=k).map(|i| format!("party-{i:02}")).collect();
    let parts = split_rows(x.view(), y.view(), k)?;
    if args.parquet {
        for (id, (x, y)) in ids.iter().zip(&parts) {
            let path = dir.join(format!("{id}.parquet"));
            write_parquet(&path, *x, *y)?;
            say(&path.display().to_string());
        }
        return Ok(());
    }
    for path in super::memory::write_party_csvs(dir, &ids, &parts)? {
        say(&path.display().to_string());
    }
    Ok(())
}

/// `x1..xD` as required doubles and `default` as a required int64 (0/1),
/// snappy, row groups of 2^20 rows (pyarrow's default size).
fn write_parquet(
    path: &std::path::Path,
    x: ndarray::ArrayView2<'_, f64>,
    y: ndarray::ArrayView1<'_, f64>,
) -> Result<()> {
    use anyhow::Context;
    use parquet::basic::Compression;
    use parquet::data_type::{DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let mut message = String::from("message synthetic {");
    for j in 1..=x.ncols() {
        message.push_str(&format!(" required double x{j};"));
    }
    message.push_str(" required int64 default; }");
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&message)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = SerializedFileWriter::new(file, schema, props)?;
    for start in (0..x.nrows()).step_by(1 << 20) {
        let end = (start + (1 << 20)).min(x.nrows());
        let mut group = w.next_row_group()?;
        for j in 0..x.ncols() {
            let column: Vec<f64> = (start..end).map(|i| x[[i, j]]).collect();
            let mut c = group.next_column()?.context("column")?;
            c.typed::<DoubleType>().write_batch(&column, None, None)?;
            c.close()?;
        }
        // Labels are 0/1 by construction.
        #[allow(clippy::cast_possible_truncation)]
        let labels: Vec<i64> = (start..end).map(|i| y[i] as i64).collect();
        let mut c = group.next_column()?.context("label")?;
        c.typed::<Int64Type>().write_batch(&labels, None, None)?;
        c.close()?;
        group.close()?;
    }
    w.close()?;
    Ok(())
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}
