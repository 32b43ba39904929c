//! SecAgg+ (Bell, Bonawitz, Gascón, Lepoint, Raykova, CCS 2020) parameter
//! analysis and communication graph: how many neighbours `k` each member
//! needs, and which Shamir threshold `t` among its closed neighbourhood, for
//! a consortium of `n` with at most `c` colluders and an expected dropout
//! rate `δ`, at stated statistical security and correctness; or that
//! nothing short of the complete graph (what the daemons run) meets
//! them.
//!
//! # The model
//!
//! The graph is a Harary graph `H(k, n)` (member at position `p` is joined
//! to positions `p ± 1 … p ± k/2`, mod `n`) under a uniformly random
//! permutation of the members ([`harary_graph`]). For one member, its `k`
//! neighbours are then a uniformly random `k`-subset of the other `n − 1`.
//! A member deals its two secrets `t`-of-`(k + 1)` to its closed
//! neighbourhood `N[j]` (its neighbours and itself) and masks pairwise with
//! its neighbours only.
//!
//! **Privacy.** With one survivor list U3 confirmed by more than `(n + c)/2`
//! signatures (as in the complete-graph protocol), every honest member
//! reveals the same kind of share for a given peer. The coordinator learns
//! an honest member `j`'s input only if it reconstructs `j`'s self-mask
//! seed without an honest neighbour of `j` in U3 revealing (an honest
//! neighbour in U3 shares an unrevealed pairwise mask with `j`), that is
//! from `j`'s colluding neighbours plus `j`'s own share: `X_j + 1 ≥ t`,
//! where `X_j` ~ Hypergeometric(`n − 1`, `c`, `k`) counts `j`'s colluding
//! neighbours. Union bound over the `n − c` honest members and over `2^g`
//! graphs an adversary may try (the graph seed is fixed after the keys are
//! advertised, and a coordinator with colluders can redraw colluders' keys
//! to grind it):
//! `2^g · (n − c) · P[X ≥ t − 1] ≤ 2^−σ`.
//!
//! **No small sums.** A coordinator that chooses whom to declare dropped
//! could cut the ring: drop every honest member within `k/2` positions on
//! both sides of an arc, and the arc's pairwise masks no longer tie it to
//! the rest, so the arc's sum would be unmasked on its own. Take the honest
//! member `j` of the arc nearest a cut. Its self-mask seed needs `t` shares
//! from its closed neighbourhood still in U3: at most the `k/2` positions on
//! its own side and itself, plus colluders among the `k/2` positions toward
//! the cut (the honest ones there are dropped; the positions between `j` and
//! the cut are colluders by the choice of `j`). So if fewer than
//! `t − k/2 − 1` colluders sit in any `k/2` consecutive positions next to an
//! honest member, no cut unmasks, the honest survivors' masks stay
//! connected, and the only sum revealed is over all of U3. For one member
//! and direction those positions are a uniformly random `k/2`-subset:
//! `2^g · 2(n − c) · P[Hyp(n − 1, c, k/2) ≥ t − k/2 − 1] ≤ 2^−σ`.
//!
//! **Correctness.** Every secret must be reconstructible from the members
//! of `N[j]` still present at the end. Each member is present with
//! probability `1 − δ` independently; conservatively not counting `j`
//! itself: `n · P[Bin(k, 1 − δ) < t] ≤ 2^−η`.
//!
//! The cut bound does not count that the coordinator may drop at most
//! `n − T` members (the survivor list needs `T > (n + c)/2` signatures),
//! so it is conservative where a cut needs more drops than that.
//!
//! These are union bounds over a static adversary (colluders fixed before
//! the graph seed) and a sketch in the style of Bell et al., not a proof.
//!
//! # The protocol over the graph
//!
//! The per-round protocol runs it when the thresholds carry
//! [`CommGraph::Harary`] ([`Thresholds::with_harary`]); the daemons still
//! run the complete graph (at their sizes the analysis gives it anyway).
//! What keeps the argument above true in the code:
//!
//! - **The graph is derived, not chosen.** Its seed is [`graph_seed`] of the
//!   session id, which hashes every advertised key of U1 and `(k, t)`: it is
//!   fixed only after the keys, and every party derives the same graph
//!   ([`Neighbourhoods`]). A member compares any neighbour list the
//!   coordinator announces ([`check_announced`]), takes shares only from
//!   its neighbours, and the aggregator refuses a dealer whose commitments
//!   cover another set than its closed neighbourhood. Redrawing keys or
//!   choosing whom to admit to U1 redraws the graph: that grinding is what
//!   `g` charges.
//! - **Shares stay in the neighbourhood.** A member deals `t`-of-`(k + 1)`
//!   to `N[j]` only, so only `N[j]` can ever reveal a share of `j`; the
//!   aggregator refuses a revealed share from outside `N[j]`.
//! - **One kind of share per peer.** As before, one survivor list U3 needs
//!   `T > (n + c)/2` verified signatures (the [`Thresholds`] threshold,
//!   unchanged by the graph) before a member reveals, and it reveals for a
//!   neighbour the self-mask share if it is in U3, else the key share.
//! - **A member's other keys are not its business.** It checks the
//!   signatures of its neighbours' advertisements and share messages; the
//!   rest of U1 only enters the session id. A forged key for a non-neighbour
//!   either has an honest neighbour, which checks its signature, or touches
//!   only colluders, and it cannot sign the survivor list.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::{Advertisement, CommGraph, PartyIndex, SecAggError, Thresholds};
use crate::kx::SessionId;
use crate::prg::keystream_u64;

