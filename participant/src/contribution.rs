//! What a participant contributes to a round. The round machinery asks a
//! [`Contributor`] for the plain vector; only its masked form leaves.

use std::path::{Path, PathBuf};

use fedcredit_proto::v1::round_announcement::Task;

use crate::ParticipantError;

/// Computes this participant's vector for a round, and hears the results.
pub trait Contributor: Send {
    /// The plain vector for `round`, of exactly `dimension` values.
    fn contribute(&mut self, round: u64, task: &Task, dimension: usize)
    -> Result<Vec<f64>, String>;
    /// The published sum of a finished round.
    fn round_finished(&mut self, _round: u64, _sum: &[f64]) {}
}

/// A secure-sum input: a fixed vector read from a file before any round.
#[derive(Debug, Clone)]
pub struct VectorInput {
    values: Vec<f64>,
}

impl VectorInput {
    /// A vector given directly.
    pub fn new(values: Vec<f64>) -> Self {
        Self { values }
    }

    /// Reads numbers separated by commas, spaces or newlines; `#` starts a
    /// comment. Every value must be a finite number.
    pub fn from_file(path: &Path) -> Result<Self, ParticipantError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParticipantError::ReadInput {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ParticipantError> {
        let bad = |line: usize, problem: String| ParticipantError::BadInput {
            file: PathBuf::from(path),
            line,
            problem,
        };
        // One pass over the bytes: ASCII separators are told apart without
        // decoding; a non-ASCII character separates only if it is Unicode
        // whitespace, as `char::is_whitespace` has it. (Splitting per line
        // and per character took most of a member's time for a 10^5-value
        // file, more than masking it.)
        let bytes = text.as_bytes();
        let mut values = Vec::with_capacity(bytes.len() / 8);
        let mut line = 1;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    line += 1;
                    i += 1;
                }
                b',' | b' ' | b'\t' | b'\r' | 0x0b | 0x0c => i += 1,
                b'#' => {
                    i = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |n| i + n);
                }
                _ => {
                    let start = i;
                    while i < bytes.len() {
                        match bytes[i] {
                            b'\n' | b',' | b' ' | b'\t' | b'\r' | 0x0b | 0x0c | b'#' => break,
                            b if b.is_ascii() => i += 1,
                            _ => {
                                // `i` is at a character boundary: every byte
                                // before it in the token was ASCII.
                                let c = text[i..].chars().next().unwrap_or('\0');
                                if c.is_whitespace() {
                                    break;
                                }
                                i += c.len_utf8();
                            }
                        }
                    }
                    let token = &text[start..i];
                    if token.is_empty() {
                        // A lone Unicode whitespace character.
                        i += text[i..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    let v: f64 = token
                        .parse()
                        .map_err(|_| bad(line, format!("value {token:?} is not a number")))?;
                    if !v.is_finite() {
                        return Err(bad(line, format!("value {token:?} is not finite")));
                    }
                    values.push(v);
                }
            }
        }
        Ok(Self { values })
    }

    /// The values.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

impl Contributor for VectorInput {
    fn contribute(
        &mut self,
        _round: u64,
        task: &Task,
        dimension: usize,
    ) -> Result<Vec<f64>, String> {
        match task {
            Task::SecureSum(sum) if sum.index > 0 => Err(format!(
                "the round asks for sum {} of a series; this participant's input is a single vector",
                sum.index
            )),
            Task::SecureSum(_) if self.values.len() == dimension => Ok(self.values.clone()),
            Task::SecureSum(_) => Err(format!(
                "the job sums {dimension} values, this participant's input has {}",
                self.values.len()
            )),
            Task::ModelTask(_) => {
                Err("this participant runs a secure-sum input, not a model job".into())
            }
        }
    }
}

/// The placeholder a series' `input` path carries for the sum's index.
pub const INDEX_PLACEHOLDER: &str = "{index}";

/// The inputs of a secure-sum series: one file per sum, named by a path
/// with [`INDEX_PLACEHOLDER`] (0 for the first sum). Each file is read when
/// its sum is asked for, so a later period's figures need not exist yet.
#[derive(Debug, Clone)]
pub struct SeriesInput {
    template: String,
    rounds: u32,
    /// The last file read, by index (a retried round reads nothing anew).
    cached: Option<(u32, Vec<f64>)>,
}

impl SeriesInput {
    /// The series named by `template` (which must hold
    /// [`INDEX_PLACEHOLDER`]); reads and checks the first sum's file now.
    pub fn open(template: &Path, rounds: u32, dimension: usize) -> Result<Self, ParticipantError> {
        let text = template.to_string_lossy().into_owned();
        if !text.contains(INDEX_PLACEHOLDER) {
            return Err(ParticipantError::Table {
                file: template.to_owned(),
                row: None,
                problem: format!(
                    "the job is a series of {rounds} sums: name one file per sum with \
                     {INDEX_PLACEHOLDER} in the path (0 for the first)"
                ),
            });
        }
        let mut series = Self {
            template: text,
            rounds,
            cached: None,
        };
        let first = series.read(0, dimension)?;
        series.cached = Some((0, first));
        Ok(series)
    }

    /// The file of sum `index`.
    pub fn path(&self, index: u32) -> PathBuf {
        PathBuf::from(self.template.replace(INDEX_PLACEHOLDER, &index.to_string()))
    }

