//! `fedcredit local --kind scorecard`: a points scorecard from local files,
//! each file a party.
//!
//! 1. Each party bins its own rows into per-label fine histograms
//!    ([`HistogramLayout::add_rows`]) over bounds read from the files; only
//!    these vectors leave a party, and they are summed here, in process.
//!    (The federated job kind will sum the very same vectors by secure
//!    aggregation.)
//! 2. The pooled histogram is merged into monotonic bins with WOE and IV.
//! 3. Each party encodes its own rows as WOE, and the consortium fits the
//!    logistic regression on them with the usual Newton rounds over
//!    loopback gRPC ([`credit::run`]).
//! 4. The coefficients on WOE give the points per bin; `model.json` holds
//!    them in its `scorecard` object.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedcredit_model::job::ModelJobSpec;
use fedcredit_model::privacy::PrivacySetting;
use fedcredit_model::scorecard::{
    BinningSettings, HistogramLayout, PointsScale, Scorecard, WoeEncoder,
};
use fedcredit_model::{Feature, Schema};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::{Dataset, Rows};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::credit::{self, Party};
use crate::local::{LocalArgs, column_ranges, infer_schema, open_all, say_streamed};
use crate::say;

/// What `--kind scorecard` adds to `local`'s options.
#[derive(Debug, Clone)]
pub struct ScorecardArgs {
    /// How features are binned.
    pub binning: BinningSettings,
    /// How points are scaled.
    pub scale: PointsScale,
}

/// Every batch of `rows` (loaded, or streamed from its file).
fn for_each_batch(
    rows: &Rows,
    mut f: impl FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> fedcredit_model::Result<()>,
) -> Result<()> {
    match rows {
        Rows::InMemory(d) => f(d.x.view(), d.y.view())
            .with_context(|| format!("{}: binning its rows", d.path.display())),
        Rows::Streamed(s) => s
            .for_each_batch(|_| Ok(()), f)
            .with_context(|| format!("{}: binning its rows", s.path().display())),
    }
}

