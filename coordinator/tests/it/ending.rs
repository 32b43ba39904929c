//! How the coordinator stops once its job has ended: it keeps serving until
//! the members hang up, so that the last answers it handed out (the job's
//! end, megabytes after a long series) are not cut off mid-body.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fedcredit_proto::v1::coordinator_client::CoordinatorClient;

use crate::rejections::{Deadlines, launch_with};

/// Nobody joins within the 1 s join deadline, so the job ends at once;
/// while a member's connection stays open the coordinator keeps serving
/// (up to one phase deadline), and it stops as soon as that member hangs up.
#[tokio::test]
async fn after_the_job_ends_the_coordinator_serves_until_members_hang_up() {
    let deadlines = Deadlines { join: 1, phase: 20 };
    let (_, addr, _log_dir, _stop, mut task) = launch_with(false, 1 << 20, &deadlines).await;
    let mut client = loop {
        match CoordinatorClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    // One call, so that the connection is up and counted.
    let _ = client.poll(fedcredit_proto::v1::Signed::default()).await;

    let early = tokio::time::timeout(Duration::from_secs(4), &mut task).await;
    assert!(
        early.is_err(),
        "the coordinator stopped while a member was still connected: {early:?}"
    );

    drop(client);
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the coordinator stops once the last member hung up")
        .unwrap();
    let err = outcome.expect_err("a job nobody joined fails");
    assert!(
        err.to_string().contains("join"),
        "the failure names the join deadline: {err}"
    );
}
