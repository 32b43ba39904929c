//! What a job computes, round by round. The round machinery is the same for
//! every job; a [`JobDriver`] says what each round aggregates and takes the
//! unmasked sums.

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_proto::v1 as pb;

/// One round's aggregation: length, fixed-point codec, and the task sent to participants.
#[derive(Clone, Debug)]
pub struct RoundPlan {
    /// Values each participant contributes.
    pub dimension: usize,
    /// How they are encoded.
    pub fixed_point: FixedPoint,
    /// What participants compute (carried in the announcement).
    pub task: pb::round_announcement::Task,
}

/// A round's published result.
#[derive(Clone, Debug)]
pub struct RoundResult {
    /// The round number.
    pub round: u64,
    /// The attempt that completed.
    pub attempt: u32,
    /// The decoded sum of the contributors' inputs.
    pub sum: Vec<f64>,
    /// Whose inputs are in the sum (U3), by id.
    pub contributors: Vec<String>,
}

/// Drives a job: plans rounds and consumes their results.
pub trait JobDriver: Send + 'static {
    /// The next round to run, or `None` when the job is done.
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String>;
    /// Takes the result of the round just finished.
    fn finish_round(&mut self, result: &RoundResult) -> Result<(), String>;
}

/// `secure-sum`: one round; the sum is the job's result.
#[derive(Debug)]
pub struct SecureSum {
    plan: RoundPlan,
    done: bool,
}

impl SecureSum {
    /// A secure sum of `dimension` values with this codec.
    pub fn new(dimension: usize, fixed_point: FixedPoint) -> Self {
        Self {
            plan: RoundPlan {
                dimension,
                fixed_point,
                task: pb::round_announcement::Task::SecureSum(pb::SecureSumTask {}),
            },
            done: false,
        }
    }
}

impl JobDriver for SecureSum {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        Ok((!self.done).then(|| self.plan.clone()))
    }

    fn finish_round(&mut self, _result: &RoundResult) -> Result<(), String> {
        self.done = true;
        Ok(())
    }
}
