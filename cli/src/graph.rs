//! `fedcredit secagg-graph`: the SecAgg+ parameter analysis for a consortium
//! (see `fedcredit_crypto::secagg::plus`), printed for an operator or a
//! compliance review, or the bounds of a given `(k, t)`.

use anyhow::Result;
use clap::Args;
use fedcredit_crypto::secagg::Thresholds;
use fedcredit_crypto::secagg::plus::{Bounds, GraphChoice, PlusParams};

/// Arguments of `fedcredit secagg-graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// n: members in a round.
    #[arg(long)]
    members: usize,
    /// c: members that may collude with the coordinator (default ⌊n/3⌋, the consortium default).
    #[arg(long)]
    colluders: Option<usize>,
    /// δ: the probability that a member drops out of a round.
    #[arg(long, default_value_t = 0.05)]
    dropout: f64,
    /// σ: privacy may fail with probability at most 2^-σ.
    #[arg(long, default_value_t = 40)]
    security_bits: u32,
    /// η: a round may fail to unmask with probability at most 2^-η.
    #[arg(long, default_value_t = 20)]
    correctness_bits: u32,
    /// g: the adversary may try 2^g graphs by grinding the graph seed.
    #[arg(long, default_value_t = 0)]
    grinding_bits: u32,
    /// Analyse this k (neighbours) instead of choosing one; needs --threshold.
    #[arg(long, requires = "threshold")]
    neighbours: Option<usize>,
    /// Analyse this t (shares needed of the k + 1 dealt) with --neighbours.
    #[arg(long, requires = "neighbours")]
    threshold: Option<usize>,
}

/// Runs `fedcredit secagg-graph`; with `--neighbours` and `--threshold`,
/// fails (exit 1) if that `(k, t)` does not meet the levels.
#[allow(clippy::print_stdout)]
pub fn run(args: GraphArgs) -> Result<()> {
    let n = args.members;
    let c = args
        .colluders
        .unwrap_or_else(|| Thresholds::default_colluders(n));
    let params = PlusParams {
        members: n,
        max_colluders: c,
        dropout: args.dropout,
        security_bits: args.security_bits,
        correctness_bits: args.correctness_bits,
        grinding_bits: args.grinding_bits,
    };
    println!(
        "SecAgg+ graph for n = {n} members, c = {c} colluders, dropout {}, privacy 2^-{}, correctness 2^-{}, grinding 2^{}",
        args.dropout, args.security_bits, args.correctness_bits, args.grinding_bits
    );
    if let (Some(k), Some(t)) = (args.neighbours, args.threshold) {
        let b = params.bounds(k, t)?;
        print_bounds(&b, n, c);
        let ok = b.privacy_log2 <= -f64::from(args.security_bits)
            && b.separation_log2 <= -f64::from(args.security_bits)
            && b.correctness_log2 <= -f64::from(args.correctness_bits);
        if !ok {
            anyhow::bail!(
                "k = {k}, t = {t} does not meet the levels asked for (privacy 2^-{}, correctness 2^-{})",
                args.security_bits,
                args.correctness_bits
            );
        }
        println!("  meets both levels");
        return Ok(());
    }
    match params.choose()? {
        GraphChoice::Complete => {
            let t = Thresholds::default_threshold(n, c);
            println!(
                "  complete graph: no k below n - 2 meets both levels; every member masks with all {} others and deals {n} shares, t = {t}",
                n - 1
            );
        }
        GraphChoice::Sparse(b) => {
            print_bounds(&b, n, c);
            println!(
                "  per member: {} pairwise masks instead of {} ({:.2}x), {} shares dealt instead of {n}",
                b.neighbours,
                n - 1,
                b.neighbours as f64 / (n - 1) as f64,
                b.neighbours + 1
            );
            println!(
                "  the survivor list still needs more than (n + c)/2 = {} signatures, checked by every member",
                (n + c) as f64 / 2.0
            );
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_bounds(b: &Bounds, n: usize, c: usize) {
    println!(
        "  k = {} neighbours (Harary graph under a seeded permutation), t = {} of {} shares",
        b.neighbours,
        b.threshold,
        b.neighbours + 1
    );
    if b.privacy_log2 == f64::NEG_INFINITY {
        println!(
            "  privacy failure: impossible (t - 1 = {} > c = {c}: colluders never hold t shares)",
            b.threshold - 1
        );
    } else {
        println!(
            "  privacy failure {} (some honest member has t - 1 colluding neighbours; union over {} honest members)",
            bound(b.privacy_log2),
            n - c
        );
    }
    if b.separation_log2 == f64::NEG_INFINITY {
        println!("  small-sum failure: impossible (no cut of the ring can unmask an arc)");
    } else {
        println!(
            "  small-sum failure {} (a coordinator that drops members at will cuts the ring and unmasks an arc's sum)",
            bound(b.separation_log2)
        );
    }
    if b.correctness_log2 == f64::NEG_INFINITY {
        println!("  unmask failure: impossible");
    } else {
        println!(
            "  unmask failure {} (some member keeps fewer than t neighbours)",
            bound(b.correctness_log2)
        );
    }
}

/// "<= 2^-41.04", or that a union bound above 1 guarantees nothing.
fn bound(log2: f64) -> String {
    if log2 >= 0.0 {
        format!("not bounded (union bound 2^{log2:.2} >= 1)")
    } else {
        format!("<= 2^{log2:.2}")
    }
}
