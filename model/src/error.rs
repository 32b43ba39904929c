//! The crate's error type.
//!
//! Errors about data name the column, the offending value and what was
//! expected; the caller (who knows the file and the line) wraps them.

use thiserror::Error;

/// Everything that can go wrong in `fedcredit-model`.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A job setting or a model task is not acceptable.
    #[error("{0}")]
    InvalidSetting(String),

    /// A column the schema needs is not in the CSV header.
    #[error("column `{column}` is missing from the header (the schema needs it as {role})")]
    MissingColumn {
        /// The column name the schema asked for.
        column: String,
        /// What the schema uses it for ("the label", "a numeric feature", ...).
        role: &'static str,
    },

    /// A needed column is missing and the header is a single field that
    /// looks semicolon- or tab-separated: the file is not comma-separated.
    #[error(
        "the header is a single column `{}`, which looks {separator}-separated; fedcredit reads \
         comma-separated CSV. Convert it, e.g.: {}",
        shortened(header, 60),
        convert_hint(separator)
    )]
    NotCommaSeparated {
        /// The header line as one field.
        header: String,
        /// "semicolon" or "tab".
        separator: &'static str,
    },

    /// A column the schema needs appears more than once in the header.
    #[error("column `{column}` appears {count} times in the header, expected exactly once")]
    DuplicateColumn {
        /// The ambiguous column name.
        column: String,
        /// How many times it appears.
        count: usize,
    },

    /// A record does not have one cell per header column.
    #[error("record has {found} cells, expected {expected} (one per header column)")]
    RecordLength {
        /// Number of header columns.
        expected: usize,
        /// Number of cells in the record.
        found: usize,
    },

    /// A categorical cell holds a value that is not in the schema's category list.
    #[error(
        "column `{column}`: value `{value}` is not a listed category, expected one of {}",
        quoted_list(expected)
    )]
    UnknownCategory {
        /// The categorical column.
        column: String,
        /// The value found in the cell.
        value: String,
        /// The categories the schema lists, reference level first.
        expected: Vec<String>,
    },

    /// A numeric cell is empty (or only whitespace).
    #[error("column `{column}`: empty cell, expected a number")]
    EmptyNumeric {
        /// The numeric column.
        column: String,
    },

    /// A numeric cell does not parse as a number.
    #[error("column `{column}`: value `{value}` is not a number")]
    NotANumber {
        /// The numeric column.
        column: String,
        /// The value found in the cell.
        value: String,
    },

    /// A numeric cell parses to NaN or an infinity.
    #[error("column `{column}`: value `{value}` is not finite, expected a finite number")]
    NonFiniteValue {
        /// The numeric column.
        column: String,
        /// The value found in the cell.
        value: String,
    },

    /// Schema inference: a column holds numbers and, in some cells, text
    /// (or empty cells), and was not declared categorical. Either a cell is
    /// wrong (`abc`, `NA`, `?` in a numeric column), or the column is a
    /// category whose codes look like numbers; only the user knows which.
    #[error("{}", mixed_column_message(at, column, value, *numbers, *cells))]
    MixedColumn {
        /// Where the first non-number cell is (`file:line`, `file: row N`, or `row N`).
        at: String,
        /// The column.
        column: String,
        /// That cell's (trimmed) value.
        value: String,
        /// Cells of the column that are finite numbers.
        numbers: u64,
        /// Cells of the column in all.
        cells: u64,
    },

    /// The label cell is empty (or only whitespace).
    #[error("label column `{column}`: empty cell, expected {expected}")]
    EmptyLabel {
        /// The label column.
        column: String,
        /// The accepted values, as [`crate::LabelSpec::accepted`] words them.
        expected: String,
    },

    /// The label cell is neither the positive value nor the declared negative value.
    #[error(
        "label column `{column}`: value `{value}` is neither `{positive}` (positive) nor \
         `{negative}` (negative){}",
        case_hint(value, positive, negative)
    )]
    UnexpectedLabel {
        /// The label column.
        column: String,
        /// The value found in the cell.
        value: String,
        /// The value that marks the positive class.
        positive: String,
        /// The value the schema declares for the negative class.
        negative: String,
    },

    /// The label spec does not say which values are negative.
    #[error(
        "invalid schema: label column `{column}`: say which values are negative: add \
         `negative = \"<value>\"` (the one negative value; any other value is then an error) \
         or `negatives = \"all-others\"` (every non-empty value other than `{positive}` is \
         negative)"
    )]
    NegativesUnstated {
        /// The label column.
        column: String,
        /// The declared positive value.
        positive: String,
    },

    /// The pooled training rows (over all parties) hold only one label class.
    #[error(
        "the pooled data has no {class} rows ({values} in column `{column}`), so no model \
         can be fitted; check the label spec against the data"
    )]
    PooledClassMissing {
        /// "positive" or "negative".
        class: &'static str,
        /// The label value(s) of that class, e.g. "label `bad`".
        values: String,
        /// The label column.
        column: String,
    },

    /// Two features of the schema share a name.
    #[error("invalid schema: feature `{name}` is listed more than once")]
    DuplicateFeature {
        /// The repeated feature name.
        name: String,
    },

    /// A categorical feature lists no categories.
    #[error("invalid schema: categorical feature `{column}` lists no categories")]
    NoCategories {
        /// The categorical column.
        column: String,
    },

    /// A categorical feature lists the same category twice.
    #[error(
        "invalid schema: categorical feature `{column}` lists category `{value}` more than once"
    )]
    DuplicateCategory {
        /// The categorical column.
        column: String,
        /// The repeated category.
        value: String,
    },

    /// A schema value has leading or trailing whitespace, so no (trimmed) cell could match it.
    #[error(
        "invalid schema: {what} `{value}` of column `{column}` has leading or trailing whitespace (cells are trimmed)"
    )]
    UntrimmedSchemaValue {
        /// The column it belongs to.
        column: String,
        /// Which value ("category", "positive label", ...).
        what: &'static str,
        /// The offending value.
        value: String,
    },

    /// The schema's label column is also listed as a feature, or its label values are unusable.
    #[error("invalid schema: label column `{column}`: {reason}")]
    InvalidLabelSpec {
        /// The label column.
        column: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Inputs whose lengths or shapes must agree do not.
    #[error("{what}: expected length {expected}, found {found}")]
    DimensionMismatch {
        /// Which input.
        what: &'static str,
        /// The length implied by the other inputs.
        expected: usize,
        /// The length received.
        found: usize,
    },

    /// There is nothing to compute from (no rows, no parties, a zero count).
    #[error("nothing to compute from: {what}")]
    Empty {
        /// What was empty.
        what: &'static str,
    },

    /// An input that must be finite holds NaN or an infinity.
    #[error("{what} is not finite at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// The first offending index.
        index: usize,
    },

    /// A numeric parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is allowed.
        reason: String,
    },

    /// The penalized Hessian is not (numerically) positive definite.
    #[error(
        "Hessian is not positive definite: Cholesky pivot {pivot} ({}) is {value:e}; \
         use l2 > 0 or drop collinear / constant columns",
        pivot_name(*pivot)
    )]
    NotPositiveDefinite {
        /// Index of the failing pivot (0 = intercept, j = encoded feature j-1).
        pivot: usize,
        /// The pivot value (≤ the tolerance).
        value: f64,
    },

    /// A 0/1 label is something else.
    #[error("label at index {index} is {value}, expected 0 or 1")]
    InvalidLabel {
        /// Position of the label.
        index: usize,
        /// The value found.
        value: f64,
    },

    /// A score is not a probability.
    #[error("score at index {index} is {value}, expected a probability in [0, 1]")]
    ScoreOutOfRange {
        /// Position of the score.
        index: usize,
        /// The value found.
        value: f64,
    },

    /// A metric needs both classes but one is absent.
    #[error("{what} needs both classes, found {n_pos} positive and {n_neg} negative")]
    SingleClass {
        /// Which metric.
        what: &'static str,
        /// Positive count.
        n_pos: f64,
        /// Negative count.
        n_neg: f64,
    },

    /// An aggregated vector is internally inconsistent (e.g. histogram total ≠ count).
    #[error("inconsistent aggregate: {0}")]
    InconsistentAggregate(String),

    /// A value falls in none of a scorecard characteristic's bins (e.g. a
    /// missing value where the training rows had none).
    #[error("column `{column}`: value `{value}` falls in no bin of the scorecard")]
    OutsideBins {
        /// The characteristic's column.
        column: String,
        /// The value, as read.
        value: String,
    },
}

