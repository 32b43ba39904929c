//! Turning CSV records into encoded feature rows and 0/1 labels.
//!
//! An [`Encoder`] is built once per file from the schema and the file's
//! header (columns are matched by name, in any order; extra columns are
//! ignored). Each record is then encoded independently. Cells are trimmed of
//! surrounding whitespace before they are interpreted. Errors name the
//! column, the value and what was expected; the caller adds file and line.
//!
//! ```
//! use fedcredit_model::encoder::Encoder;
//! use fedcredit_model::schema::{Feature, LabelSpec, Schema};
//!
//! let schema = Schema {
//!     label: LabelSpec::binary("y", "bad", "good"),
//!     features: vec![
//!         Feature::Numeric { name: "age".into() },
//!         Feature::Categorical {
//!             name: "housing".into(),
//!             categories: vec!["free".into(), "own".into(), "rent".into()],
//!         },
//!     ],
//! };
//! // Columns in a different order than the schema, plus an unused one.
//! let enc = Encoder::new(&schema, &["id", "housing", "y", "age"]).unwrap();
//! let (row, label) = enc.encode(&["17", "rent", "bad", "42"]).unwrap();
//! assert_eq!(row, [42.0, 0.0, 1.0]);
//! assert_eq!(label, 1.0);
//!
//! let err = enc.encode(&["18", "boat", "good", "40"]).unwrap_err();
//! assert!(err.to_string().contains("`housing`: value `boat`"));
//! // A label value the schema does not declare is an error, never a negative.
//! let err = enc.encode(&["19", "own", "BAD", "40"]).unwrap_err();
//! assert!(err.to_string().contains("value `BAD` is neither `bad` (positive) nor `good`"));
//! ```

use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::schema::{Feature, LabelSpec, Negatives, Schema};

#[derive(Debug, Clone)]
enum Slot {
    Numeric {
        col: usize,
        name: String,
        /// Its column in an encoded row.
        out: usize,
    },
    Categorical {
        col: usize,
        name: String,
        /// Output offset of this feature's first (non-reference) column.
        offset: usize,
        /// Category → position in the schema's list (0 = reference level).
        lookup: HashMap<String, usize>,
        categories: Vec<String>,
    },
}

/// One schema feature as a column-at-a-time reader sees it
/// ([`Encoder::feature_columns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureColumn<'a> {
    /// Its position in the schema's features.
    pub feature: usize,
    /// Its position in the header.
    pub column: usize,
    /// Its name.
    pub name: &'a str,
    /// Numeric (one encoded value) or categorical (one indicator per
    /// non-reference category, see [`Encoder::category_into`]).
    pub numeric: bool,
    /// Its first encoded column.
    pub out: usize,
    /// How many encoded columns it has: 1 for a numeric feature, one per
    /// non-reference category for a categorical one.
    pub width: usize,
}

/// Maps records of one CSV file (fixed header) to encoded rows and labels.
#[derive(Debug, Clone)]
pub struct Encoder {
    slots: Vec<Slot>,
    /// `None` for an encoder made by [`Encoder::for_scoring`] on data without labels.
    label_col: Option<usize>,
    label: LabelSpec,
    header_len: usize,
    width: usize,
}

impl Encoder {
    /// Validate the schema and locate its columns in `header`.
    ///
    /// Errors if a needed column is missing or appears more than once.
    pub fn new<H: AsRef<str>>(schema: &Schema, header: &[H]) -> Result<Self> {
        Self::build(schema, header, true)
    }

    /// Like [`Encoder::new`], for scoring new applicants: the label column
    /// may be absent (it is ignored either way); use [`Encoder::encode_features_into`].
    pub fn for_scoring<H: AsRef<str>>(schema: &Schema, header: &[H]) -> Result<Self> {
        Self::build(schema, header, false)
    }

