//! The report's charts as inline SVG, built here as text (no script, no
//! external asset): ROC, KS, score distribution by outcome and calibration.
//!
//! The curves are not recomputed here: ROC and the classes' cumulative
//! score distributions are [`fedcredit_model::metrics::Curves`], the same
//! values the operator's dashboard draws (`fedcredit_audit::show` reads
//! them off the evaluation round's published histograms with
//! [`fedcredit_model::job::evaluation_curves`]); the score distribution is
//! their differences, the calibration plot the model's
//! [`fedcredit_model::metrics::Calibration`] bands.
//!
//! ```
//! use fedcredit_model::metrics::curves;
//! let c = curves(&[0.0, 1.0, 3.0], &[3.0, 1.0, 0.0], 100).unwrap();
//! let svg = fedcredit_report::charts::roc(&c, 0.9);
//! assert!(svg.starts_with("<svg") && svg.contains("id=\"roc-chart\""));
//! ```

use std::fmt::Write as _;

use fedcredit_model::metrics::{Calibration, Curves};

use crate::html::escape;

/// Chart size and margins (the left one holds tick labels and the axis title).
const W: f64 = 420.0;
const H: f64 = 320.0;
const PAD: f64 = 40.0;
const LEFT: f64 = 60.0;

/// A chart's plot area mapped onto `[0, x_max] × [0, y_max]`.
struct Frame {
    x_max: f64,
    y_max: f64,
    out: String,
}

impl Frame {
    /// Opens `<svg id=id>` with a title, grid, axes, ticks and axis titles.
    fn new(
        id: &str,
        title: &str,
        (x_label, x_max): (&str, f64),
        (y_label, y_max): (&str, f64),
    ) -> Self {
        let mut f = Frame {
            x_max,
            y_max,
            out: String::new(),
        };
        let _ = write!(
            f.out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"{id}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}</title>",
            escape(title)
        );
        for i in 0..=4 {
            let t = i as f64 / 4.0;
            let (x, y) = (f.sx(t * x_max), f.sy(t * y_max));
            let _ = write!(
                f.out,
                "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
                 <line class=\"grid\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                f.sy(0.0),
                f.sy(y_max),
                f.sx(0.0),
                f.sx(x_max),
                f.sy(0.0) + 14.0,
                tick(t * x_max),
                f.sx(0.0) - 6.0,
                y + 4.0,
                tick(t * y_max),
            );
        }
        let _ = write!(
            f.out,
            "<path class=\"axis\" d=\"M{:.1},{:.1}V{:.1}H{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
            f.sx(0.0),
            f.sy(y_max),
            f.sy(0.0),
            f.sx(x_max),
            f.sx(x_max / 2.0),
            H - 6.0,
            escape(x_label),
            H / 2.0,
            H / 2.0,
            escape(y_label),
        );
        f
    }

