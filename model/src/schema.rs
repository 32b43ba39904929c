//! The job schema: which columns are features, how they are encoded, and
//! which label values are the positive (default) event and the negative one.
//!
//! A schema is written by hand in the job's TOML (this crate only derives
//! `Serialize`/`Deserialize`) or inferred from a CSV by [`Schema::infer`]
//! for `fedcredit local`. [`Encoder`](crate::encoder::Encoder) turns CSV
//! records into encoded rows.
//!
//! Encoding: features are laid out in schema order. A numeric feature is one
//! column; a categorical feature with categories `[c0, c1, …, ck]` is one-hot
//! encoded into `k` columns named `name=c1 … name=ck`; `c0` is the reference
//! level and gets no column.
//!
//! ```
//! use fedcredit_model::schema::Schema;
//!
//! let schema: Schema = serde_json::from_str(r#"{
//!     "label": { "column": "creditability", "positive": "bad", "negative": "good" },
//!     "features": [
//!         { "kind": "numeric", "name": "duration_in_month" },
//!         { "kind": "categorical", "name": "purpose",
//!           "categories": ["business", "car (new)", "education"] }
//!     ]
//! }"#).unwrap();
//! assert_eq!(schema.encoded_width(), 3);
//! assert_eq!(
//!     schema.encoded_names(),
//!     ["duration_in_month", "purpose=car (new)", "purpose=education"]
//! );
//! assert_eq!(schema.hash().len(), 64);
//! ```

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// Which column holds the label, which of its values is the positive
/// (default) event, and which values are negative.
///
/// The spec must say how negatives are recognised, so that a typo (`BAD`
/// for `bad`) or another coding (`0`/`1`) is never silently counted as
/// negative. In TOML, exactly one of:
///
/// ```toml
/// [job.schema.label]
/// column = "creditability"
/// positive = "bad"
/// negative = "good"              # the one negative value: any other value is an error
/// # negatives = "all-others"     # or: every non-empty value other than `bad` is negative
/// ```
///
/// An empty label cell is always an error.
///
/// ```
/// use fedcredit_model::schema::{LabelSpec, Negatives};
///
/// let spec: LabelSpec = toml::from_str(
///     "column = \"y\"\npositive = \"bad\"\nnegative = \"good\"",
/// ).unwrap();
/// assert_eq!(spec, LabelSpec::binary("y", "bad", "good"));
/// let spec: LabelSpec = toml::from_str(
///     "column = \"y\"\npositive = \"bad\"\nnegatives = \"all-others\"",
/// ).unwrap();
/// assert_eq!(spec.negatives, Negatives::AllOthers);
/// // Saying neither is refused, with the two ways to say it.
/// let err = toml::from_str::<LabelSpec>("column = \"y\"\npositive = \"bad\"").unwrap_err();
/// assert!(err.to_string().contains("negatives = \"all-others\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawLabelSpec", into = "RawLabelSpec")]
pub struct LabelSpec {
    /// Name of the label column in the CSV header.
    pub column: String,
    /// The value that marks the positive class (label 1), e.g. `"bad"`.
    pub positive: String,
    /// Which values mark the negative class (label 0).
    pub negatives: Negatives,
}

/// Which label values are negative (label 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negatives {
    /// Exactly this value (`negative = "good"`); any value that is neither
    /// it nor the positive value is an error.
    Value(String),
    /// Every non-empty value other than the positive one
    /// (`negatives = "all-others"`), stated explicitly in the spec.
    AllOthers,
}

impl LabelSpec {
    /// Two declared values: `positive` is label 1, `negative` label 0, anything else an error.
    pub fn binary(
        column: impl Into<String>,
        positive: impl Into<String>,
        negative: impl Into<String>,
    ) -> Self {
        Self {
            column: column.into(),
            positive: positive.into(),
            negatives: Negatives::Value(negative.into()),
        }
    }

    /// One declared value: `positive` is label 1, every other non-empty value label 0.
    pub fn all_others(column: impl Into<String>, positive: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            positive: positive.into(),
            negatives: Negatives::AllOthers,
        }
    }

    /// The accepted values, for messages: "`bad` (positive) or `good` (negative)".
    pub fn accepted(&self) -> String {
        match &self.negatives {
            Negatives::Value(neg) => {
                format!("`{}` (positive) or `{neg}` (negative)", self.positive)
            }
            Negatives::AllOthers => format!(
                "`{}` (positive) or any other non-empty value (negative)",
                self.positive
            ),
        }
    }
}

/// The label spec as written: `negative` and `negatives` are both optional
/// here, and [`LabelSpec::try_from`] insists on exactly one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelSpec {
    column: String,
    positive: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    negative: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    negatives: Option<NegativesKeyword>,
}

/// The only keyword `negatives` takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum NegativesKeyword {
    AllOthers,
}

impl TryFrom<RawLabelSpec> for LabelSpec {
    type Error = ModelError;