    fn build<H: AsRef<str>>(schema: &Schema, header: &[H], labelled: bool) -> Result<Self> {
        schema.validate()?;
        let find = |name: &str, role: &'static str| -> Result<usize> {
            let mut hits = header
                .iter()
                .enumerate()
                .filter(|(_, h)| h.as_ref() == name)
                .map(|(i, _)| i);
            let first = hits
                .next()
                .ok_or_else(|| missing_column(header, name, role))?;
            let extra = hits.count();
            if extra > 0 {
                return Err(ModelError::DuplicateColumn {
                    column: name.to_owned(),
                    count: extra + 1,
                });
            }
            Ok(first)
        };
        let label_col = if labelled {
            Some(find(&schema.label.column, "the label")?)
        } else {
            None
        };
        let mut slots = Vec::with_capacity(schema.features.len());
        let mut offset = 0;
        for f in &schema.features {
            match f {
                Feature::Numeric { name } => {
                    slots.push(Slot::Numeric {
                        col: find(name, "a numeric feature")?,
                        name: name.clone(),
                        out: offset,
                    });
                    offset += 1;
                }
                Feature::Categorical { name, categories } => {
                    let lookup = categories
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), i))
                        .collect();
                    slots.push(Slot::Categorical {
                        col: find(name, "a categorical feature")?,
                        name: name.clone(),
                        offset,
                        lookup,
                        categories: categories.clone(),
                    });
                    offset += f.encoded_width();
                }
            }
        }
        Ok(Self {
            slots,
            label_col,
            label: schema.label.clone(),
            header_len: header.len(),
            width: offset,
        })
    }

    /// Number of encoded columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The schema's features in order, each with its header column and
    /// where it goes in an encoded row: for readers that go column by
    /// column (Parquet) instead of record by record.
    pub fn feature_columns(&self) -> impl Iterator<Item = FeatureColumn<'_>> {
        self.slots
            .iter()
            .enumerate()
            .map(|(feature, slot)| match slot {
                Slot::Numeric { col, name, out } => FeatureColumn {
                    feature,
                    column: *col,
                    name,
                    numeric: true,
                    out: *out,
                    width: 1,
                },
                Slot::Categorical {
                    col,
                    name,
                    offset,
                    categories,
                    ..
                } => FeatureColumn {
                    feature,
                    column: *col,
                    name,
                    numeric: false,
                    out: *offset,
                    width: categories.len() - 1,
                },
            })
    }

    /// The header column of the label (`None` for a scoring encoder).
    pub fn label_column(&self) -> Option<usize> {
        self.label_col
    }

    /// A numeric feature's value as read from a typed column: refused,
    /// as in a CSV cell, when it is NaN or infinite.
    pub fn number(&self, feature: &FeatureColumn<'_>, value: f64) -> Result<f64> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ModelError::NonFiniteValue {
                column: feature.name.to_owned(),
                value: value.to_string(),
            })
        }
    }

    /// Encodes categorical `feature`'s `value` (trimmed, as a CSV cell)
    /// into its columns of `row`.
    pub fn category_into(&self, feature: usize, value: &str, row: &mut [f64]) -> Result<()> {
        let index = self.category_index(feature, value)?;
        let Some(Slot::Categorical {
            offset, categories, ..
        }) = self.slots.get(feature)
        else {
            return Err(not_categorical(feature));
        };
        let dst = &mut row[*offset..*offset + categories.len() - 1];
        dst.fill(0.0);
        if index > 0 {
            dst[index - 1] = 1.0;
        }
        Ok(())
    }

    /// Categorical `feature`'s `value` (trimmed, as a CSV cell) as its
    /// category's position in the schema (0 the reference level, encoded
    /// as all zeros): for readers that add up a column's terms directly.
    pub fn category_index(&self, feature: usize, value: &str) -> Result<usize> {
        let Some(Slot::Categorical {
            name,
            lookup,
            categories,
            ..
        }) = self.slots.get(feature)
        else {
            return Err(not_categorical(feature));
        };
        let value = value.trim();
        lookup
            .get(value)
            .copied()
            .ok_or_else(|| ModelError::UnknownCategory {
                column: name.clone(),
                value: value.to_owned(),
                expected: categories.clone(),
            })
    }

    /// Encode one record into a new row; returns `(row, label)`.
    pub fn encode<S: AsRef<str>>(&self, record: &[S]) -> Result<(Vec<f64>, f64)> {
        let mut row = vec![0.0; self.width];
        let label = self.encode_into(record, &mut row)?;
        Ok((row, label))
    }

    /// Encode one record into `row` (length [`Encoder::width`], e.g. a row of
    /// a preallocated matrix); returns the label. On error `row` may be
    /// partly written.
    pub fn encode_into<S: AsRef<str>>(&self, record: &[S], row: &mut [f64]) -> Result<f64> {
        if record.len() != self.header_len {
            return Err(ModelError::RecordLength {
                expected: self.header_len,
                found: record.len(),
            });
        }
        let Some(label_col) = self.label_col else {
            return Err(ModelError::MissingColumn {
                column: self.label.column.clone(),
                role: "the label",
            });
        };
        let label = self.label(record[label_col].as_ref())?;
        self.encode_features_into(record, row)?;
        Ok(label)
    }

    /// Encodes the features of one record into `row`, ignoring any label.
    pub fn encode_features_into<S: AsRef<str>>(&self, record: &[S], row: &mut [f64]) -> Result<()> {
        if record.len() != self.header_len {
            return Err(ModelError::RecordLength {
                expected: self.header_len,
                found: record.len(),
            });
        }
        crate::error::check_len("encoded row buffer", self.width, row.len())?;
        let mut out = 0;
        for (feature, slot) in self.slots.iter().enumerate() {
            match slot {
                Slot::Numeric { col, name, .. } => {
                    row[out] = parse_numeric(name, record[*col].as_ref())?;
                    out += 1;
                }
                Slot::Categorical {
                    col,
                    offset,
                    categories,
                    ..
                } => {
                    self.category_into(feature, record[*col].as_ref(), row)?;
                    out = offset + categories.len() - 1;
                }
            }
        }
        debug_assert_eq!(out, self.width);
        Ok(())
    }

    /// 1 for the positive value, 0 for a negative one; an empty or
    /// undeclared value is an error naming it. The cell is trimmed.
    pub fn label(&self, cell: &str) -> Result<f64> {
        let value = cell.trim();
        if value.is_empty() {
            return Err(ModelError::EmptyLabel {
                column: self.label.column.clone(),
                expected: self.label.accepted(),
            });
        }
        if value == self.label.positive {
            return Ok(1.0);
        }
        match &self.label.negatives {
            Negatives::Value(neg) if value != neg => Err(ModelError::UnexpectedLabel {
                column: self.label.column.clone(),
                value: value.to_owned(),
                positive: self.label.positive.clone(),
                negative: neg.clone(),
            }),
            Negatives::Value(_) | Negatives::AllOthers => Ok(0.0),
        }
    }
}