    fn sx(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max) * (W - LEFT - PAD)
    }

    fn sy(&self, y: f64) -> f64 {
        H - PAD - (y / self.y_max) * (H - 2.0 * PAD)
    }

    /// A polyline through `points` (data units), `M x,y L x,y ...`.
    fn path(&mut self, points: impl IntoIterator<Item = (f64, f64)>, class: &str) {
        let mut d = String::new();
        for (i, (x, y)) in points.into_iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { 'M' } else { 'L' },
                self.sx(x),
                self.sy(y)
            );
        }
        let _ = write!(self.out, "<path class=\"{class}\" d=\"{d}\"/>");
    }

    /// A label at data coordinates.
    fn text(&mut self, (x, y): (f64, f64), class: &str, text: &str) {
        let _ = write!(
            self.out,
            "<text class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            self.sx(x),
            self.sy(y),
            escape(text)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A tick label: at most three decimals, no trailing zeros.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// The ROC curve, with the diagonal and the AUC.
pub fn roc(curves: &Curves, auc: f64) -> String {
    let mut f = Frame::new(
        "roc-chart",
        "ROC curve",
        ("false-positive rate", 1.0),
        ("true-positive rate", 1.0),
    );
    f.path([(0.0, 0.0), (1.0, 1.0)], "diag");
    f.path(curves.roc.iter().map(|p| (p[0], p[1])), "roc");
    f.text((0.55, 0.1), "note", &format!("AUC {auc:.4}"));
    f.finish()
}

/// Both classes' cumulative score distributions and the KS gap.
pub fn ks(curves: &Curves) -> String {
    let mut f = Frame::new(
        "ks-chart",
        "KS: the classes' cumulative score distributions",
        ("score threshold", 1.0),
        ("share of the class below it", 1.0),
    );
    f.path(curves.cdf.iter().map(|p| (p[0], p[1])), "pos");
    f.path(curves.cdf.iter().map(|p| (p[0], p[2])), "neg");
    let at = curves.cdf.iter().min_by(|a, b| {
        (a[0] - curves.ks_at)
            .abs()
            .total_cmp(&(b[0] - curves.ks_at).abs())
    });
    if let Some(p) = at {
        f.path([(p[0], p[1]), (p[0], p[2])], "ks");
    }
    f.text(
        (0.45, 0.1),
        "note",
        &format!("KS {:.4} at {:.3}", curves.ks, curves.ks_at),
    );
    f.text((0.04, 0.93), "pos-label", "defaults");
    f.text((0.04, 0.85), "neg-label", "non-defaults");
    f.finish()
}

/// Each class's share of its rows per score interval: the differences of
/// [`Curves::cdf`], merged to at most `bars` intervals.
pub fn distribution_of(curves: &Curves, bars: usize) -> Vec<[f64; 4]> {
    let steps: Vec<[f64; 4]> = curves
        .cdf
        .windows(2)
        .map(|w| {
            [
                w[0][0],
                w[1][0],
                (w[1][1] - w[0][1]).max(0.0),
                (w[1][2] - w[0][2]).max(0.0),
            ]
        })
        .collect();
    let group = steps.len().div_ceil(bars.max(1)).max(1);
    steps
        .chunks(group)
        .map(|c| {
            [
                c[0][0],
                c[c.len() - 1][1],
                c.iter().map(|s| s[2]).sum(),
                c.iter().map(|s| s[3]).sum(),
            ]
        })
        .collect()
}

/// The score distribution by outcome: a step outline per class, each
/// interval's height the class's share of its rows in it.
pub fn distribution(curves: &Curves) -> String {
    let bins = distribution_of(curves, 40);
    let top = bins.iter().map(|b| b[2].max(b[3])).fold(0.0, f64::max);
    let y_max = nice_ceiling(top);
    let mut f = Frame::new(
        "score-distribution-chart",
        "Score distribution by outcome",
        ("predicted probability of default", 1.0),
        ("share of the class", y_max),
    );
    for (class, col) in [("pos", 2), ("neg", 3)] {
        let mut pts = vec![(0.0, 0.0)];
        for b in &bins {
            pts.push((b[0], b[col]));
            pts.push((b[1], b[col]));
        }
        pts.push((1.0, 0.0));
        f.path(pts, &format!("{class} area"));
    }
    f.text((0.6, 0.93 * y_max), "pos-label", "defaults");
    f.text((0.6, 0.85 * y_max), "neg-label", "non-defaults");
    f.finish()
}

/// Observed default rate against mean predicted probability per band, with
/// the diagonal of perfect calibration.
pub fn calibration(c: &Calibration) -> String {
    let top = c
        .bands
        .iter()
        .map(|b| b.default_rate.max(b.mean_predicted))
        .fold(0.0, f64::max);
    let m = nice_ceiling(top);
    let mut f = Frame::new(
        "calibration-chart",
        "Calibration: observed against predicted default rate by score band",
        ("mean predicted probability", m),
        ("observed default rate", m),
    );
    f.path([(0.0, 0.0), (m, m)], "diag");
    f.path(
        c.bands.iter().map(|b| (b.mean_predicted, b.default_rate)),
        "cal",
    );
    for b in &c.bands {
        let _ = write!(
            f.out,
            "<circle class=\"cal-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"/>",
            f.sx(b.mean_predicted),
            f.sy(b.default_rate)
        );
    }
    f.text(
        (0.05 * m, 0.92 * m),
        "note",
        &format!("Brier {:.4}, HL p = {:.3}", c.brier, c.hl_p_value),
    );
    f.finish()
}

/// The smallest of 0.05, 0.1, 0.2, 0.25, 0.5 or 1 (times a power of ten,
/// at most 1) at or above `v`; 1 for anything not positive and finite.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) || v >= 1.0 {
        return 1.0;
    }
    let scale = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * scale * (1.0 + 1e-12) {
            return (m * scale).min(1.0);
        }
    }
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_model::metrics::{calibration as calibrate, curves};

    fn longest_path(svg: &str) -> usize {
        svg.split(" d=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap_or("").matches('L').count())
            .max()
            .unwrap_or(0)
    }

    fn sample() -> (Vec<f64>, Vec<f64>) {
        // 1000 bins: positives rise with the score, negatives fall.
        let pos: Vec<f64> = (0..1000).map(|k| (k / 10) as f64).collect();
        let neg: Vec<f64> = (0..1000).map(|k| (100 - k / 10) as f64).collect();
        (pos, neg)
    }

    #[test]
    fn the_curves_are_drawn_from_many_points_inside_the_frame() {
        let (pos, neg) = sample();
        let c = curves(&pos, &neg, 200).expect("curves");
        for svg in [roc(&c, 0.8), ks(&c), distribution(&c)] {
            assert!(longest_path(&svg) >= 50, "{svg}");
            assert!(svg.ends_with("</svg>"));
            // Every coordinate within the view box.
            for d in svg.split(" d=\"").skip(1) {
                let d = d.split('"').next().unwrap_or("");
                for xy in d.split(['M', 'L', 'V', 'H']).filter(|s| !s.is_empty()) {
                    for v in xy.split(',') {
                        let v: f64 = v.parse().expect("a number");
                        assert!((0.0..=W).contains(&v), "{v} in {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_distribution_holds_each_class_once() {
        let (pos, neg) = sample();
        let c = curves(&pos, &neg, 200).expect("curves");
        let bins = distribution_of(&c, 40);
        assert!(bins.len() <= 40 && bins.len() >= 20, "{}", bins.len());
        let (p, n): (f64, f64) = bins
            .iter()
            .fold((0.0, 0.0), |a, b| (a.0 + b[2], a.1 + b[3]));
        assert!((p - 1.0).abs() < 1e-9 && (n - 1.0).abs() < 1e-9, "{p} {n}");
        assert_eq!(bins[0][0], 0.0);
        assert_eq!(bins[bins.len() - 1][1], 1.0);
    }

    #[test]
    fn the_calibration_plot_has_a_point_per_band() {
        let (pos, neg) = sample();
        let c = calibrate(&pos, &neg).expect("calibration");
        let svg = calibration(&c);
        assert_eq!(svg.matches("<circle").count(), c.bands.len());
        assert!(svg.contains("id=\"calibration-chart\""));
    }

    #[test]
    fn axes_end_at_round_numbers() {
        assert_eq!(nice_ceiling(0.37), 0.5);
        assert_eq!(nice_ceiling(0.07), 0.1);
        assert_eq!(nice_ceiling(0.2), 0.2);
        assert_eq!(nice_ceiling(0.9), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(0.0), "0");
    }
}
