//! `fedcredit local --kind scorecard`: a points scorecard from local files,
//! each file a party.
//!
//! It runs the federated `scorecard` job kind in process, over loopback gRPC
//! ([`credit::run`]), with bounds read from the files (a consortium fixes
//! them in its job spec instead):
//!
//! 1. each party bins its own rows into per-label fine histograms, which
//!    are securely summed in the job's first round;
//! 2. the pooled histogram is merged into monotonic bins with WOE and IV;
//! 3. each party encodes its own rows as WOE, and the usual Newton rounds
//!    fit the logistic regression on them;
//! 4. the coefficients on WOE give the points per bin; `model.json` holds
//!    them in its `scorecard` object.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedcredit_model::job::ModelJobSpec;
use fedcredit_model::privacy::PrivacySetting;
use fedcredit_model::scorecard::{BinningSettings, PointsScale, Scorecard, ScorecardSpec};
use fedcredit_model::{Feature, Schema};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::Rows;

use crate::credit::{self, Party};
use crate::local::{LocalArgs, column_ranges, infer_and_load, open_all, say_streamed};
use crate::say;

/// What `--kind scorecard` adds to `local`'s options.
#[derive(Debug, Clone)]
pub struct ScorecardArgs {
    /// How features are binned.
    pub binning: BinningSettings,
    /// How points are scaled.
    pub scale: PointsScale,
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
    let (schema, preloaded) = infer_and_load(&files, args.label.clone(), &args.categorical)?;
    for name in card.binning.trends.keys() {
        if !schema.features.iter().any(|f| f.name() == name) {
            bail!("--trend {name}=…: the data has no feature `{name}`");
        }
    }
    let (train, test) = open_all(
        &args.data,
        args.test.as_ref(),
        &schema,
        args.max_memory,
        preloaded,
    )?;
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
             one value per feature, are then held in memory for the rounds)",
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

    // The job: a binning round (securely summed histograms), the bins and
    // WOE from the pooled counts, then the usual rounds on WOE features.
    let spec = ModelJobSpec {
        schema,
        l2: args.l2,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: Default::default(),
        fedavg: Default::default(),
        bins: fedcredit_model::metrics::DEFAULT_BINS,
        privacy: Some(PrivacySetting::None),
        scorecard: Some(ScorecardSpec {
            bounds,
            fine_bins: card.binning.fine_bins,
            max_bins: card.binning.max_bins,
            min_bin_share: card.binning.min_bin_share,
            trend: card.binning.trend,
            trends: card.binning.trends.clone(),
            pdo: card.scale.pdo,
            base_score: card.scale.base_score,
            base_odds: card.scale.base_odds,
        }),
    };
    spec.validate()?;
    let mut test = test;
    let mut parties = Vec::with_capacity(train.len());
    for (i, rows) in train.into_iter().enumerate() {
        parties.push(Party {
            id: format!("party-{}", i + 1),
            data: CreditData::from_rows(rows, test.take()),
        });
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let log_path = args.out.join("rounds.log");
    let progress = crate::progress::RoundProgress::start(spec.planned_rounds());
    let outcome = credit::run(
        "local-scorecard",
        spec,
        parties,
        &log_path,
        progress.reporter(),
    )
    .await?;
    drop(progress);

    let scorecard = outcome
        .model
        .scorecard
        .as_ref()
        .context("internal: the scorecard job published no scorecard")?;
    describe(scorecard, &outcome.model, &args.out, &log_path);
    credit::write_outputs(&args.out, &outcome)?;
    Ok(())
}

/// Prints the model's fit and the characteristics by IV.
fn describe(card: &Scorecard, m: &fedcredit_model::job::FittedModel, out: &Path, log: &Path) {
    say(&format!(
        "  model: {} optimization rounds, converged: {}; points: pdo {}, {} at {}:1 good:bad",
        m.rounds, m.converged, card.pdo, card.base_score, card.base_odds
    ));
    for c in card.by_iv().into_iter().take(5) {
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