/// The error for a column `column` (needed as `role`) that is not in
/// `header`: [`ModelError::NotCommaSeparated`] when the header is a single
/// field holding `;` or a tab (a semicolon- or tab-separated file, the usual
/// cause), else [`ModelError::MissingColumn`].
///
/// ```
/// use fedcredit_model::encoder::missing_column;
///
/// let e = missing_column(&["age;housing;y"], "y", "the label");
/// assert!(e.to_string().contains("looks semicolon-separated"));
/// let e = missing_column(&["age", "housing"], "y", "the label");
/// assert!(e.to_string().starts_with("column `y` is missing"));
/// ```
pub fn missing_column<H: AsRef<str>>(header: &[H], column: &str, role: &'static str) -> ModelError {
    if let [only] = header {
        let only = only.as_ref();
        let (semicolons, tabs) = (only.matches(';').count(), only.matches('\t').count());
        if semicolons + tabs > 0 {
            return ModelError::NotCommaSeparated {
                header: only.to_owned(),
                separator: if tabs > semicolons {
                    "tab"
                } else {
                    "semicolon"
                },
            };
        }
    }
    ModelError::MissingColumn {
        column: column.to_owned(),
        role,
    }
}

fn parse_numeric(column: &str, cell: &str) -> Result<f64> {
    let value = cell.trim();
    if value.is_empty() {
        return Err(ModelError::EmptyNumeric {
            column: column.to_owned(),
        });
    }
    match parse_f64(value) {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(ModelError::NonFiniteValue {
            column: column.to_owned(),
            value: value.to_owned(),
        }),
        Err(_) => Err(ModelError::NotANumber {
            column: column.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// `value.parse::<f64>()`, bit for bit, somewhat faster on the usual
/// cells (~37 vs ~44 ns for a 17-digit decimal here): `fast_float2`
/// (correctly rounded, like the standard
/// library) answers every finite number; anything else (text, an empty
/// cell, NaN, an infinity, a number too large for f64) is left to
/// `str::parse`, so that what is accepted, and which error a cell gets,
/// stay exactly the standard library's (tested on random cells below).
///
/// ```
/// use fedcredit_model::encoder::parse_f64;
///
/// assert_eq!(parse_f64("-0.1").unwrap().to_bits(), (-0.1f64).to_bits());
/// assert!(parse_f64("1e400").unwrap().is_infinite());
/// assert!(parse_f64("1,5").is_err());
/// ```
pub fn parse_f64(value: &str) -> std::result::Result<f64, std::num::ParseFloatError> {
    match fast_float2::parse::<f64, _>(value) {
        Ok(v) if v.is_finite() => Ok(v),
        _ => value.parse::<f64>(),
    }
}

fn not_categorical(feature: usize) -> ModelError {
    ModelError::InvalidSetting(format!("feature {feature} is not categorical"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LabelSpec;

    fn schema() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Categorical {
                    name: "c".into(),
                    categories: vec!["a".into(), "b".into(), "c".into()],
                },
                Feature::Numeric { name: "n".into() },
                Feature::Categorical {
                    name: "one".into(),
                    categories: vec!["only".into()],
                },
            ],
        }
    }

    fn enc() -> Encoder {
        Encoder::new(&schema(), &["y", "n", "one", "c"]).expect("encoder")
    }

    #[test]
    fn encodes_in_schema_order() {
        let e = enc();
        assert_eq!(e.width(), 3);
        assert_eq!(
            e.encode(&["bad", " 2.5 ", "only", "a"]).expect("ok"),
            (vec![0.0, 0.0, 2.5], 1.0)
        );
        assert_eq!(
            e.encode(&["good", "-1", "only", "c"]).expect("ok"),
            (vec![0.0, 1.0, -1.0], 0.0)
        );
        let owned: Vec<String> = ["good", "0", "only", "b"].map(String::from).to_vec();
        assert_eq!(e.encode(&owned).expect("ok"), (vec![1.0, 0.0, 0.0], 0.0));
    }

    #[test]
    fn category_index_and_width_agree_with_category_into() {
        let e = enc();
        let c = e.feature_columns().next().expect("c");
        assert_eq!((c.out, c.width, c.numeric), (0, 2, false));
        let widths: Vec<usize> = e.feature_columns().map(|f| f.width).collect();
        assert_eq!(widths, [2, 1, 0]);
        for (value, index) in [("a", 0), (" b ", 1), ("c", 2)] {
            assert_eq!(e.category_index(0, value).expect("listed"), index);
            let mut row = [9.0; 3];
            e.category_into(0, value, &mut row).expect("listed");
            let mut want = [0.0, 0.0, 9.0];
            if index > 0 {
                want[index - 1] = 1.0;
            }
            assert_eq!(row, want, "{value}");
        }
        let e1 = e.category_index(0, "d").expect_err("unlisted");
        let e2 = e
            .category_into(0, "d", &mut [0.0; 3])
            .expect_err("unlisted");
        assert_eq!(e1.to_string(), e2.to_string());
        assert!(
            e1.to_string()
                .contains("value `d` is not a listed category")
        );
        assert!(e.category_index(1, "a").is_err(), "n is numeric");
    }

    #[test]
    fn encode_into_overwrites_stale_values() {
        let e = enc();
        let mut row = [9.0; 3];
        e.encode_into(&["bad", "1", "only", "a"], &mut row)
            .expect("ok");
        assert_eq!(row, [0.0, 0.0, 1.0]);
        assert!(matches!(
            e.encode_into(&["bad", "1", "only", "a"], &mut [0.0; 2]),
            Err(ModelError::DimensionMismatch { .. })
        ));
    }

    /// Column by column gives the rows record by record gives.
    #[test]
    fn column_wise_encoding_matches_records() {
        let e = enc();
        let cols: Vec<FeatureColumn<'_>> = e.feature_columns().collect();
        assert_eq!(
            cols.iter()
                .map(|f| (f.column, f.name, f.numeric, f.out))
                .collect::<Vec<_>>(),
            [(3, "c", false, 0), (1, "n", true, 2), (2, "one", false, 3)]
        );
        assert_eq!(e.label_column(), Some(0));
        let record = ["bad", "2.5", "only", "b"];
        let mut by_column = [9.0; 3];
        e.category_into(0, record[3], &mut by_column).expect("c");
        by_column[cols[1].out] = e.number(&cols[1], 2.5).expect("n");
        e.category_into(2, record[2], &mut by_column).expect("one");
        let (by_record, label) = e.encode(&record).expect("record");
        assert_eq!(by_column.to_vec(), by_record);
        assert_eq!(e.label(" bad ").expect("label"), label);
        assert_eq!(
            e.number(&cols[1], f64::NAN).expect_err("nan").to_string(),
            "column `n`: value `NaN` is not finite, expected a finite number"
        );
        assert!(e.category_into(1, "x", &mut by_column).is_err());
        assert!(
            e.category_into(0, "z", &mut by_column)
                .expect_err("unknown")
                .to_string()
                .contains("value `z` is not a listed category")
        );
    }

    #[test]
    fn missing_and_duplicate_columns() {
        let err = Encoder::new(&schema(), &["y", "n", "c"]).expect_err("must fail");
        assert_eq!(
            err,
            ModelError::MissingColumn {
                column: "one".into(),
                role: "a categorical feature"
            }
        );
        let err = Encoder::new(&schema(), &["n", "one", "c"]).expect_err("must fail");
        assert!(err.to_string().contains("`y`") && err.to_string().contains("label"));
        let err = Encoder::new(&schema(), &["y", "n", "one", "c", "n"]).expect_err("must fail");
        assert!(matches!(err, ModelError::DuplicateColumn { count: 2, .. }));
    }

    #[test]
    fn cell_errors_name_column_value_and_expectation() {
        let e = enc();
        let err = e.encode(&["bad", "1", "only", "z"]).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "column `c`: value `z` is not a listed category, expected one of `a`, `b`, `c`"
        );
        let err = e.encode(&["bad", "", "only", "a"]).expect_err("must fail");
        assert_eq!(err, ModelError::EmptyNumeric { column: "n".into() });
        let err = e
            .encode(&["bad", "1,5", "only", "a"])
            .expect_err("must fail");
        assert_eq!(err.to_string(), "column `n`: value `1,5` is not a number");
        for v in ["NaN", "inf", "-infinity", "1e400"] {
            let err = e.encode(&["bad", v, "only", "a"]).expect_err("must fail");
            assert!(
                matches!(err, ModelError::NonFiniteValue { .. }),
                "{v}: {err}"
            );
        }
        let err = e.encode(&["  ", "1", "only", "a"]).expect_err("must fail");
        assert!(matches!(err, ModelError::EmptyLabel { .. }));
        assert!(err.to_string().contains("`y`") && err.to_string().contains("`bad`"));
        let err = e.encode(&["bad", "1", "only"]).expect_err("must fail");
        assert_eq!(
            err,
            ModelError::RecordLength {
                expected: 4,
                found: 3
            }
        );
    }

    #[test]
    fn undeclared_label_values_are_errors() {
        let e = enc();
        assert_eq!(e.encode(&["good", "1", "only", "a"]).expect("ok").1, 0.0);
        for (value, case) in [
            ("BAD", true),
            ("Good", true),
            ("0", false),
            ("1", false),
            ("gdoo", false),
        ] {
            let err = e.encode(&[value, "1", "only", "a"]).expect_err("must fail");
            assert_eq!(
                err,
                ModelError::UnexpectedLabel {
                    column: "y".into(),
                    value: value.into(),
                    positive: "bad".into(),
                    negative: "good".into(),
                }
            );
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "label column `y`: value `{value}` is neither `bad` (positive) nor `good` (negative)"
                )),
                "{text}"
            );
            assert_eq!(text.contains("case-sensitive"), case, "{text}");
        }
        let err = e.encode(&["", "1", "only", "a"]).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "label column `y`: empty cell, expected `bad` (positive) or `good` (negative)"
        );
    }

    #[test]
    fn all_others_negative_label() {
        let mut s = schema();
        s.label = LabelSpec::all_others("y", "bad");
        let e = Encoder::new(&s, &["y", "n", "one", "c"]).expect("encoder");
        assert_eq!(e.encode(&["bad", "1", "only", "a"]).expect("ok").1, 1.0);
        // Declared explicitly: any other non-empty value is negative.
        for value in ["good", "BAD", "0"] {
            assert_eq!(e.encode(&[value, "1", "only", "a"]).expect("ok").1, 0.0);
        }
        let err = e.encode(&[" ", "1", "only", "a"]).expect_err("must fail");
        assert!(
            err.to_string()
                .ends_with("expected `bad` (positive) or any other non-empty value (negative)"),
            "{err}"
        );
    }

    #[test]
    fn a_semicolon_or_tab_header_is_named_as_such() {
        let err = Encoder::new(&schema(), &["y;n;one;c"]).expect_err("must fail");
        assert_eq!(
            err,
            ModelError::NotCommaSeparated {
                header: "y;n;one;c".into(),
                separator: "semicolon"
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("looks semicolon-separated; fedcredit reads comma-separated CSV")
                && text.contains("delimiter=';'"),
            "{text}"
        );
        let err = Encoder::for_scoring(&schema(), &["n\tone\tc"]).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("looks tab-separated") && text.contains(r"delimiter='\t'"),
            "{text}"
        );
        // One comma-separated column that happens to be wrong is just missing.
        let err = Encoder::new(&schema(), &["y"]).expect_err("must fail");
        assert!(matches!(err, ModelError::MissingColumn { .. }), "{err}");
    }

    /// `parse_f64` is `str::parse::<f64>` bit for bit, and fails on the
    /// same cells: shortest round-trip strings of random doubles (the CSV
    /// files' own spelling), other spellings of them, long and
    /// near-halfway digit strings, subnormals and overflows, and random
    /// strings of number characters and of the words NaN and infinity.
    #[test]
    fn parse_f64_is_the_standard_parser() {
        use proptest::prelude::*;
        let same = |s: &str| -> std::result::Result<(), TestCaseError> {
            match (parse_f64(s), s.parse::<f64>()) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a.to_bits(), b.to_bits(), "{:?}", s),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{:?}: {:?} vs {:?}", s, a, b),
            }
            Ok(())
        };
        let doubles = any::<f64>().prop_flat_map(|v| {
            prop::sample::select(vec![
                format!("{v}"),
                format!("{v:e}"),
                format!("{v:E}"),
                format!("{v:+}"),
                format!("{v:.3}"),
                format!("{v:.25e}"),
                format!("{}", v as f32),
            ])
        });
        let digits = (
            "[+-]?[0-9]{0,45}",
            prop::option::of("[0-9]{0,45}"),
            prop::option::of((
                prop::sample::select(vec!["e", "E", "e+", "e-", "E-"]),
                -400i32..400,
            )),
        )
            .prop_map(|(whole, fraction, exp)| {
                let mut s = whole;
                if let Some(f) = fraction {
                    s.push('.');
                    s.push_str(&f);
                }
                if let Some((e, n)) = exp {
                    s.push_str(e);
                    s.push_str(&n.to_string());
                }
                s
            });
        let halfway = (1u64..(1 << 53), -330i32..310).prop_map(|(m, e)| {
            // m·2^k + 2^(k-1) written out: the tie between two doubles.
            format!("{}5e{e}", m.wrapping_mul(2).wrapping_add(1))
        });
        let noise = prop_oneof![
            "[0-9+\\-.eE_ ]{0,12}",
            "[+-]?(nan|NaN|NAN|inf|Inf|INF|infinity|Infinity|infinit|nan\\(1\\)|in|i)",
            "[+-]?0[xXbBoO][0-9a-f]{1,4}",
            ".{0,8}",
        ];
        let cells = prop_oneof![4 => doubles, 3 => digits, 1 => halfway, 2 => noise];
        proptest!(ProptestConfig::with_cases(20_000), |(cell in cells)| {
            same(&cell)?;
        });
        for s in [
            "",
            "+",
            "-",
            ".",
            "e",
            "+.",
            "-.e1",
            "1e",
            "1e+",
            "1e-",
            ".e1",
            "1.e1",
            ".1",
            "1.",
            "+1",
            "-0",
            "+0.0e-0",
            "00000000000000000000001",
            "1_0",
            " 1",
            "1 ",
            "0x10",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "4.9e-324",
            "2.4e-324",
            "2.5e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "1e308",
            "1e309",
            "-1e400",
            "9007199254740993",
            "NaN",
            "-nan",
            "+inf",
            "-Infinity",
            "infinityy",
        ] {
            same(s).expect(s);
        }
    }
}
