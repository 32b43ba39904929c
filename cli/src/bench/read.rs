//! `fedcredit bench-read`: how fast `local` reads its training files
//! (schema inference over all files, then each file loaded into its
//! matrix; a plain CSV file of numbers is loaded during inference, which
//! reads every cell anyway), and how much memory that takes beside the matrices; and, with
//! `--write-synthetic`, the seeded files to read (the same rows and format
//! as `bench-credit --memory` writes for its participant processes).
//!
//! Figures go to stdout; whole-process timings against another reader
//! (pandas) are taken from outside, on the same files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use fedcredit_model::LabelSpec;
use fedcredit_model::rows::{rows1, rows2};
use fedcredit_model::synthetic::{generate, known_beta, split_ranges, split_rows};
use fedcredit_participant::data::{MemoryBudget, Rows};

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
    /// With --parquet: generate and write one row group (2^20 rows) at a
    /// time, each from its own seed, so that files larger than memory can be
    /// written (other rows than without it, from the same model).
    #[arg(long, requires = "parquet")]
    chunked: bool,
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
    // As `local`: files that inference loaded on the way are not read again.
    let (schema, preloaded) = crate::local::infer_and_load(&args.data, label, &[])?;
    let inferred = start.elapsed().as_secs_f64();
    let (train, _) = crate::local::open_all(
        &args.data,
        None,
        &schema,
        MemoryBudget::default(),
        preloaded,
    )?;
    let total = start.elapsed().as_secs_f64();
    let rows: usize = train.iter().map(Rows::rows).sum();
    let matrix = train.iter().map(Rows::memory_bytes).sum::<u64>() as f64;
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
        "  schema inference {inferred:.3} s (loading plain CSV files of numbers on the way), \
         loading the rest {:.3} s, total {total:.3} s \
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
    let ids: Vec<String> = (1..=k).map(|i| format!("party-{i:02}")).collect();
    if args.chunked {
        for (id, range) in ids.iter().zip(split_ranges(n, k)?) {
            let path = dir.join(format!("{id}.parquet"));
            write_parquet_chunked(&path, range, d, args.seed)?;
            say(&path.display().to_string());
        }
        return Ok(());
    }
    let (x, y) = generate(n, d, &known_beta(d), args.seed)?;
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

/// Rows `range` of a chunked synthetic set: row group `g` (rows
/// `g·2^20 …` of the whole set) is generated from seed `seed·2^32 + g`, so
/// memory is one group whatever the row count.
fn write_parquet_chunked(
    path: &std::path::Path,
    range: std::ops::Range<usize>,
    d: usize,
    seed: u64,
) -> Result<()> {
    let beta = known_beta(d);
    let mut w = parquet_writer(path, d)?;
    let mut start = range.start;
    while start < range.end {
        let group = start >> GROUP_BITS;
        let end = ((group + 1) << GROUP_BITS).min(range.end);
        let (x, y) = generate(
            1 << GROUP_BITS,
            d,
            &beta,
            seed.wrapping_mul(1 << 32).wrapping_add(group as u64),
        )?;
        let first = start - (group << GROUP_BITS);
        let rows = first..first + (end - start);
        write_group(&mut w, rows2(x.view(), rows.clone()), rows1(y.view(), rows))?;
        start = end;
    }
    w.close()?;
    Ok(())
}

/// Rows per row group: 2^20 (pyarrow's default size).
const GROUP_BITS: usize = 20;

type Writer = parquet::file::writer::SerializedFileWriter<std::fs::File>;

/// `x1..xD` as required doubles and `default` as a required int64 (0/1),
/// snappy, row groups of 2^20 rows (pyarrow's default size).
fn write_parquet(
    path: &std::path::Path,
    x: ndarray::ArrayView2<'_, f64>,
    y: ndarray::ArrayView1<'_, f64>,
) -> Result<()> {
    let mut w = parquet_writer(path, x.ncols())?;
    for start in (0..x.nrows()).step_by(1 << GROUP_BITS) {
        let end = (start + (1 << GROUP_BITS)).min(x.nrows());
        write_group(&mut w, rows2(x, start..end), rows1(y, start..end))?;
    }
    w.close()?;
    Ok(())
}

/// A snappy writer for `x1..xD` and `default`.
fn parquet_writer(path: &std::path::Path, d: usize) -> Result<Writer> {
    use anyhow::Context;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;
    let mut message = String::from("message synthetic {");
    for j in 1..=d {
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
    Ok(Writer::new(file, schema, props)?)
}

/// One row group: the columns of `x`, then the 0/1 labels `y`.
fn write_group(
    w: &mut Writer,
    x: ndarray::ArrayView2<'_, f64>,
    y: ndarray::ArrayView1<'_, f64>,
) -> Result<()> {
    use anyhow::Context;
    use parquet::data_type::{DoubleType, Int64Type};
    let mut group = w.next_row_group()?;
    for j in 0..x.ncols() {
        let column: Vec<f64> = x.column(j).to_vec();
        let mut c = group.next_column()?.context("column")?;
        c.typed::<DoubleType>().write_batch(&column, None, None)?;
        c.close()?;
    }
    // Labels are 0/1 by construction.
    #[allow(clippy::cast_possible_truncation)]
    let labels: Vec<i64> = y.iter().map(|&v| v as i64).collect();
    let mut c = group.next_column()?.context("label")?;
    c.typed::<Int64Type>().write_batch(&labels, None, None)?;
    c.close()?;
    group.close()?;
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