    fn read(&self, index: u32, dimension: usize) -> Result<Vec<f64>, ParticipantError> {
        let path = self.path(index);
        let values = VectorInput::from_file(&path)?.values;
        if values.len() != dimension {
            return Err(ParticipantError::Table {
                file: path,
                row: None,
                problem: format!("{} values, but the job sums {dimension}", values.len()),
            });
        }
        Ok(values)
    }
}

impl Contributor for SeriesInput {
    fn contribute(
        &mut self,
        _round: u64,
        task: &Task,
        dimension: usize,
    ) -> Result<Vec<f64>, String> {
        let index = match task {
            Task::SecureSum(sum) if sum.index < self.rounds => sum.index,
            Task::SecureSum(sum) => {
                return Err(format!(
                    "the round asks for sum {} of a series of {}",
                    sum.index, self.rounds
                ));
            }
            Task::ModelTask(_) => {
                return Err("this participant runs a secure-sum input, not a model job".into());
            }
        };
        if let Some((cached, values)) = &self.cached
            && *cached == index
            && values.len() == dimension
        {
            return Ok(values.clone());
        }
        let values = self.read(index, dimension).map_err(|e| e.to_string())?;
        self.cached = Some((index, values.clone()));
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_spaces_and_comments() {
        let v = VectorInput::parse(Path::new("x.txt"), "1, 2.5\n# note\n-3e2 4 # tail\n")
            .expect("valid");
        assert_eq!(v.values(), &[1.0, 2.5, -300.0, 4.0]);
    }

    #[test]
    fn a_series_reads_one_file_per_sum_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (k, text) in ["1, 2", "3, 4", "5"].iter().enumerate() {
            std::fs::write(dir.path().join(format!("in-{k}.txt")), text).expect("write");
        }
        let template = dir.path().join("in-{index}.txt");
        let sum = |index| Task::SecureSum(fedcredit_proto::v1::SecureSumTask { index });
        let mut series = SeriesInput::open(&template, 3, 2).expect("first file is good");
        assert_eq!(series.contribute(1, &sum(0), 2), Ok(vec![1.0, 2.0]));
        assert_eq!(series.contribute(2, &sum(1), 2), Ok(vec![3.0, 4.0]));
        let short = series.contribute(3, &sum(2), 2).expect_err("one value");
        assert!(
            short.contains("in-2.txt") && short.contains("1 values"),
            "{short}"
        );
        let beyond = series.contribute(4, &sum(3), 2).expect_err("no fourth sum");
        assert!(beyond.contains("series of 3"), "{beyond}");
        let plain = dir.path().join("in-0.txt");
        let err = SeriesInput::open(&plain, 3, 2).expect_err("no placeholder");
        assert!(
            err.to_string()
                .contains("one file per sum with {index} in the path"),
            "{err}"
        );
        // A single vector never answers for a later sum of a series.
        let mut single = VectorInput::new(vec![1.0, 2.0]);
        assert!(single.contribute(1, &sum(1), 2).is_err());
    }

    /// The parser before it went byte by byte: the reference it must match.
    fn by_lines(text: &str) -> Result<Vec<f64>, (usize, String)> {
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            for token in content
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
            {
                match token.parse::<f64>() {
                    Ok(v) if v.is_finite() => values.push(v),
                    _ => return Err((i + 1, token.to_owned())),
                }
            }
        }
        Ok(values)
    }

    use proptest::prelude::*;

    proptest! {
        /// Numbers, separators (ASCII and Unicode whitespace), comments and
        /// junk in any mix: the same values, or the same line and token named.
        #[test]
        fn reads_what_the_line_parser_read(
            parts in proptest::collection::vec(
                prop_oneof![
                    proptest::num::f64::NORMAL.prop_map(|v| v.to_string()),
                    (-1000i32..1000).prop_map(|v| v.to_string()),
                    proptest::sample::select(vec![
                        ",", " ", "\t", "\n", "\r\n", "\r", "\u{a0}", "\u{2003}", "\u{85}",
                        "# note\n", "#", "1e5", "-0.5", ".5", "inf", "NaN", "x", "1.5\u{20ac}", "\u{e9}",
                    ]).prop_map(str::to_owned),
                ],
                0..40,
            )
        ) {
            let text: String = parts.concat();
            let got = VectorInput::parse(Path::new("x.txt"), &text);
            match by_lines(&text) {
                Ok(want) => prop_assert_eq!(got.expect("the reference read it").values, want),
                Err((line, token)) => {
                    let err = got.expect_err("the reference refused it").to_string();
                    prop_assert!(
                        err.starts_with(&format!("x.txt:{line}: value {token:?} ")),
                        "{} against line {} token {:?}", err, line, token
                    );
                }
            }
        }
    }

    #[test]
    fn names_file_line_and_value() {
        let err = VectorInput::parse(Path::new("x.txt"), "1\n2, abc\n").expect_err("bad");
        assert_eq!(err.to_string(), "x.txt:2: value \"abc\" is not a number");
        let err = VectorInput::parse(Path::new("x.txt"), "NaN\n").expect_err("nan");
        assert!(err.to_string().contains("not finite"), "{err}");
    }
}