impl ModelError {
    /// The data column an error is about, if any (for reports of bad rows
    /// that keep column and value apart, e.g. `score --on-error skip`).
    pub fn column(&self) -> Option<&str> {
        match self {
            ModelError::MissingColumn { column, .. }
            | ModelError::DuplicateColumn { column, .. }
            | ModelError::UnknownCategory { column, .. }
            | ModelError::EmptyNumeric { column }
            | ModelError::NotANumber { column, .. }
            | ModelError::NonFiniteValue { column, .. }
            | ModelError::EmptyLabel { column, .. }
            | ModelError::UnexpectedLabel { column, .. }
            | ModelError::OutsideBins { column, .. } => Some(column),
            _ => None,
        }
    }

    /// The offending cell value, if the error is about one cell (`""` for an
    /// empty one).
    pub fn value(&self) -> Option<&str> {
        match self {
            ModelError::UnknownCategory { value, .. }
            | ModelError::NotANumber { value, .. }
            | ModelError::NonFiniteValue { value, .. }
            | ModelError::UnexpectedLabel { value, .. }
            | ModelError::OutsideBins { value, .. } => Some(value),
            ModelError::EmptyNumeric { .. } | ModelError::EmptyLabel { .. } => Some(""),
            _ => None,
        }
    }
}