/// One party's rows as WOE features (one column per feature).
fn woe_rows(rows: &Rows, encoder: &WoeEncoder) -> Result<Dataset> {
    let width = encoder.width();
    let (mut x, mut y) = (Vec::with_capacity(rows.rows() * width), Vec::new());
    let (mut row, mut out) = (vec![0.0; rows.width()], vec![0.0; width]);
    for_each_batch(rows, |xb, yb| {
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
    Ok(Dataset {
        x: Array2::from_shape_vec((y.len(), width), x)?,
        y: Array1::from(y),
        path: rows.path().to_owned(),
    })
}

/// Public-bound stand-ins for each numeric feature: its range over the
/// training files (a constant column gets a width of 1).
fn bounds_from_files(schema: &Schema, train: &[Rows]) -> Result<BTreeMap<String, [f64; 2]>> {
    let files: Vec<&Rows> = train.iter().collect();
    let ranges = column_ranges(&files, schema.encoded_width())?;
    let mut bounds = BTreeMap::new();
    let mut col = 0;
    for f in &schema.features {
        if let Feature::Numeric { name } = f {
            let [low, high] = ranges[col];
            bounds.insert(
                name.clone(),
                [low, if high > low { high } else { low + 1.0 }],
            );
        }
        col += f.encoded_width();
    }
    Ok(bounds)
}

/// Runs `fedcredit local --kind scorecard`.
pub async fn run(args: LocalArgs, card: ScorecardArgs) -> Result<()> {
    if args.privacy.is_some() {
        bail!(
            "--kind scorecard does not take --epsilon/--delta yet: its binning histograms \
             would be published without noise"
        );
    }
    card.binning.validate()?;
    card.scale.validate()?;
    let mut files = args.data.clone();
    files.extend(args.test.clone());
    let schema = infer_schema(&files, args.label.clone(), &args.categorical)?;
    for name in card.binning.trends.keys() {
        if !schema.features.iter().any(|f| f.name() == name) {
            bail!("--trend {name}=…: the data has no feature `{name}`");
        }
    }
    let (train, test) = open_all(&args.data, args.test.as_ref(), &schema, args.max_memory)?;
    // Streamed files are read once for the bounds, once for the histograms
    // and once for the WOE rows, which are then held in memory.
    say_streamed(train.iter().chain(&test), args.max_memory);
    if train
        .iter()
        .chain(&test)
        .any(|r| matches!(r, Rows::Streamed(_)))
    {
        say(
            "  (a scorecard reads them three times: bounds, histograms, WOE rows; the WOE rows, \
             one value per feature, are held in memory for the rounds)",
        );
    }
    let bounds = bounds_from_files(&schema, &train)?;
    say(&format!(
        "fedcredit local --kind scorecard: {} data sets as {} consortium members, {} features; \
         numeric bounds taken from these files (a consortium fixes them in its job spec)",
        args.data.len(),
        args.data.len(),
        schema.features.len()
    ));

    // 1. Each party's histogram vector, then their sum.
    let layout = HistogramLayout::new(&schema, &bounds, card.binning.fine_bins)?;
    let mut pooled = vec![0.0; layout.len()];
    for rows in &train {
        let mut own = vec![0.0; layout.len()];
        for_each_batch(rows, |x, y| layout.add_rows(x, y, &mut own))?;
        for (s, v) in pooled.iter_mut().zip(&own) {
            *s += v;
        }
    }
    // 2. Bins, WOE and IV from the pooled counts alone.
    let binnings = layout
        .bin_features(&pooled, &card.binning)
        .context("binning the pooled histograms")?;
    say(&format!(
        "  binned {} features from {} pooled histogram counts (at most {} bins, {}% of rows each)",
        binnings.len(),
        pooled.len(),
        card.binning.max_bins,
        card.binning.min_bin_share * 100.0
    ));

    // 3. WOE features at every party, and the usual federated fit on them.
    let woe = WoeEncoder::new(schema.clone(), binnings)?;
    let woe_schema = Schema {
        label: schema.label.clone(),
        features: schema
            .features
            .iter()
            .map(|f| Feature::Numeric {
                name: format!("woe({})", f.name()),
            })
            .collect(),
    };
    let mut test = test.map(|t| woe_rows(&t, &woe)).transpose()?;
    let mut parties = Vec::with_capacity(train.len());
    for (i, rows) in train.iter().enumerate() {
        parties.push(Party {
            id: format!("party-{}", i + 1),
            data: CreditData::new(woe_rows(rows, &woe)?, test.take()),
        });
    }
    drop(train);
    let spec = ModelJobSpec {
        schema: woe_schema,
        l2: args.l2,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: Default::default(),
        fedavg: Default::default(),
        bins: fedcredit_model::metrics::DEFAULT_BINS,
        privacy: Some(PrivacySetting::None),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let log_path = args.out.join("rounds.log");
    let progress = crate::progress::RoundProgress::start(spec.planned_rounds());
    let mut outcome = credit::run(
        "local-scorecard",
        spec,
        parties,
        &log_path,
        progress.reporter(),
    )
    .await?;
    drop(progress);

    // 4. Points.
    let m = &outcome.model;
    let scorecard = Scorecard::new(
        schema,
        woe.into_binnings(),
        m.original.intercept,
        &m.original.coefficients,
        card.scale,
    )?;
    describe(&scorecard, &outcome.model, &args.out, &log_path);
    outcome.model.scorecard = Some(scorecard);
    credit::write_outputs(&args.out, &outcome)?;
    Ok(())
}

/// Prints the model's fit and the characteristics by IV.
fn describe(card: &Scorecard, m: &fedcredit_model::job::FittedModel, out: &Path, log: &Path) {
    say(&format!(
        "  model: {} optimization rounds, converged: {}; points: pdo {}, {} at {}:1 good:bad",
        m.rounds, m.converged, card.pdo, card.base_score, card.base_odds
    ));
    let mut order: Vec<usize> = (0..card.characteristics.len()).collect();
    order.sort_by(|&a, &b| {
        card.characteristics[b]
            .iv
            .total_cmp(&card.characteristics[a].iv)
    });
    for &j in order.iter().take(5) {
        let c = &card.characteristics[j];
        say(&format!(
            "  IV {:.4}  {} ({} bins)",
            c.iv,
            c.name,
            c.bins.len()
        ));
    }
    if let Some(p) = m.metrics {
        say(&format!(
            "  held-out ({} rows): AUC {}  KS {}  log-loss {:.4}",
            p.n,
            credit::fmt_opt(p.auc),
            credit::fmt_opt(p.ks),
            p.logloss
        ));
    }
    say(&format!(
        "  wrote {} (with its `scorecard`) and {}; round log {}",
        out.join("model.json").display(),
        out.join("metrics.json").display(),
        log.display()
    ));
}