    fn try_from(raw: RawLabelSpec) -> Result<Self> {
        let negatives = match (raw.negative, raw.negatives) {
            (Some(value), None) => Negatives::Value(value),
            (None, Some(NegativesKeyword::AllOthers)) => Negatives::AllOthers,
            (None, None) => {
                return Err(ModelError::NegativesUnstated {
                    column: raw.column,
                    positive: raw.positive,
                });
            }
            (Some(_), Some(_)) => {
                return Err(ModelError::InvalidLabelSpec {
                    column: raw.column,
                    reason: "give either `negative = \"<value>\"` or `negatives = \"all-others\"`, \
                             not both",
                });
            }
        };
        Ok(Self {
            column: raw.column,
            positive: raw.positive,
            negatives,
        })
    }
}

impl From<LabelSpec> for RawLabelSpec {
    fn from(spec: LabelSpec) -> Self {
        let (negative, negatives) = match spec.negatives {
            Negatives::Value(v) => (Some(v), None),
            Negatives::AllOthers => (None, Some(NegativesKeyword::AllOthers)),
        };
        Self {
            column: spec.column,
            positive: spec.positive,
            negative,
            negatives,
        }
    }
}

/// One input column and how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// Used as is (must parse as a finite number in every row).
    Numeric {
        /// Column name in the CSV header.
        name: String,
    },
    /// One-hot encoded; the first category is the reference level (dropped).
    Categorical {
        /// Column name in the CSV header.
        name: String,
        /// Allowed values; `categories[0]` is the reference level.
        categories: Vec<String>,
    },
}

impl Feature {
    /// The column name.
    pub fn name(&self) -> &str {
        match self {
            Feature::Numeric { name } | Feature::Categorical { name, .. } => name,
        }
    }

    /// How many encoded columns this feature produces.
    pub fn encoded_width(&self) -> usize {
        match self {
            Feature::Numeric { .. } => 1,
            Feature::Categorical { categories, .. } => categories.len().saturating_sub(1),
        }
    }
}

/// The job schema: label and ordered features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The label column and its positive value.
    pub label: LabelSpec,
    /// Features in encoding order.
    pub features: Vec<Feature>,
}