/// Convenience alias.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

fn pivot_name(pivot: usize) -> String {
    match pivot {
        0 => "the intercept".to_owned(),
        j => format!("encoded feature {}", j - 1),
    }
}

/// A one-line conversion of a `separator`-separated file to comma-separated CSV
/// that keeps quoted cells intact (unlike replacing characters).
fn convert_hint(separator: &str) -> String {
    let delimiter = if separator == "tab" { "\\t" } else { ";" };
    format!(
        "python3 -c \"import csv,sys; csv.writer(sys.stdout).writerows(csv.reader(sys.stdin, \
         delimiter='{delimiter}'))\" < in.csv > out.csv"
    )
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn shortened(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A hint when a label differs from a declared value only in letter case.
fn case_hint(value: &str, positive: &str, negative: &str) -> &'static str {
    if value.eq_ignore_ascii_case(positive) || value.eq_ignore_ascii_case(negative) {
        " (label values are case-sensitive)"
    } else {
        ""
    }
}

fn quoted_list(values: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut out = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        out.push_str(&format!(", … ({} more)", values.len() - SHOWN));
    }
    out
}

/// Error if any value is NaN or infinite.
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// Error unless `found == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(ModelError::DimensionMismatch {
            what,
            expected,
            found,
        })
    }
}

/// [`ModelError::MixedColumn`]'s message: the offending cell, how numeric
/// the column looks, and both ways out.
fn mixed_column_message(at: &str, column: &str, value: &str, numbers: u64, cells: u64) -> String {
    let cell = if value.is_empty() {
        "an empty cell".to_owned()
    } else {
        format!("`{value}`")
    };
    let looks = if 2 * numbers >= cells {
        "the column looks numeric"
    } else {
        "the column mixes numbers and text"
    };
    format!(
        "{at}: column `{column}`: {cell} is not a number, but {numbers} of the column's {cells} \
         cells are: {looks}. If it is numeric, put a number in that cell (or leave the row \
         out); if it is categorical, declare it so (`fedcredit local --categorical {column}`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_category_names_column_value_and_expected() {
        let e = ModelError::UnknownCategory {
            column: "purpose".into(),
            value: "boat".into(),
            expected: vec!["car".into(), "tv".into()],
        };
        let s = e.to_string();
        assert!(s.contains("`purpose`") && s.contains("`boat`") && s.contains("`car`, `tv`"));
    }

    #[test]
    fn long_category_lists_are_shortened() {
        let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let s = quoted_list(&expected);
        assert!(s.ends_with("(8 more)"), "{s}");
    }

    #[test]
    fn pivot_is_named() {
        let e = ModelError::NotPositiveDefinite {
            pivot: 3,
            value: -1e-3,
        };
        assert!(e.to_string().contains("encoded feature 2"));
        let e = ModelError::NotPositiveDefinite {
            pivot: 0,
            value: 0.0,
        };
        assert!(e.to_string().contains("intercept"));
    }
}
