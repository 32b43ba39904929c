//! Weight of evidence and information value from pooled good/bad counts.
//!
//! Convention (optbinning's, SAS's): for bin `k` with `g_k` good
//! (negative-label) and `b_k` bad (positive-label) rows out of `G` and `B`,
//!
//! ```text
//! WOE_k = ln( (g_k / G) / (b_k / B) )        positive = better than average
//! IV    = Σ_k (g_k / G − b_k / B) · WOE_k    ≥ 0
//! ```
//!
//! Smoothing: when any bin of a feature has no good or no bad rows, 0.5 is
//! added to every cell of that feature (`G` and `B` grow by 0.5 per bin),
//! so every WOE is finite and the shares still sum to one, which keeps
//! each IV term `(p − q)·ln(p/q)` non-negative. Features without an empty
//! cell get the textbook values, unchanged.
//!
//! ```
//! use fedcredit_model::scorecard::woe_iv;
//!
//! // 60 of 70 good and 10 of 30 bad in the first bin.
//! let (woe, iv) = woe_iv(&[[60.0, 10.0], [10.0, 20.0]]);
//! let p: [f64; 2] = [60.0 / 70.0, 10.0 / 70.0];
//! let q: [f64; 2] = [10.0 / 30.0, 20.0 / 30.0];
//! assert!((woe[0] - (p[0] / q[0]).ln()).abs() < 1e-15);
//! let want = (p[0] - q[0]) * woe[0] + (p[1] - q[1]) * woe[1];
//! assert!((iv - want).abs() < 1e-15);
//! ```

/// What is added to every cell of a feature that has an empty one.
pub const SMOOTHING: f64 = 0.5;

/// WOE per bin and the IV of `[good, bad]` counts (see the module doc).
pub fn woe_iv(counts: &[[f64; 2]]) -> (Vec<f64>, f64) {
    let eps = if counts.iter().any(|c| c[0] == 0.0 || c[1] == 0.0) {
        SMOOTHING
    } else {
        0.0
    };
    let goods: f64 = counts.iter().map(|c| c[0] + eps).sum();
    let bads: f64 = counts.iter().map(|c| c[1] + eps).sum();
    let mut iv = 0.0;
    let woe = counts
        .iter()
        .map(|c| {
            let p = (c[0] + eps) / goods;
            let q = (c[1] + eps) / bads;
            let w = (p / q).ln();
            iv += (p - q) * w;
            w
        })
        .collect();
    (woe, iv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_cells_are_smoothed_and_finite() {
        let (woe, iv) = woe_iv(&[[10.0, 0.0], [5.0, 5.0]]);
        // (10.5/16) / (0.5/6) and (5.5/16) / (5.5/6)
        assert!((woe[0] - ((10.5 / 16.0) / (0.5 / 6.0f64)).ln()).abs() < 1e-12);
        assert!((woe[1] - ((5.5 / 16.0) / (5.5 / 6.0f64)).ln()).abs() < 1e-12);
        assert!(iv.is_finite() && iv > 0.0);
        // Equal good and bad shares everywhere: no information.
        let (woe, iv) = woe_iv(&[[10.0, 20.0], [30.0, 60.0]]);
        assert!(woe.iter().all(|w| w.abs() < 1e-15));
        assert!(iv.abs() < 1e-15);
    }

    proptest! {
        #[test]
        fn iv_is_never_negative(counts in prop::collection::vec((0u32..500, 0u32..500), 1..12)) {
            let counts: Vec<[f64; 2]> =
                counts.iter().map(|&(g, b)| [f64::from(g), f64::from(b)]).collect();
            prop_assume!(counts.iter().any(|c| c[0] > 0.0) && counts.iter().any(|c| c[1] > 0.0));
            let (woe, iv) = woe_iv(&counts);
            prop_assert!(woe.iter().all(|w| w.is_finite()));
            prop_assert!(iv >= 0.0, "iv {}", iv);
        }
    }
}
