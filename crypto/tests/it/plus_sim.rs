//! The SecAgg+ simulation at a size CI can run: 60 members over a Harary
//! graph with dropouts before and after the masked input, and 30 over the
//! complete graph, each summing exactly.

#[path = "../../benches/support/plus_sim.rs"]
mod sim;

use fedcredit_crypto::secagg::CommGraph;

#[test]
fn sixty_members_over_a_harary_graph_sum_exactly() {
    let cfg = sim::SimConfig {
        members: 60,
        dims: 200,
        dropout: 0.1,
        colluders: 6,
        graph: Some((10, 6)),
        seed: 7,
        threads: 2,
    };
    let report = sim::run(&cfg).expect("round");
    assert_eq!(
        report.thresholds.graph(),
        CommGraph::Harary {
            neighbours: 10,
            share_threshold: 6
        }
    );
    // 3 leave before their masked input, 3 after it.
    assert_eq!(report.cohorts, [60, 60, 57, 54]);
    assert_eq!(report.phases.len(), 7);
    assert!(report.exact);
}

#[test]
fn the_complete_graph_runs_the_same_driver() {
    let cfg = sim::SimConfig {
        members: 30,
        dims: 100,
        dropout: 0.1,
        colluders: 10,
        graph: None,
        seed: 8,
        threads: 2,
    };
    let report = sim::run(&cfg).expect("round");
    assert_eq!(report.thresholds.graph(), CommGraph::Complete);
    assert_eq!(report.cohorts, [30, 30, 29, 27]);
    assert!(report.exact);
}
