//! The report's HTML: one self-contained document (inline style and SVG,
//! no script, no external reference), every string from the inputs
//! escaped. The document is a list of [`Section`]s; sections that later
//! inputs bring (a monitoring file's PSI) are passed in as more sections.

use std::fmt::Write as _;

use fedcredit_model::scorecard::{BinValues, Scorecard};

use crate::charts;
use crate::lineage::Checked;

/// Escapes text for HTML element content and quoted attribute values:
/// `&`, `<`, `>`, `"` and `'`.
///
/// ```
/// use fedcredit_report::html::escape;
/// assert_eq!(escape("<script>a & 'b'</script>"), "&lt;script&gt;a &amp; &#39;b&#39;&lt;/script&gt;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One section of the report: a heading and a body of HTML made with
/// [`escape`]d text. `id` is the section's anchor (letters, digits, `-`).
#[derive(Debug, Clone)]
pub struct Section {
    /// The anchor, e.g. `psi`.
    pub id: String,
    /// The heading, as text (escaped when written).
    pub title: String,
    /// The body, HTML.
    pub body: String,
}

/// Names of the input files, shown in the report (as given, escaped).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The model file.
    pub model: String,
    /// The round log.
    pub log: String,
    /// The consortium file.
    pub consortium: String,
    /// The job spec file, if the job was not the consortium file's own.
    pub job: Option<String>,
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1b1f24;padding:0 16px}\
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}\
h3{font-size:15px;margin:18px 0 6px}\
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}\
code,pre{font-family:ui-monospace,monospace;font-size:12px}pre{background:#f6f8fa;padding:8px;overflow-x:auto}\
.verdict{padding:10px 14px;border-radius:6px;background:#dafbe1;border:1px solid #4ac26b;font-weight:600}\
.muted{color:#57606a}.charts{display:flex;flex-wrap:wrap;gap:12px}\
svg.chart{border:1px solid #d0d7de;background:#fff;font-size:11px}\
svg .grid{stroke:#eaeef2}svg .axis{stroke:#57606a;fill:none}svg .diag{stroke:#8c959f;stroke-dasharray:4 3;fill:none}\
svg .roc{stroke:#0969da;stroke-width:2;fill:none}svg .pos{stroke:#cf222e;stroke-width:2;fill:none}\
svg .neg{stroke:#0969da;stroke-width:2;fill:none}svg .area.pos{fill:#cf222e;fill-opacity:.15}\
svg .area.neg{fill:#0969da;fill-opacity:.15}svg .ks{stroke:#1b1f24;stroke-width:1.5;stroke-dasharray:3 2}\
svg .cal{stroke:#8250df;stroke-width:2;fill:none}svg .cal-point{fill:#8250df}\
svg .note{font-size:13px;font-weight:600}svg .pos-label{fill:#cf222e}svg .neg-label{fill:#0969da}\
@media print{h2{break-after:avoid}svg.chart,table{break-inside:avoid}}";

/// A number with `digits` decimals; `–` for none.
fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

/// A table: header cells as text; rows of `(html, numeric)` cells.
pub(crate) fn table(id: Option<&str>, headers: &[&str], rows: &[Vec<(String, bool)>]) -> String {
    let mut t = String::new();
    match id {
        Some(id) => {
            let _ = write!(t, "<table id=\"{}\">", escape(id));
        }
        None => t.push_str("<table>"),
    }
    // A table of label–value rows has no header row.
    if headers.iter().any(|h| !h.is_empty()) {
        t.push_str("<thead><tr>");
        for h in headers {
            let _ = write!(t, "<th>{}</th>", escape(h));
        }
        t.push_str("</tr></thead>");
    }
    t.push_str("<tbody>");
    for r in rows {
        t.push_str("<tr>");
        for (cell, numeric) in r {
            if *numeric {
                let _ = write!(t, "<td class=\"num\">{cell}</td>");
            } else {
                let _ = write!(t, "<td>{cell}</td>");
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// A text cell and a numeric cell.
fn txt(s: &str) -> (String, bool) {
    (escape(s), false)
}
fn code(s: &str) -> (String, bool) {
    (format!("<code>{}</code>", escape(s)), false)
}
fn nc(s: String) -> (String, bool) {
    (s, true)
}

/// The whole document: the built-in sections, then `extra` (in order).
pub fn document(c: &Checked, sources: &Sources, extra: &[Section]) -> String {
    let m = &c.model;
    let mut sections = vec![
        verdict(c),
        lineage(c, sources),
        discrimination(c),
        calibration(c),
    ];
    if let Some(card) = &m.scorecard {
        sections.push(scorecard(card));
    }
    sections.push(coefficients(c));
    sections.push(privacy(c));
    sections.extend(extra.iter().cloned());

    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Model report: {job}</title><style>{STYLE}</style></head><body>\
         <h1>Model report: {job}</h1>\
         <p class=\"muted\">A {kind} model fitted by the fedcredit consortium under secure aggregation. \
         Every figure below is read from the model file and the round log, which the auditor's replay \
         (<code>fedcredit audit verify</code>) checked before this report was written. \
         The report is signed by the coordinator key in <code>.sig</code> file beside it: \
         check it with <code>fedcredit report verify</code>.</p><nav><ul>",
        job = escape(&m.job_id),
        kind = if m.scorecard.is_some() {
            "points scorecard (logistic regression on WOE)"
        } else {
            "logistic regression"
        },
    );
    for s in &sections {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&s.id),
            escape(&s.title)
        );
    }
    out.push_str("</ul></nav>");
    for s in &sections {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>{}</h2>{}</section>",
            escape(&s.id),
            escape(&s.title),
            s.body
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn verdict(c: &Checked) -> Section {
    let line = c.audit_text.lines().next_back().unwrap_or_default();
    Section {
        id: "verdict".into(),
        title: "Audit verdict".into(),
        body: format!(
            "<p class=\"verdict\" id=\"audit-verdict\">{}</p>\
             <p>The round log was replayed by the auditor: its hash chain and every signature, \
             every unmasking, every sum and model step recomputed from the members' signed inputs; \
             the published model equals the replay's, and model.json equals the published model.</p>\
             <details><summary>The auditor's full report</summary><pre>{}</pre></details>",
            escape(line),
            escape(&c.audit_text)
        ),
    }
}

fn lineage(c: &Checked, sources: &Sources) -> Section {
    let m = &c.model;
    let t = &c.timeline;
    let completed = c
        .audit
        .attempts
        .iter()
        .filter(|a| matches!(a.status, fedcredit_audit::AttemptStatus::Ok { .. }))
        .count();
    let mut rows = vec![
        vec![txt("job id"), code(&m.job_id)],
        vec![txt("job kind"), txt(&c.job_kind)],
        vec![
            txt("job spec hash (SHA-256)"),
            (
                format!(
                    "<code id=\"spec-hash\">{}</code><br><span class=\"muted\">the same in the consortium's job spec, model.json and the log's first record</span>",
                    escape(&c.spec_hash)
                ),
                false,
            ),
        ],
        vec![txt("coordinator key"), code(&c.coordinator_key)],
        vec![
            txt("members (the log's roster)"),
            txt(&t.job.members.join(", ")),
        ],
        vec![
            txt("threshold / minimum cohort"),
            txt(&format!("{} / {}", t.job.threshold, t.job.min_cohort)),
        ],
    ];
    if let Some(ms) = &c.membership {
        rows.push(vec![
            txt("rows in the model from"),
            txt(&ms.contributed.join(", ")),
        ]);
        if !ms.dropped.is_empty() {
            let d: Vec<String> = ms
                .dropped
                .iter()
                .map(|d| format!("{} (from round {}: {})", d.id, d.from_round, d.reason))
                .collect();
            rows.push(vec![txt("dropped"), txt(&d.join("; "))]);
        }
        if !ms.never_joined.is_empty() {
            let d: Vec<String> = ms
                .never_joined
                .iter()
                .map(|a| format!("{} ({})", a.id, a.reason))
                .collect();
            rows.push(vec![txt("never joined"), txt(&d.join("; "))]);
        }
    }
    rows.extend([
        vec![
            txt("rounds"),
            txt(&format!(
                "{completed} published round attempts of {}; {} optimization rounds ({}), {}",
                c.audit.attempts.len(),
                m.rounds,
                serde_json::to_value(m.optimizer)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if m.converged {
                    "converged"
                } else {
                    "not converged"
                }
            )),
        ],
        vec![
            txt("round log"),
            txt(&format!(
                "{}: {} records, {} bytes",
                sources.log, c.audit.records, c.log_bytes
            )),
        ],
        vec![txt("log's final record hash"), code(&c.final_hash)],
        vec![txt("log file SHA-256"), code(&c.log_sha256)],
        vec![txt("model file"), txt(&sources.model)],
        vec![
            txt("consortium file"),
            txt(&match &sources.job {
                Some(job) => format!("{} with the job of {job}", sources.consortium),
                None => sources.consortium.clone(),
            }),
        ],
    ]);
    Section {
        id: "lineage".into(),
        title: "Lineage".into(),
        body: table(Some("lineage-table"), &["", ""], &rows),
    }
}

fn discrimination(c: &Checked) -> Section {
    let m = &c.model;
    let mut body = String::new();
    match m.metrics {
        Some(x) => body.push_str(&table(
            Some("metrics"),
            &["AUC", "KS", "log-loss", "default rate", "held-out rows"],
            &[vec![
                nc(num(x.auc, 4)),
                nc(num(x.ks, 4)),
                nc(format!("{:.4}", x.logloss)),
                nc(format!("{:.4}", x.default_rate)),
                nc(format!("{:.0}", x.n)),
            ]],
        )),
        None => body.push_str("<p>No held-out rows: the job had no evaluation round.</p>"),
    }
    match (&c.curves, m.metrics.and_then(|x| x.auc)) {
        (Some(curves), Some(auc)) => {
            body.push_str(
                "<p class=\"muted\">Drawn from the evaluation round's published score histograms \
                 (pooled over the members' held-out rows; no score left a member).</p><div class=\"charts\">",
            );
            body.push_str(&charts::roc(curves, auc));
            body.push_str(&charts::ks(curves));
            body.push_str(&charts::distribution(curves));
            body.push_str("</div>");
        }
        _ => body
            .push_str("<p>No curves: the evaluation round holds one class only, or none ran.</p>"),
    }
    Section {
        id: "discrimination".into(),
        title: "Discrimination: ROC, KS, score distribution".into(),
        body,
    }
}

fn calibration(c: &Checked) -> Section {
    let body = match &c.model.calibration {
        None => "<p>No calibration table: the job had no held-out rows.</p>".to_owned(),
        Some(cal) => {
            let rows: Vec<Vec<(String, bool)>> = cal
                .bands
                .iter()
                .map(|b| {
                    vec![
                        txt(&format!("{:.3}–{:.3}", b.low, b.high)),
                        nc(format!("{:.0}", b.n)),
                        nc(format!("{:.0}", b.defaults)),
                        nc(format!("{:.4}", b.default_rate)),
                        nc(format!("{:.4}", b.mean_predicted)),
                    ]
                })
                .collect();
            format!(
                "<div class=\"charts\">{}</div>\
                 <p>Brier score <b>{:.4}</b>; Hosmer–Lemeshow χ² <b>{:.2}</b> with {} degrees of freedom, p = <b>{:.3}</b> \
                 (small values say the model is miscalibrated).</p>{}",
                charts::calibration(cal),
                cal.brier,
                cal.hosmer_lemeshow,
                cal.hl_df,
                cal.hl_p_value,
                table(
                    Some("calibration-table"),
                    &[
                        "score band",
                        "rows",
                        "defaults",
                        "observed default rate",
                        "mean predicted"
                    ],
                    &rows
                )
            )
        }
    };
    Section {
        id: "calibration".into(),
        title: "Calibration".into(),
        body,
    }
}

/// A bin's values as text: `[low, high)`, categories, or `missing`.
fn bin_values(v: &BinValues) -> String {
    match v {
        BinValues::Edges([lo, hi]) => format!(
            "[{}, {})",
            lo.map_or_else(|| "−∞".into(), |x| format!("{x}")),
            hi.map_or_else(|| "+∞".into(), |x| format!("{x}"))
        ),
        BinValues::Categories(cats) => cats.join(", "),
        BinValues::Missing(_) => "missing".into(),
    }
}

fn scorecard(card: &Scorecard) -> Section {
    let mut body = table(
        Some("points-scale"),
        &[
            "PDO",
            "base score",
            "base odds (good:bad)",
            "factor",
            "offset",
            "intercept (WOE model)",
        ],
        &[vec![
            nc(format!("{}", card.pdo)),
            nc(format!("{}", card.base_score)),
            nc(format!("{}", card.base_odds)),
            nc(format!("{:.4}", card.factor)),
            nc(format!("{:.4}", card.offset)),
            nc(format!("{:.6}", card.intercept)),
        ]],
    );
    body.push_str("<h3>Characteristics by information value</h3>");
    let sorted = card.by_iv();
    let rows: Vec<Vec<(String, bool)>> = sorted
        .iter()
        .map(|ch| {
            vec![
                txt(&ch.name),
                nc(format!("{:.4}", ch.iv)),
                txt(&format!("{:?}", ch.trend).to_lowercase()),
                nc(format!("{:.6}", ch.coefficient)),
                nc(format!("{}", ch.bins.len())),
            ]
        })
        .collect();
    body.push_str(&table(
        Some("characteristics"),
        &["characteristic", "IV", "WOE trend", "coefficient", "bins"],
        &rows,
    ));
    body.push_str(
        "<p class=\"muted\">WOE = ln(share of goods / share of bads); a bin's IV contribution is \
         (share of goods − share of bads) × WOE. Counts are pooled over the members.</p>",
    );
    for ch in sorted {
        let (goods, bads) = ch
            .bins
            .iter()
            .fold((0.0, 0.0), |(g, b), bin| (g + bin.good, b + bin.bad));
        let rows: Vec<Vec<(String, bool)>> = ch
            .bins
            .iter()
            .map(|bin| {
                let share = |x: f64, total: f64| if total > 0.0 { x / total } else { 0.0 };
                let iv = (share(bin.good, goods) - share(bin.bad, bads)) * bin.woe;
                let rate = share(bin.bad, bin.good + bin.bad);
                vec![
                    txt(&bin_values(&bin.values)),
                    nc(format!("{:.0}", bin.good)),
                    nc(format!("{:.0}", bin.bad)),
                    nc(format!("{rate:.4}")),
                    nc(format!("{:.4}", bin.woe)),
                    nc(format!("{iv:.4}")),
                    nc(format!("{:.2}", bin.points)),
                ]
            })
            .collect();
        let _ = write!(
            body,
            "<h3>{} <span class=\"muted\">(IV {:.4})</span></h3>",
            escape(&ch.name),
            ch.iv
        );
        body.push_str(&table(
            None,
            &["bin", "good", "bad", "bad rate", "WOE", "IV", "points"],
            &rows,
        ));
    }
    Section {
        id: "scorecard".into(),
        title: "Scorecard".into(),
        body,
    }
}

fn coefficients(c: &Checked) -> Section {
    let m = &c.model;
    let mut rows = vec![vec![
        txt("(intercept)"),
        nc(format!("{:.6}", m.original.intercept)),
        nc(format!("{:.6}", m.standardized.intercept)),
    ]];
    for (i, f) in m.features.iter().enumerate() {
        rows.push(vec![
            txt(f),
            nc(num(m.original.coefficients.get(i).copied(), 6)),
            nc(num(m.standardized.coefficients.get(i).copied(), 6)),
        ]);
    }
    Section {
        id: "coefficients".into(),
        title: "Coefficients".into(),
        body: format!(
            "<p class=\"muted\">logit P(default) on the encoded features; L2 strength {}. These are the \
             values the round log published, exactly.</p>{}",
            m.l2,
            table(
                Some("coefficients-table"),
                &["feature", "original units", "standardized"],
                &rows
            )
        ),
    }
}

fn privacy(c: &Checked) -> Section {
    let body = match (&c.model.privacy, &c.audit.privacy) {
        (None, None) => "<p id=\"privacy-none\">none: exact sums. No differential-privacy noise was added; \
             each published sum is exact (secure aggregation hides every member's own contribution, \
             not the sums).</p>"
            .to_owned(),
        (model, audit) => {
            let row = |who: &str, p: &fedcredit_model::privacy::PrivacyReport| {
                vec![
                    txt(who),
                    nc(format!("{:.4}", p.epsilon_spent)),
                    nc(format!("{}", p.epsilon)),
                    nc(format!("{:e}", p.delta)),
                    nc(format!("{:.6}", p.rho_spent)),
                    nc(format!("{}", p.rounds)),
                ]
            };
            let mut rows = Vec::new();
            if let Some(p) = model {
                rows.push(row("model.json", p));
            }
            if let Some(p) = audit {
                rows.push(row("recomputed by the auditor from the announced noise", p));
            }
            format!(
                "<p>(ε, δ)-differential privacy for the whole job (distributed discrete Gaussian noise).</p>{}",
                table(
                    Some("privacy-table"),
                    &["source", "ε spent", "ε budget", "δ", "zCDP ρ spent", "rounds charged"],
                    &rows
                )
            )
        }
    };
    Section {
        id: "privacy".into(),
        title: "Privacy budget".into(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn bins_read_as_intervals_categories_or_missing() {
        assert_eq!(
            bin_values(&BinValues::Edges([None, Some(2.5)])),
            "[−∞, 2.5)"
        );
        assert_eq!(bin_values(&BinValues::Edges([Some(1.0), None])), "[1, +∞)");
        assert_eq!(
            bin_values(&BinValues::Categories(vec!["a".into(), "<b>".into()])),
            "a, <b>"
        );
        assert_eq!(bin_values(&BinValues::Missing(true)), "missing");
    }

    #[test]
    fn tables_escape_headers_and_ids() {
        let t = table(Some("x\"y"), &["<h>"], &[vec![txt("<c>")]]);
        assert!(t.contains("id=\"x&quot;y\""), "{t}");
        assert!(t.contains("<th>&lt;h&gt;</th>"), "{t}");
        assert!(t.contains("<td>&lt;c&gt;</td>"), "{t}");
    }
}