/// What a consortium asks of the graph: its size, the collusion bound, the
/// expected dropout rate, and the security and correctness levels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlusParams {
    /// n: members in the round.
    pub members: usize,
    /// c: members that may collude with the coordinator.
    pub max_colluders: usize,
    /// δ: probability that a member drops out of a round, in `[0, 1)`.
    pub dropout: f64,
    /// σ: privacy fails with probability at most `2^−σ`.
    pub security_bits: u32,
    /// η: a round fails to unmask with probability at most `2^−η`.
    pub correctness_bits: u32,
    /// g: the adversary may try `2^g` graphs (grinding the graph seed).
    pub grinding_bits: u32,
}

/// The analysis of one `(k, t)`: base-2 logarithms of the two failure
/// probabilities (union bounds; `-inf` when the event is impossible).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// k: neighbours per member (even).
    pub neighbours: usize,
    /// t: Shamir threshold within the closed neighbourhood (`k + 1` members).
    pub threshold: usize,
    /// log2 of the privacy failure bound `2^g (n − c) P[X ≥ t − 1]`.
    pub privacy_log2: f64,
    /// log2 of the small-sum bound `2^g 2(n − c) P[Hyp(n−1, c, k/2) ≥ t − k/2 − 1]`.
    pub separation_log2: f64,
    /// log2 of the correctness failure bound `n P[Bin(k, 1 − δ) < t]`.
    pub correctness_log2: f64,
}

/// What the analysis gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GraphChoice {
    /// A sparse Harary graph meets both levels with the fewest neighbours.
    Sparse(Bounds),
    /// No `k < n − 2` meets both levels: the complete graph is needed.
    Complete,
}

/// Errors of the parameter analysis.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PlusError {
    /// The parameters cannot describe a consortium.
    #[error("{0}")]
    Invalid(String),
}