impl Schema {
    /// Names of the encoded columns, in order: `name` for a numeric feature,
    /// `name=category` for each non-reference category.
    pub fn encoded_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.encoded_width());
        for f in &self.features {
            match f {
                Feature::Numeric { name } => out.push(name.clone()),
                Feature::Categorical { name, categories } => {
                    out.extend(categories.iter().skip(1).map(|c| format!("{name}={c}")));
                }
            }
        }
        out
    }

    /// Number of encoded columns `p` (the model has `p + 1` coefficients).
    pub fn encoded_width(&self) -> usize {
        self.features.iter().map(Feature::encoded_width).sum()
    }

    /// Lower-case hex SHA-256 of the canonical serialisation, which is
    /// `serde_json::to_vec(self)` (fields in declaration order, no
    /// whitespace; the label has `negative` or `negatives`, as written).
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json()))
    }

    /// The bytes [`Schema::hash`] hashes.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serialising plain strings and vectors cannot fail; fall back to the
        // Debug form rather than panic if serde_json ever changed that.
        serde_json::to_vec(self).unwrap_or_else(|e| format!("{self:?}{e}").into_bytes())
    }

    /// Check internal consistency: unique feature names, label not a feature,
    /// non-empty positive value, a non-empty negative value other than the
    /// positive one (when one is declared), at least one unique category per
    /// categorical feature, no values with surrounding whitespace (cells are
    /// trimmed before they are compared).
    pub fn validate(&self) -> Result<()> {
        let label = &self.label;
        if label.positive.trim().is_empty() {
            return Err(ModelError::InvalidLabelSpec {
                column: label.column.clone(),
                reason: "the positive value is empty",
            });
        }
        untrimmed(&label.column, "positive label", &label.positive)?;
        if let Negatives::Value(neg) = &label.negatives {
            if neg.trim().is_empty() {
                return Err(ModelError::InvalidLabelSpec {
                    column: label.column.clone(),
                    reason: "the negative value is empty",
                });
            }
            if neg == &label.positive {
                return Err(ModelError::InvalidLabelSpec {
                    column: label.column.clone(),
                    reason: "the negative value equals the positive value",
                });
            }
            untrimmed(&label.column, "negative label", neg)?;
        }
        let mut names = HashSet::new();
        for f in &self.features {
            let name = f.name();
            if name == label.column {
                return Err(ModelError::InvalidLabelSpec {
                    column: label.column.clone(),
                    reason: "it is also listed as a feature",
                });
            }
            if !names.insert(name) {
                return Err(ModelError::DuplicateFeature {
                    name: name.to_owned(),
                });
            }
            if let Feature::Categorical { categories, .. } = f {
                if categories.is_empty() {
                    return Err(ModelError::NoCategories {
                        column: name.to_owned(),
                    });
                }
                let mut seen = HashSet::new();
                for c in categories {
                    untrimmed(name, "category", c)?;
                    if !seen.insert(c.as_str()) {
                        return Err(ModelError::DuplicateCategory {
                            column: name.to_owned(),
                            value: c.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Infer a schema from a header and rows (for `fedcredit local`).
    ///
    /// Every column except the label becomes a feature, in header order. A
    /// column whose every (trimmed) cell parses as a finite `f64` is
    /// numeric; a column with no such cell is categorical, with categories
    /// = the sorted set of its trimmed values (byte order, which for UTF-8
    /// is Unicode code-point order, the same as Python's `sorted`), the
    /// first one being the reference level; an empty cell there is the
    /// category `""`. A column with both numbers and other cells (an empty
    /// one included) is refused, naming the earliest such cell, as is a
    /// NaN or infinite cell (see [`SchemaInference::declare_categorical`]
    /// for columns of number-like codes).
    ///
    /// ```
    /// use fedcredit_model::schema::{Feature, LabelSpec, Schema};
    ///
    /// let header = ["age", "housing", "y"];
    /// let rows = [["30", "rent", "good"], ["41", "own", "bad"], ["25", "free", "good"]];
    /// let s = Schema::infer(&header, &rows, LabelSpec::binary("y", "bad", "good")).unwrap();
    /// assert_eq!(s.features[0], Feature::Numeric { name: "age".into() });
    /// assert_eq!(s.encoded_names(), ["age", "housing=own", "housing=rent"]);
    /// ```
    pub fn infer<H, R, C>(header: &[H], rows: &[R], label: LabelSpec) -> Result<Schema>
    where
        H: AsRef<str>,
        R: AsRef<[C]>,
        C: AsRef<str>,
    {
        let mut inference = SchemaInference::new(header, label)?;
        for r in rows {
            inference.observe(r.as_ref())?;
        }
        inference.finish()
    }
}

/// [`Schema::infer`] one record at a time, so that a file is never held in
/// memory as strings: per column it keeps whether every cell so far was a
/// finite number, and its distinct trimmed values up to a cap (a
/// categorical column wider than a job allows is refused anyway), so
/// memory is bounded by the header, not the rows.
#[derive(Debug)]
pub struct SchemaInference {
    names: Vec<String>,
    label: LabelSpec,
    /// The label's position in `names` (its cells are not observed).
    label_index: usize,
    columns: Vec<ColumnSeen>,
    rows: usize,
    /// Columns the user declared categorical (by header position): never
    /// numeric, and a number or `NaN` in them is a category like any text.
    declared: BTreeSet<usize>,
    /// The names of the files observed, for [`CellAt::source`].
    sources: Vec<Source>,
}

/// A file observed by a [`SchemaInference`], to name where a cell is.
#[derive(Debug, Clone)]
struct Source {
    name: String,
    /// `true`: [`CellAt::line`] counts data rows (Parquet), else file lines (CSV).
    rows: bool,
}

/// Where an observed record is: a source registered with
/// [`SchemaInference::csv_source`] or [`SchemaInference::row_source`] and
/// its line (CSV) or 1-based data row (Parquet). Ordered by source, then
/// line: the earliest offending cell is named, whatever order parts of the
/// rows are merged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellAt {
    /// The source's index.
    pub source: usize,
    /// Its line or row.
    pub line: u64,
}

/// A source index that names no file: records given to
/// [`SchemaInference::observe`] are named by their row.
const NO_SOURCE: usize = usize::MAX;

#[derive(Debug)]
struct ColumnSeen {
    numeric: bool,
    /// `None` once more than [`MAX_CATEGORIES`] distinct values were seen.
    distinct: Option<BTreeSet<String>>,
    /// Cells that are finite numbers.
    numbers: u64,
    /// The earliest cell that is not a number, and where.
    first_text: Option<(CellAt, String)>,
}

impl ColumnSeen {
    fn new() -> Self {
        Self {
            numeric: true,
            distinct: Some(BTreeSet::new()),
            numbers: 0,
            first_text: None,
        }
    }
}

/// More distinct values than a categorical column can have: its encoding
/// alone would exceed the widest job (`job::MAX_ENCODED_WIDTH` columns).
const MAX_CATEGORIES: usize = crate::job::MAX_ENCODED_WIDTH + 1;

impl SchemaInference {
    /// Starts from the header: names must be unique and include the label.
    pub fn new<H: AsRef<str>>(header: &[H], label: LabelSpec) -> Result<Self> {
        let names: Vec<String> = header.iter().map(|h| h.as_ref().to_owned()).collect();
        let mut seen = HashSet::new();
        for n in &names {
            if !seen.insert(n.as_str()) {
                return Err(ModelError::DuplicateColumn {
                    column: n.clone(),
                    count: names.iter().filter(|m| *m == n).count(),
                });
            }
        }
        let Some(label_index) = names.iter().position(|n| *n == label.column) else {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(crate::encoder::missing_column(
                &refs,
                &label.column,
                "the label",
            ));
        };
        let columns = names.iter().map(|_| ColumnSeen::new()).collect();
        Ok(Self {
            names,
            label,
            label_index,
            columns,
            rows: 0,
            declared: BTreeSet::new(),
            sources: Vec::new(),
        })
    }

    /// Declares `column` categorical: its values are categories even if
    /// they are all numbers, and a column of numbers with some text in it
    /// is what the user meant. Declare before observing any row.
    pub fn declare_categorical(&mut self, column: &str) -> Result<()> {
        let Some(i) = self.names.iter().position(|n| n == column) else {
            let refs: Vec<&str> = self.names.iter().map(String::as_str).collect();
            return Err(crate::encoder::missing_column(
                &refs,
                column,
                "a declared categorical feature",
            ));
        };
        if i == self.label_index {
            return Err(ModelError::InvalidSetting(format!(
                "column `{column}` is the label; only a feature can be declared categorical"
            )));
        }
        self.declared.insert(i);
        Ok(())
    }

    /// Registers a CSV file about to be observed; its records are then
    /// given to [`SchemaInference::observe_at`] with their file lines.
    pub fn csv_source(&mut self, name: impl Into<String>) -> usize {
        self.add_source(name.into(), false)
    }

    /// Registers a Parquet file, whose records are numbered by data row.
    pub fn row_source(&mut self, name: impl Into<String>) -> usize {
        self.add_source(name.into(), true)
    }

    fn add_source(&mut self, name: String, rows: bool) -> usize {
        self.sources.push(Source { name, rows });
        self.sources.len() - 1
    }

    /// How an error names the place `at`.
    fn place(&self, at: CellAt) -> String {
        match self.sources.get(at.source) {
            Some(Source { name, rows: false }) => format!("{name}:{}", at.line),
            Some(Source { name, rows: true }) => format!("{name}: row {}", at.line),
            None => format!("row {}", at.line),
        }
    }

    /// Takes one record, in header order; its place is its row number
    /// among the records observed.
    pub fn observe<C: AsRef<str>>(&mut self, record: &[C]) -> Result<()> {
        let at = CellAt {
            source: NO_SOURCE,
            line: self.rows as u64 + 1,
        };
        self.observe_at(record, at)
    }

    /// Takes one record, in header order, found `at`. A cell that reads as
    /// NaN or an infinity (`NaN`, `inf`, `-Infinity`, `1e999`) is refused
    /// unless its column was declared categorical: it is a missing or
    /// broken value, never a category by accident.
    pub fn observe_at<C: AsRef<str>>(&mut self, record: &[C], at: CellAt) -> Result<()> {
        self.observe_cells(record, at, false)
    }

    /// [`SchemaInference::observe_at`] for a record whose every cell but
    /// the label's is known to be a finite number, trimmed (it was just
    /// encoded with an all-numeric schema, say): the same result, without
    /// testing the cells again.
    pub fn observe_numbers_at<C: AsRef<str>>(&mut self, record: &[C], at: CellAt) -> Result<()> {
        self.observe_cells(record, at, true)
    }

    fn observe_cells<C: AsRef<str>>(
        &mut self,
        record: &[C],
        at: CellAt,
        numbers: bool,
    ) -> Result<()> {
        if record.len() != self.names.len() {
            return Err(ModelError::RecordLength {
                expected: self.names.len(),
                found: record.len(),
            });
        }
        for (i, (cell, column)) in record.iter().zip(&mut self.columns).enumerate() {
            if i == self.label_index {
                continue;
            }
            let value = cell.as_ref().trim();
            let declared = self.declared.contains(&i);
            debug_assert!(
                !numbers || finite_number(value),
                "{value:?} is not a number"
            );
            if numbers || finite_number(value) {
                column.numbers += 1;
            } else {
                if !declared && value.parse::<f64>().is_ok() {
                    return Err(ModelError::NonFiniteValue {
                        column: self.names[i].clone(),
                        value: value.to_owned(),
                    });
                }
                column.numeric = false;
                if column
                    .first_text
                    .as_ref()
                    .is_none_or(|(seen, _)| at < *seen)
                {
                    column.first_text = Some((at, value.to_owned()));
                }
            }
            if let Some(set) = &mut column.distinct
                && !set.contains(value)
            {
                if set.len() >= MAX_CATEGORIES {
                    column.distinct = None;
                } else {
                    set.insert(value.to_owned());
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// A new inference over the same header, with no rows seen: for one
    /// part of the rows, to be [`SchemaInference::merge`]d (e.g. per block
    /// of a file read on several threads).
    pub fn fork(&self) -> Self {
        Self {
            names: self.names.clone(),
            label: self.label.clone(),
            label_index: self.label_index,
            columns: self.columns.iter().map(|_| ColumnSeen::new()).collect(),
            rows: 0,
            declared: self.declared.clone(),
            sources: self.sources.clone(),
        }
    }

    /// Adds what `other` (a [`SchemaInference::fork`] of this one) saw:
    /// the result is what observing both parts' rows in one would give,
    /// in any order.
    pub fn merge(&mut self, other: Self) -> Result<()> {
        if other.names != self.names {
            return Err(ModelError::InvalidSetting(
                "schema inference: merging parts with different headers".into(),
            ));
        }
        if other.sources.len() > self.sources.len() {
            self.sources = other.sources;
        }
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            mine.numeric &= theirs.numeric;
            mine.numbers += theirs.numbers;
            mine.first_text = match (mine.first_text.take(), theirs.first_text) {
                (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
                (a, b) => a.or(b),
            };
            mine.distinct = match (mine.distinct.take(), theirs.distinct) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    (a.len() <= MAX_CATEGORIES).then_some(a)
                }
                _ => None,
            };
        }
        self.rows += other.rows;
        Ok(())
    }

    /// Whether every feature column holds only finite numbers so far and
    /// none was declared categorical: the schema is all numeric if the
    /// rows still to come are numbers too.
    pub fn all_numeric(&self) -> bool {
        self.declared.is_empty()
            && self
                .columns
                .iter()
                .enumerate()
                .all(|(i, c)| i == self.label_index || c.numeric)
    }

    /// Columns (by header position) with more distinct values than any
    /// categorical feature may have: their values are no longer kept.
    pub fn overflowed(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.distinct.is_none())
            .map(|(i, _)| i)
    }

    /// Stops keeping the values of `column` (by header position), known
    /// to overflow from other rows: the merged result is the same, and a
    /// part of the rows need not collect values that will be dropped.
    pub fn forget_values(&mut self, column: usize) {
        if let Some(c) = self.columns.get_mut(column) {
            c.distinct = None;
        }
    }

    /// The schema: every column but the label a feature, in header order;
    /// numeric if every cell was a finite number, categorical with its
    /// sorted distinct values if none was or if it was declared so. A
    /// column with both numbers and other cells is refused
    /// ([`ModelError::MixedColumn`], naming its earliest non-number cell).
    pub fn finish(self) -> Result<Schema> {
        if self.rows == 0 {
            return Err(ModelError::Empty {
                what: "schema inference needs at least one row",
            });
        }
        for (i, column) in self.columns.iter().enumerate() {
            if i == self.label_index || self.declared.contains(&i) || column.numbers == 0 {
                continue;
            }
            if let Some((at, value)) = &column.first_text {
                return Err(ModelError::MixedColumn {
                    at: self.place(*at),
                    column: self.names[i].clone(),
                    value: value.clone(),
                    numbers: column.numbers,
                    cells: self.rows as u64,
                });
            }
        }
        let mut features = Vec::with_capacity(self.names.len().saturating_sub(1));
        for (i, (name, column)) in self.names.into_iter().zip(self.columns).enumerate() {
            if i == self.label_index {
                continue;
            }
            if column.numeric && !self.declared.contains(&i) {
                features.push(Feature::Numeric { name });
                continue;
            }
            let Some(set) = column.distinct else {
                return Err(ModelError::InvalidSetting(format!(
                    "column `{name}` is not numeric and has more than {MAX_CATEGORIES} distinct \
                     values: as a categorical feature it would exceed the {} encoded columns a \
                     job allows (an id column? leave it out of the files)",
                    crate::job::MAX_ENCODED_WIDTH
                )));
            };
            features.push(Feature::Categorical {
                name,
                categories: set.into_iter().collect(),
            });
        }
        let schema = Schema {
            label: self.label,
            features,
        };
        schema.validate()?;
        Ok(schema)
    }
}

/// `value.parse::<f64>().is_ok_and(f64::is_finite)`, answered without
/// computing the value for the common spellings (sign, digits, a point, an
/// exponent, below 10^300 in magnitude), and by the parser for the rest:
/// inference only needs to know that a cell is a number, which is most of
/// its time on wide numeric files.
fn finite_number(value: &str) -> bool {
    let slow = || value.parse::<f64>().is_ok_and(f64::is_finite);
    let b = value.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - start)
    };
    let i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let (mut i, whole) = digits(i);
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        (i, fraction) = digits(i + 1);
    }
    if whole + fraction == 0 {
        return slow();
    }
    // Digits before the point bound the magnitude from above.
    let mut magnitude = whole as i64;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let negative = b.get(i + 1) == Some(&b'-');
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let (end, n) = digits(i + 1 + sign);
        if n == 0 || n > 4 {
            return slow();
        }
        let exp: i64 = value[i + 1 + sign..end].parse().unwrap_or(i64::MAX);
        magnitude = if negative {
            magnitude - exp
        } else {
            magnitude + exp
        };
        i = end;
    }
    if i != b.len() {
        return slow();
    }
    magnitude < 300 || slow()
}

fn untrimmed(column: &str, what: &'static str, value: &str) -> Result<()> {
    if value.trim() == value {
        Ok(())
    } else {
        Err(ModelError::UntrimmedSchemaValue {
            column: column.to_owned(),
            what,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id-like text column would become thousands of categories: the
    /// streaming inference stops keeping its values past the cap and
    /// refuses it by name, instead of holding every value in memory.
    #[test]
    fn a_text_column_with_too_many_values_is_refused_by_name() {
        let label = LabelSpec::binary("y", "bad", "good");
        let mut inference = SchemaInference::new(&["customer", "age", "y"], label).expect("header");
        for i in 0..(crate::job::MAX_ENCODED_WIDTH + 10) {
            let id = format!("C{i:06}");
            inference
                .observe(&[id.as_str(), "41", "good"])
                .expect("row");
        }
        let e = inference.finish().expect_err("too wide").to_string();
        assert!(
            e.contains("column `customer`") && e.contains("distinct"),
            "{e}"
        );
    }

    /// The quick numeric check agrees with the parser on every spelling.
    #[test]
    fn finite_number_agrees_with_the_parser() {
        use proptest::prelude::*;
        for v in [
            "1",
            "-1.5",
            "+.5",
            "5.",
            ".",
            "-",
            "",
            "e5",
            "1e",
            "1e+",
            "1e-400",
            "1e308",
            "1e309",
            "9e299",
            "0.1e310",
            "1_0",
            "inf",
            "NaN",
            "1e99999",
            "00001e299",
        ] {
            assert_eq!(
                finite_number(v),
                v.parse::<f64>().is_ok_and(f64::is_finite),
                "{v}"
            );
        }
        let long = "9".repeat(310);
        assert!(!finite_number(&long));
        proptest!(ProptestConfig::with_cases(4000), |(v in "[-+]?[0-9]{0,4}(\\.[0-9]{0,3})?([eE][-+]?[0-9]{0,5})?[x. ]?")| {
            prop_assert_eq!(finite_number(&v), v.parse::<f64>().is_ok_and(f64::is_finite), "{}", v);
        });
    }

    /// Any split of the rows into forked parts, merged in any order and
    /// with overflowed columns forgotten early, infers the same schema (or
    /// the same refusal) as observing every row in one.
    #[test]
    fn merged_parts_infer_what_one_pass_infers() {
        use proptest::prelude::*;
        // Mostly ids, so that long inputs overflow the category cap.
        let cell = prop_oneof![
            2 => (0u32..40).prop_map(|v| v.to_string()),
            1 => Just("n/a".to_owned()),
            1 => Just(" 2.5 ".to_owned()),
            6 => (0u32..1_000_000).prop_map(|v| format!("id{v}")),
        ];
        let rows = proptest::collection::vec(proptest::collection::vec(cell, 2), 1..5000);
        let cuts = proptest::collection::vec(0usize..5000, 0..6);
        let config = ProptestConfig::with_cases(64);
        proptest!(config, |(rows in rows, mut cuts in cuts, reverse: bool)| {
            let label = LabelSpec::all_others("y", "bad");
            let header = ["a", "b", "y"];
            // Rows are placed by their line in the whole, as blocks of a file are.
            let full = |rows: &[Vec<String>], first: usize| {
                let mut one = SchemaInference::new(&header, label.clone()).expect("header");
                for (i, r) in rows.iter().enumerate() {
                    let r: Vec<&str> = r.iter().map(String::as_str).collect();
                    let at = CellAt { source: 0, line: (first + i + 2) as u64 };
                    one.observe_at(&[r[0], r[1], "good"], at).expect("row");
                }
                one
            };
            let whole = full(&rows, 0).finish().map_err(|e| e.to_string());
            cuts.iter_mut().for_each(|c| *c = (*c).min(rows.len()));
            cuts.push(0);
            cuts.push(rows.len());
            cuts.sort_unstable();
            let mut parts: Vec<SchemaInference> = cuts
                .windows(2)
                .map(|w| full(&rows[w[0]..w[1]], w[0]))
                .collect();
            if reverse {
                parts.reverse();
            }
            let mut merged = parts[0].fork();
            for mut p in parts {
                let seen: Vec<usize> = merged.overflowed().collect();
                for c in seen {
                    p.forget_values(c);
                }
                merged.merge(p).expect("same header");
            }
            prop_assert_eq!(merged.finish().map_err(|e| e.to_string()), whole);
        });
    }

    #[test]
    fn streaming_inference_sees_a_late_non_number() {
        let label = LabelSpec::binary("y", "bad", "good");
        let mut inference = SchemaInference::new(&["a", "y"], label).expect("header");
        inference.observe(&["1.5", "good"]).expect("row");
        inference.observe(&[" 2 ", "bad"]).expect("row");
        inference.observe(&["n/a", "good"]).expect("row");
        let e = inference.finish().expect_err("a text cell among numbers");
        assert_eq!(
            e.to_string(),
            "row 3: column `a`: `n/a` is not a number, but 2 of the column's 3 cells are: the \
             column looks numeric. If it is numeric, put a number in that cell (or leave the \
             row out); if it is categorical, declare it so (`fedcredit local --categorical a`)"
        );
        let mut inference =
            SchemaInference::new(&["a", "y"], LabelSpec::binary("y", "bad", "good"))
                .expect("header");
        inference.declare_categorical("a").expect("a column");
        let mut csv = inference.fork();
        let source = csv.csv_source("bank-a.csv");
        for (line, cell) in [(2, "1.5"), (3, " 2 "), (4, "n/a")] {
            csv.observe_at(&[cell, "good"], CellAt { source, line })
                .expect("row");
        }
        inference.merge(csv).expect("same header");
        let schema = inference.finish().expect("schema");
        assert_eq!(
            schema.features,
            vec![Feature::Categorical {
                name: "a".into(),
                categories: vec!["1.5".into(), "2".into(), "n/a".into()],
            }]
        );
        let e = SchemaInference::new(&["a", "y"], LabelSpec::binary("y", "bad", "good"))
            .expect("header")
            .observe(&["1"])
            .expect_err("short row");
        assert!(
            e.to_string().contains("record has 1 cells, expected 2"),
            "{e}"
        );
    }

    fn sample() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "age".into() },
                Feature::Categorical {
                    name: "housing".into(),
                    categories: vec!["free".into(), "own".into(), "rent".into()],
                },
            ],
        }
    }

    #[test]
    fn toml_round_trip() {
        let text = r#"
            [label]
            column = "y"
            positive = "bad"
            negative = "good"

            [[features]]
            kind = "numeric"
            name = "age"

            [[features]]
            kind = "categorical"
            name = "housing"
            categories = ["free", "own", "rent"]
        "#;
        let s: Schema = toml::from_str(text).expect("parse");
        assert_eq!(s, sample());
        let back: Schema = toml::from_str(&toml::to_string(&s).expect("ser")).expect("parse");
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = r#"
            [label]
            column = "y"
            positve = "bad"
        "#;
        assert!(toml::from_str::<Schema>(text).is_err());
    }

    /// A label spec must say which values are negative: one value, or
    /// explicitly every other value; saying neither or both is refused with
    /// the way to write it.
    #[test]
    fn label_negatives_must_be_stated() {
        let parse = |extra: &str| {
            toml::from_str::<Schema>(&format!(
                "features = []\n[label]\ncolumn = \"y\"\npositive = \"bad\"\n{extra}"
            ))
        };
        let s = parse("negatives = \"all-others\"").expect("all-others");
        assert_eq!(s.label, LabelSpec::all_others("y", "bad"));
        assert_eq!(
            s.canonical_json(),
            br#"{"label":{"column":"y","positive":"bad","negatives":"all-others"},"features":[]}"#
        );
        let back: Schema = toml::from_str(&toml::to_string(&s).expect("ser")).expect("parse");
        assert_eq!(back, s);
        assert_ne!(
            s.hash(),
            parse("negative = \"good\"").expect("value").hash()
        );

        let err = parse("").expect_err("neither").to_string();
        assert!(
            err.contains(
                "label column `y`: say which values are negative: add `negative = \"<value>\"` \
                 (the one negative value; any other value is then an error) or \
                 `negatives = \"all-others\"` (every non-empty value other than `bad` is negative)"
            ),
            "{err}"
        );
        let err = parse("negative = \"good\"\nnegatives = \"all-others\"")
            .expect_err("both")
            .to_string();
        assert!(err.contains("not both"), "{err}");
        let err = parse("negatives = \"all\"")
            .expect_err("keyword")
            .to_string();
        assert!(err.contains("all-others"), "{err}");
        let err = serde_json::from_str::<LabelSpec>(r#"{"column":"y","positive":"bad"}"#)
            .expect_err("json too")
            .to_string();
        assert!(err.contains("say which values are negative"), "{err}");
    }

    #[test]
    fn names_and_width() {
        let s = sample();
        assert_eq!(s.encoded_width(), 3);
        assert_eq!(s.encoded_names(), ["age", "housing=own", "housing=rent"]);
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let s = sample();
        assert_eq!(s.hash(), s.clone().hash());
        let mut t = s.clone();
        if let Feature::Categorical { categories, .. } = &mut t.features[1] {
            categories.swap(0, 1);
        }
        assert_ne!(s.hash(), t.hash());
        assert_eq!(
            s.canonical_json(),
            br#"{"label":{"column":"y","positive":"bad","negative":"good"},"features":[{"kind":"numeric","name":"age"},{"kind":"categorical","name":"housing","categories":["free","own","rent"]}]}"#
        );
    }

    #[test]
    fn validate_catches_mistakes() {
        let mut s = sample();
        s.features.push(Feature::Numeric { name: "age".into() });
        assert!(matches!(
            s.validate(),
            Err(ModelError::DuplicateFeature { .. })
        ));

        let mut s = sample();
        s.features.push(Feature::Numeric { name: "y".into() });
        assert!(matches!(
            s.validate(),
            Err(ModelError::InvalidLabelSpec { .. })
        ));

        let mut s = sample();
        s.features[1] = Feature::Categorical {
            name: "housing".into(),
            categories: vec![],
        };
        assert!(matches!(s.validate(), Err(ModelError::NoCategories { .. })));

        let mut s = sample();
        s.features[1] = Feature::Categorical {
            name: "housing".into(),
            categories: vec!["own".into(), "own".into()],
        };
        assert!(matches!(
            s.validate(),
            Err(ModelError::DuplicateCategory { .. })
        ));

        let mut s = sample();
        s.features[1] = Feature::Categorical {
            name: "housing".into(),
            categories: vec!["own ".into()],
        };
        assert!(matches!(
            s.validate(),
            Err(ModelError::UntrimmedSchemaValue { .. })
        ));

        let mut s = sample();
        s.label.positive = String::new();
        assert!(matches!(
            s.validate(),
            Err(ModelError::InvalidLabelSpec { .. })
        ));

        for (negative, what) in [
            ("", "the negative value is empty"),
            ("bad", "the negative value equals the positive value"),
        ] {
            let mut s = sample();
            s.label.negatives = Negatives::Value(negative.into());
            assert_eq!(
                s.validate(),
                Err(ModelError::InvalidLabelSpec {
                    column: "y".into(),
                    reason: what
                })
            );
        }
        let mut s = sample();
        s.label.negatives = Negatives::Value(" good".into());
        assert!(matches!(
            s.validate(),
            Err(ModelError::UntrimmedSchemaValue { .. })
        ));

        assert_eq!(sample().validate(), Ok(()));
    }

    /// Numbers make a numeric column and text a categorical one; a column
    /// of both, or a NaN, is what a user declares categorical (and was, by
    /// accident, categorical without a word before).
    #[test]
    fn infer_numeric_and_categorical() {
        let header = ["n", "c", "y", "mixed", "withnan"];
        let rows = [
            ["1.5", "b", "bad", "3", "1"],
            [" 2 ", "a", "good", "x", "NaN"],
            ["-3e2", "b", "good", "4", "2"],
        ];
        let label = LabelSpec::binary("y", "bad", "good");
        let e = Schema::infer(&header, &rows, label.clone()).expect_err("a NaN");
        assert_eq!(
            e.to_string(),
            "column `withnan`: value `NaN` is not finite, expected a finite number"
        );
        let mut inference = SchemaInference::new(&header, label).expect("header");
        inference.declare_categorical("mixed").expect("a column");
        inference.declare_categorical("withnan").expect("a column");
        for r in &rows {
            inference.observe(r).expect("row");
        }
        let s = inference.finish().expect("infer");
        assert_eq!(
            s.features,
            vec![
                Feature::Numeric { name: "n".into() },
                Feature::Categorical {
                    name: "c".into(),
                    categories: vec!["a".into(), "b".into()]
                },
                Feature::Categorical {
                    name: "mixed".into(),
                    categories: vec!["3".into(), "4".into(), "x".into()]
                },
                Feature::Categorical {
                    name: "withnan".into(),
                    categories: vec!["1".into(), "2".into(), "NaN".into()]
                },
            ]
        );
    }

    /// Every spelling the parser reads as NaN or an infinity is refused in
    /// an undeclared column; only the label and feature names can be declared.
    #[test]
    fn non_finite_cells_are_refused_and_declarations_checked() {
        let label = LabelSpec::binary("y", "bad", "good");
        for v in ["nan", "-inf", "+Infinity", "1e999"] {
            let mut inference = SchemaInference::new(&["a", "y"], label.clone()).expect("header");
            let e = inference.observe(&[v, "good"]).expect_err(v);
            assert!(matches!(e, ModelError::NonFiniteValue { .. }), "{v}: {e}");
        }
        let mut inference = SchemaInference::new(&["a", "y"], label).expect("header");
        assert!(matches!(
            inference.declare_categorical("b"),
            Err(ModelError::MissingColumn { .. })
        ));
        let e = inference.declare_categorical("y").expect_err("the label");
        assert!(e.to_string().contains("`y` is the label"), "{e}");
    }

    #[test]
    fn infer_errors() {
        let rows = [["1", "bad"]];
        assert!(matches!(
            Schema::infer(&["a", "b"], &rows, LabelSpec::binary("y", "bad", "good")),
            Err(ModelError::MissingColumn { .. })
        ));
        assert!(matches!(
            Schema::infer(&["a", "a"], &rows, LabelSpec::binary("a", "bad", "good")),
            Err(ModelError::DuplicateColumn { count: 2, .. })
        ));
        let empty: [[&str; 2]; 0] = [];
        assert!(matches!(
            Schema::infer(&["a", "y"], &empty, LabelSpec::binary("y", "bad", "good")),
            Err(ModelError::Empty { .. })
        ));
        assert!(matches!(
            Schema::infer(
                &["a", "y"],
                &[vec!["1"]],
                LabelSpec::binary("y", "bad", "good")
            ),
            Err(ModelError::RecordLength {
                expected: 2,
                found: 1
            })
        ));
    }
}
