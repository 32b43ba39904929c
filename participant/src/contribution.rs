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
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let content = line.split('#').next().unwrap_or("");
            for token in content
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
            {
                let v: f64 = token
                    .parse()
                    .map_err(|_| bad(line_no, format!("value {token:?} is not a number")))?;
                if !v.is_finite() {
                    return Err(bad(line_no, format!("value {token:?} is not finite")));
                }
                values.push(v);
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
    fn names_file_line_and_value() {
        let err = VectorInput::parse(Path::new("x.txt"), "1\n2, abc\n").expect_err("bad");
        assert_eq!(err.to_string(), "x.txt:2: value \"abc\" is not a number");
        let err = VectorInput::parse(Path::new("x.txt"), "NaN\n").expect_err("nan");
        assert!(err.to_string().contains("not finite"), "{err}");
    }
}