impl PlusParams {
    fn check(&self) -> Result<(), PlusError> {
        if self.members < 3 {
            return Err(PlusError::Invalid(format!(
                "a round needs at least 3 members, got n = {}",
                self.members
            )));
        }
        if self.max_colluders >= self.members {
            return Err(PlusError::Invalid(format!(
                "c = {} colluders must be fewer than n = {} members",
                self.max_colluders, self.members
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PlusError::Invalid(format!(
                "the dropout rate must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// The bounds of one `(k, t)`: `k` even and below `n`, `t` in `1..=k + 1`.
    pub fn bounds(&self, neighbours: usize, threshold: usize) -> Result<Bounds, PlusError> {
        self.check()?;
        let n = self.members;
        if neighbours == 0 || neighbours >= n || !neighbours.is_multiple_of(2) {
            return Err(PlusError::Invalid(format!(
                "k = {neighbours} neighbours must be even (k/2 on each side in the Harary graph) and below n = {n}"
            )));
        }
        if threshold == 0 || threshold > neighbours + 1 {
            return Err(PlusError::Invalid(format!(
                "t = {threshold} must be in 1..={} (k + 1 shares are dealt)",
                neighbours + 1
            )));
        }
        let table = LnFactorials::new(n);
        Ok(self.bounds_with(&table, neighbours, threshold))
    }

    fn bounds_with(&self, table: &LnFactorials, k: usize, t: usize) -> Bounds {
        let n = self.members;
        let c = self.max_colluders;
        let collude = hypergeometric_upper_ln(table, n - 1, c, k, t.saturating_sub(1));
        let short = binomial_lower_ln(table, k, 1.0 - self.dropout, t);
        let honest = (n - c) as f64;
        let cut = match t.checked_sub(k / 2 + 1) {
            Some(need) => hypergeometric_upper_ln(table, n - 1, c, k / 2, need),
            None => 0.0,
        };
        Bounds {
            neighbours: k,
            threshold: t,
            privacy_log2: f64::from(self.grinding_bits) + honest.log2() + collude / LN_2,
            separation_log2: f64::from(self.grinding_bits) + (2.0 * honest).log2() + cut / LN_2,
            correctness_log2: (n as f64).log2() + short / LN_2,
        }
    }

    /// Whether `b` meets both levels (with a margin of 1/64 bit against
    /// rounding in the log-domain sums).
    fn meets(&self, b: &Bounds) -> bool {
        b.privacy_log2 <= -f64::from(self.security_bits) - MARGIN_BITS
            && b.separation_log2 <= -f64::from(self.security_bits) - MARGIN_BITS
            && b.correctness_log2 <= -f64::from(self.correctness_bits) - MARGIN_BITS
    }

    /// The fewest even neighbours `k < n − 2` for which some `t` meets both
    /// levels, with the largest such `t` (the most colluders tolerated at
    /// that `k`); else [`GraphChoice::Complete`].
    pub fn choose(&self) -> Result<GraphChoice, PlusError> {
        self.check()?;
        let n = self.members;
        let table = LnFactorials::new(n);
        for k in (2..n.saturating_sub(2)).step_by(2) {
            // Privacy improves and correctness worsens as t grows: take the
            // largest t that is still correct, and check its privacy.
            let best = (1..=k + 1)
                .rev()
                .map(|t| self.bounds_with(&table, k, t))
                .find(|b| b.correctness_log2 <= -f64::from(self.correctness_bits) - MARGIN_BITS);
            if let Some(b) = best
                && self.meets(&b)
            {
                return Ok(GraphChoice::Sparse(b));
            }
        }
        Ok(GraphChoice::Complete)
    }
}

const LN_2: f64 = std::f64::consts::LN_2;
const MARGIN_BITS: f64 = 1.0 / 64.0;

/// `ln i!` for `i = 0..=n`, by summing logarithms (relative error about
/// `n · 2^−53`, far below the margin the decisions keep).
struct LnFactorials(Vec<f64>);

impl LnFactorials {
    fn new(n: usize) -> Self {
        let mut v = Vec::with_capacity(n + 1);
        let mut acc = 0.0f64;
        v.push(0.0);
        for i in 1..=n {
            acc += (i as f64).ln();
            v.push(acc);
        }
        Self(v)
    }

    /// `ln C(a, b)`; `b ≤ a ≤ n`.
    fn ln_choose(&self, a: usize, b: usize) -> f64 {
        self.0[a] - self.0[b] - self.0[a - b]
    }
}

/// `ln Σ exp(terms)`, `-inf` for no terms.
fn ln_sum(terms: impl Iterator<Item = f64>) -> f64 {
    let terms: Vec<f64> = terms.filter(|t| *t > f64::NEG_INFINITY).collect();
    let Some(max) = terms.iter().copied().reduce(f64::max) else {
        return f64::NEG_INFINITY;
    };
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// `ln P[X ≥ at_least]` for `X` ~ Hypergeometric(population, successes, draws).
fn hypergeometric_upper_ln(
    table: &LnFactorials,
    population: usize,
    successes: usize,
    draws: usize,
    at_least: usize,
) -> f64 {
    let lo = draws.saturating_sub(population - successes).max(at_least);
    let hi = draws.min(successes);
    if lo > hi {
        return f64::NEG_INFINITY;
    }
    let total = table.ln_choose(population, draws);
    ln_sum((lo..=hi).map(|x| {
        table.ln_choose(successes, x) + table.ln_choose(population - successes, draws - x) - total
    }))
}

/// `ln P[Bin(trials, p) < below]`.
fn binomial_lower_ln(table: &LnFactorials, trials: usize, p: f64, below: usize) -> f64 {
    if below == 0 {
        return f64::NEG_INFINITY;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    ln_sum((0..below.min(trials + 1)).map(|x| {
        let ok = if x == 0 { 0.0 } else { x as f64 * lp };
        let fail = if trials == x {
            0.0
        } else {
            (trials - x) as f64 * lq
        };
        table.ln_choose(trials, x) + ok + fail
    }))
}

/// The Harary graph `H(k, n)` under the permutation drawn from `seed`:
/// for each member `0..n`, its `k` neighbours. `k` must be even and below
/// `n`. Every party computes the same graph from the same seed: the
/// permutation is a Fisher–Yates shuffle driven by the AES-256-CTR
/// keystream of `seed` ([`keystream_u64`]), with rejection sampling so each
/// draw is exactly uniform.
pub fn harary_graph(
    n: usize,
    k: usize,
    seed: &[u8; 32],
) -> Result<Vec<BTreeSet<usize>>, PlusError> {
    if !k.is_multiple_of(2) || k >= n {
        return Err(PlusError::Invalid(format!(
            "a Harary graph H(k, n) here needs an even k below n, got k = {k}, n = {n}"
        )));
    }
    let layout = HararyLayout::new(n, k, seed);
    Ok((0..n)
        .map(|member| layout.neighbours(member).collect())
        .collect())
}

/// The ring positions of `H(k, n)` under the permutation drawn from a seed:
/// built once in O(n), after which one member's neighbours cost O(k), so a
/// member derives its own neighbourhood without building the whole graph.
struct HararyLayout {
    k: usize,
    position_of: Vec<usize>,
    member_at: Vec<usize>,
}

impl HararyLayout {
    /// `k` even and below `n` (checked by the callers).
    fn new(n: usize, k: usize, seed: &[u8; 32]) -> Self {
        let position_of = permutation(n, seed);
        let mut member_at = vec![0usize; n];
        for (member, &p) in position_of.iter().enumerate() {
            member_at[p] = member;
        }
        Self {
            k,
            position_of,
            member_at,
        }
    }

    /// The `k` neighbours of `member` (`< n`): the members within `k/2`
    /// positions on either side of it.
    fn neighbours(&self, member: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.position_of.len();
        let p = self.position_of[member];
        (1..=self.k / 2)
            .flat_map(move |d| [self.member_at[(p + d) % n], self.member_at[(p + n - d) % n]])
    }
}

/// The seed of a round attempt's graph: SHA-256 over a domain tag and the
/// session id. The session id hashes every advertised key of U1 and the
/// thresholds (graph included), so the graph is fixed only once every key
/// is advertised: neither the coordinator nor a member can pick it before
/// its keys are committed (grinding by redrawing keys or choosing whom to
/// admit to U1 is what [`PlusParams::grinding_bits`] counts).
pub fn graph_seed(session: &SessionId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/graph-seed\0");
    h.update(session.as_bytes());
    h.finalize().into()
}

/// The communication graph of one round attempt over U1: who masks with and
/// deals shares to whom. Derived, never received: every party computes it
/// from the thresholds, the session id and U1 ([`Neighbourhoods::derive`]).
#[derive(Clone, Debug)]
pub enum Neighbourhoods {
    /// Everyone in U1 is everyone's neighbour (the Bonawitz et al. protocol).
    Complete(BTreeSet<PartyIndex>),
    /// `H(k, |U1|)` over U1 in index order, under the permutation drawn
    /// from [`graph_seed`]: each member's `k` neighbours.
    Sparse(BTreeMap<PartyIndex, BTreeSet<PartyIndex>>),
}

impl Neighbourhoods {
    /// The whole graph of the attempt, as the aggregator and the auditor
    /// need it: O(|U1|·k) for a Harary graph.
    ///
    /// Errors: [`SecAggError::GraphTooLarge`] if U1 has `k + 1` members or
    /// fewer (a Harary graph needs `k < |U1|`).
    pub fn derive(
        thresholds: &Thresholds,
        session: &SessionId,
        cohort: &BTreeMap<PartyIndex, Advertisement>,
    ) -> Result<Self, SecAggError> {
        let members: Vec<PartyIndex> = cohort.keys().copied().collect();
        match thresholds.graph() {
            CommGraph::Complete => Ok(Self::Complete(members.into_iter().collect())),
            CommGraph::Harary { neighbours, .. } => {
                let layout = harary_layout(neighbours, session, members.len())?;
                Ok(Self::Sparse(
                    members
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (*p, layout.neighbours(i).map(|j| members[j]).collect()))
                        .collect(),
                ))
            }
        }
    }

    /// The neighbours of `me` alone, as a member derives them: O(|U1| + k).
    /// Empty if `me` is not in U1.
    pub fn of_member(
        thresholds: &Thresholds,
        session: &SessionId,
        cohort: &BTreeMap<PartyIndex, Advertisement>,
        me: PartyIndex,
    ) -> Result<BTreeSet<PartyIndex>, SecAggError> {
        let Some(position) = cohort.keys().position(|p| *p == me) else {
            return Ok(BTreeSet::new());
        };
        match thresholds.graph() {
            CommGraph::Complete => Ok(cohort.keys().copied().filter(|p| *p != me).collect()),
            CommGraph::Harary { neighbours, .. } => {
                let members: Vec<PartyIndex> = cohort.keys().copied().collect();
                let layout = harary_layout(neighbours, session, members.len())?;
                Ok(layout.neighbours(position).map(|j| members[j]).collect())
            }
        }
    }

    /// Whether `a` and `b` are distinct neighbours.
    pub fn adjacent(&self, a: PartyIndex, b: PartyIndex) -> bool {
        match self {
            Self::Complete(u1) => a != b && u1.contains(&a) && u1.contains(&b),
            Self::Sparse(g) => g.get(&a).is_some_and(|nb| nb.contains(&b)),
        }
    }

    /// Whether `b` is in the closed neighbourhood of `a` (its neighbours
    /// and itself), i.e. holds a share of `a`'s secrets.
    pub fn in_closed(&self, a: PartyIndex, b: PartyIndex) -> bool {
        (a == b && self.contains(a)) || self.adjacent(a, b)
    }

    /// Whether `p` is in U1.
    pub fn contains(&self, p: PartyIndex) -> bool {
        match self {
            Self::Complete(u1) => u1.contains(&p),
            Self::Sparse(g) => g.contains_key(&p),
        }
    }

    /// The closed neighbourhood of `p` (empty if `p` is not in U1).
    pub fn closed(&self, p: PartyIndex) -> BTreeSet<PartyIndex> {
        match self {
            Self::Complete(u1) if u1.contains(&p) => u1.clone(),
            Self::Complete(_) => BTreeSet::new(),
            Self::Sparse(g) => g
                .get(&p)
                .map(|nb| nb.iter().copied().chain([p]).collect())
                .unwrap_or_default(),
        }
    }
}

/// Refuses a neighbour list the coordinator announced for `me` unless it is
/// exactly the one `me` derived: a coordinator must not choose the graph.
pub fn check_announced(
    me: PartyIndex,
    derived: &BTreeSet<PartyIndex>,
    announced: &BTreeSet<PartyIndex>,
) -> Result<(), SecAggError> {
    if derived != announced {
        return Err(SecAggError::GraphMismatch(me));
    }
    Ok(())
}

fn harary_layout(k: usize, session: &SessionId, n: usize) -> Result<HararyLayout, SecAggError> {
    if !k.is_multiple_of(2) || k >= n {
        return Err(SecAggError::GraphTooLarge {
            neighbours: k,
            cohort: n,
        });
    }
    Ok(HararyLayout::new(n, k, &graph_seed(session)))
}

/// A uniformly random permutation of `0..n` from `seed` (Fisher–Yates).
fn permutation(n: usize, seed: &[u8; 32]) -> Vec<usize> {
    let mut words = Words::new(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = words.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

/// Uniform draws from a seed's keystream.
struct Words {
    seed: [u8; 32],
    buf: Vec<u64>,
    used: usize,
    blocks: u64,
}

impl Words {
    const BLOCK: usize = 1024;

    fn new(seed: &[u8; 32]) -> Self {
        Self {
            seed: *seed,
            buf: Vec::new(),
            used: 0,
            blocks: 0,
        }
    }

    fn next(&mut self) -> u64 {
        if self.used == self.buf.len() {
            // Block b is the keystream of SHA-256(tag ‖ seed ‖ b), so that a
            // long shuffle never repeats words and distinct seeds never
            // share a block.
            let mut h = Sha256::new();
            h.update(b"fedcredit/v1/graph-permutation\0");
            h.update(self.seed);
            h.update(self.blocks.to_be_bytes());
            self.buf = vec![0; Self::BLOCK];
            keystream_u64(&h.finalize().into(), &mut self.buf);
            self.blocks += 1;
            self.used = 0;
        }
        self.used += 1;
        self.buf[self.used - 1]
    }

    /// Uniform in `0..bound` by rejection (no modulo bias).
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let w = self.next();
            if w < zone {
                return w % bound;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::print_stdout)]
mod tests {
    use super::*;

    fn params(n: usize, c: usize, dropout: f64) -> PlusParams {
        PlusParams {
            members: n,
            max_colluders: c,
            dropout,
            security_bits: 40,
            correctness_bits: 20,
            grinding_bits: 0,
        }
    }

    /// Exact hypergeometric upper tail from integer binomials (small cases).
    fn exact_hyper(pop: u64, succ: u64, draws: u64, at_least: u64) -> f64 {
        fn choose(a: u64, b: u64) -> u128 {
            if b > a {
                return 0;
            }
            let mut r: u128 = 1;
            for i in 0..b {
                r = r * u128::from(a - i) / u128::from(i + 1);
            }
            r
        }
        let num: u128 = (at_least..=draws)
            .map(|x| choose(succ, x) * choose(pop - succ, draws - x))
            .sum();
        num as f64 / choose(pop, draws) as f64
    }

    #[test]
    fn tails_match_exact_arithmetic() {
        let table = LnFactorials::new(60);
        for (pop, succ, draws) in [(59, 19, 10), (40, 3, 12), (20, 10, 20), (10, 0, 4)] {
            for at_least in 0..=draws {
                let got = hypergeometric_upper_ln(&table, pop, succ, draws, at_least).exp();
                let want = exact_hyper(pop as u64, succ as u64, draws as u64, at_least as u64);
                assert!(
                    (got - want).abs() <= 1e-12 * want.max(1e-300),
                    "{pop} {succ} {draws} {at_least}: {got} vs {want}"
                );
            }
        }
        // Binomial: P[Bin(3, 0.5) < 2] = 4/8.
        let got = binomial_lower_ln(&table, 3, 0.5, 2).exp();
        assert!((got - 0.5).abs() < 1e-15);
        assert_eq!(binomial_lower_ln(&table, 3, 0.5, 0), f64::NEG_INFINITY);
        // p = 1: never fewer than all trials.
        assert_eq!(binomial_lower_ln(&table, 4, 1.0, 4).exp(), 0.0);
    }

    #[test]
    fn consortia_up_to_128_need_the_complete_graph_and_1000_gets_a_quarter_of_it() {
        // c = ⌊n/3⌋ colluders, 5% dropouts, 2^-40 / 2^-20: no cut of the
        // ring may unmask, so t − k/2 − 1 must exceed the colluders in any
        // k/2 window — too many neighbours to gain anything below ~200.
        for n in [4, 16, 64, 128] {
            assert_eq!(
                params(n, n / 3, 0.05).choose().unwrap(),
                GraphChoice::Complete,
                "n = {n}"
            );
        }
        let GraphChoice::Sparse(b) = params(1000, 333, 0.05).choose().unwrap() else {
            panic!("expected a sparse graph at n = 1000");
        };
        assert_eq!((b.neighbours, b.threshold), (232, 196), "{b:?}");
        assert!(b.privacy_log2 <= -40.0, "{b:?}");
        assert!(b.separation_log2 <= -40.0, "{b:?}");
        assert!(b.correctness_log2 <= -20.0, "{b:?}");
    }

    #[test]
    fn the_cut_condition_is_what_sizes_the_graph() {
        // Without it (t − 1 > c suffices at 64), 36 neighbours would do.
        // The cut bound rejects them; it does not count that a coordinator
        // may drop only n − T members (at 64 a cut needs about 24 honest
        // drops of the 21 allowed), so it is conservative for small n.
        let b = params(64, 21, 0.05).bounds(36, 24).unwrap();
        assert_eq!(b.privacy_log2, f64::NEG_INFINITY);
        assert!(b.correctness_log2 <= -20.0, "{b:?}");
        assert!(b.separation_log2 > -1.0, "{b:?}");
    }

    #[test]
    fn a_large_consortium_with_few_colluders_gets_a_sparse_graph_that_meets_both_levels() {
        let p = params(1000, 50, 0.05);
        let GraphChoice::Sparse(b) = p.choose().unwrap() else {
            panic!("expected a sparse graph");
        };
        assert!(b.neighbours < 1000 / 2, "{b:?}");
        assert!(
            b.privacy_log2 <= -40.0 && b.correctness_log2 <= -20.0,
            "{b:?}"
        );
        assert!(b.separation_log2 <= -40.0, "{b:?}");
        // And it is the fewest neighbours: k − 2 meets no threshold.
        let fewer = b.neighbours - 2;
        assert!(
            (1..=fewer + 1).all(|t| !p.meets(&p.bounds(fewer, t).unwrap())),
            "{b:?}"
        );
        // Grinding 2^64 graphs costs neighbours.
        let ground = PlusParams {
            grinding_bits: 64,
            ..p
        };
        match ground.choose().unwrap() {
            GraphChoice::Sparse(g) => assert!(g.neighbours > b.neighbours),
            GraphChoice::Complete => {}
        }
    }

    /// Mounts the cut on a real graph: members `0..c` collude; the
    /// coordinator picks an arc of positions, declares every honest member
    /// within `k/2` positions outside it dropped, and checks that the round
    /// still unmasks (every survivor and every dropout has `t` of its closed
    /// neighbourhood in U3, and U3 is above `(n + c)/2`). Returns whether
    /// some arc of `m` members works, i.e. the arc's sum would be revealed.
    fn cut_unmasks_an_arc(n: usize, c: usize, k: usize, t: usize, m: usize, seed: u8) -> bool {
        let graph = harary_graph(n, k, &[seed; 32]).unwrap();
        let position_of = permutation(n, &[seed; 32]);
        let mut member_at = vec![0; n];
        for (member, &p) in position_of.iter().enumerate() {
            member_at[p] = member;
        }
        let colluder = |member: usize| member < c;
        (0..n).any(|start| {
            let dropped: BTreeSet<usize> = (1..=k / 2)
                .flat_map(|d| {
                    [
                        member_at[(start + n - d) % n],
                        member_at[(start + m - 1 + d) % n],
                    ]
                })
                .filter(|member| !colluder(*member))
                .collect();
            let in_u3 = |member: usize| !dropped.contains(&member);
            let reconstructible = |member: usize| {
                let mut have = graph[member].iter().filter(|p| in_u3(**p)).count();
                have += usize::from(in_u3(member));
                have >= t
            };
            2 * (n - dropped.len()) > n + c && (0..n).all(reconstructible)
        })
    }

    #[test]
    fn the_cut_attack_unmasks_a_small_arc_where_the_analysis_says_it_can() {
        // n = 256, c = 85: with k = 36, t = 24 the coordinator drops the
        // honest members on both sides of an arc and the round still
        // unmasks, so the arc of 10 members is unmasked by itself.
        let p = params(256, 85, 0.05);
        assert!(p.bounds(36, 24).unwrap().separation_log2 >= 0.0);
        assert!(cut_unmasks_an_arc(256, 85, 36, 24, 10, 0));
        // The analysis's choice for n = 256 has no arc to cut.
        let GraphChoice::Sparse(b) = p.choose().unwrap() else {
            panic!("expected a sparse graph at n = 256");
        };
        for m in [5, 10, 20, 50] {
            assert!(
                !cut_unmasks_an_arc(256, 85, b.neighbours, b.threshold, m, 0),
                "{b:?}, arc of {m}"
            );
        }
    }

    #[test]
    fn three_shares_with_threshold_two_do_not_survive_one_colluder_at_64() {
        // Flower's SecAgg+ example: 3 shares (k = 2 neighbours and self), t = 2.
        let b = params(64, 1, 0.05).bounds(2, 2).unwrap();
        // P[one colluder among 2 of 63] = 2/63 per member, over 63 honest.
        assert!(b.privacy_log2 > -1.0, "{b:?}");
    }

    #[test]
    fn bad_parameters_are_refused_with_the_reason() {
        assert!(params(2, 0, 0.0).choose().is_err());
        assert!(params(10, 10, 0.0).choose().is_err());
        assert!(params(10, 1, 1.0).choose().is_err());
        assert!(params(10, 1, 0.1).bounds(10, 2).is_err());
        assert!(params(10, 1, 0.1).bounds(4, 6).is_err());
        assert!(params(10, 1, 0.1).bounds(3, 2).is_err());
        assert!(harary_graph(10, 3, &[0; 32]).is_err());
    }

    #[test]
    fn harary_graph_is_k_regular_symmetric_and_seed_determined() {
        for (n, k) in [(5, 2), (16, 4), (101, 10), (64, 62)] {
            let g = harary_graph(n, k, &[7; 32]).unwrap();
            for (i, nb) in g.iter().enumerate() {
                assert_eq!(nb.len(), k, "member {i} of H({k}, {n})");
                assert!(!nb.contains(&i));
                for j in nb {
                    assert!(g[*j].contains(&i), "{i}–{j} not symmetric");
                }
            }
            assert_eq!(g, harary_graph(n, k, &[7; 32]).unwrap());
            assert_ne!(g, harary_graph(n, k, &[8; 32]).unwrap());
        }
    }

    #[test]
    fn the_permutation_is_close_to_uniform() {
        // Position of member 0 over many seeds: each of 8 slots about 1/8.
        let mut counts = [0u32; 8];
        for s in 0..8000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&s.to_be_bytes());
            counts[permutation(8, &seed)[0]] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
