//! Model tasks travel as JSON in round announcements; participants, a
//! restarted coordinator and auditors must read back exactly the floats the
//! coordinator wrote, or their computations drift in the last bits.

use fedcredit_model::job::ModelTask;
use proptest::prelude::*;

proptest! {
    #[test]
    fn centered_squares_task_round_trips_every_float(mean in proptest::collection::vec(any::<f64>().prop_filter("finite", |x| x.is_finite()), 1..64)) {
        let task = ModelTask::CenteredSquares { mean: mean.clone(), noise: None };
        let back = ModelTask::from_bytes(&task.to_bytes()).expect("parses");
        let ModelTask::CenteredSquares { mean: got, .. } = back else { panic!("wrong task") };
        prop_assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            mean.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
