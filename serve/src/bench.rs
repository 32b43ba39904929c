//! The load bench's client: an open-loop load of single-applicant scoring
//! requests at a fixed rate over keep-alive HTTP/1.1 connections. Each
//! request's latency is measured twice: from the moment it was *due*, so
//! that a slow answer delaying the next request is charged to the server
//! (no coordinated omission), and from the moment it was sent (what the
//! server took, over loopback). Requests are sent on time: one OS thread
//! keeps the schedule with precise sleeps (tokio's timer wheel ticks in
//! milliseconds) and hands each due request to its connection.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Instant;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests per second asked for.
    pub rate: f64,
    /// Requests due in the run.
    pub due: usize,
    /// Answered 200.
    pub ok: usize,
    /// Answered otherwise, or failed.
    pub failed: usize,
    /// Latency from the due time, in microseconds: p50, p99, p99.9, max.
    pub from_due_us: [f64; 4],
    /// Latency from the send, in microseconds: p50, p99, p99.9, max.
    pub from_send_us: [f64; 4],
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends `rate` requests per second of `body` to `POST /v1/score` at
/// `addr` for `duration`, spread over `connections` keep-alive connections.
pub async fn load(
    addr: SocketAddr,
    body: Bytes,
    rate: f64,
    duration: Duration,
    connections: usize,
) -> Result<LoadReport, Box<dyn std::error::Error + Send + Sync>> {
    let connections = connections.max(1);
    let due = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Start once every connection is open.
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        senders.push(sender);
    }
    let start = Instant::now() + Duration::from_millis(50);
    // One OS thread keeps time (its sleeps are precise to tens of µs,
    // where tokio's timer wheel ticks in milliseconds) and hands each due
    // request to its connection; nothing spins on the two cores the server
    // shares.
    let mut queues = Vec::with_capacity(connections);
    let mut receivers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        queues.push(tx);
        receivers.push(rx);
    }
    let clock = std::thread::spawn(move || {
        for k in 0..due {
            let at = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if queues[k % queues.len()].send(at).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(connections);
    for (mut sender, mut due_times) in senders.into_iter().zip(receivers) {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while let Some(at) = due_times.recv().await {
                let sent = Instant::now();
                let ok = async {
                    sender.ready().await?;
                    let req = hyper::Request::post("/v1/score")
                        .header(hyper::header::HOST, "localhost")
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(body.clone()))?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    resp.into_body().collect().await?;
                    Ok::<bool, Box<dyn std::error::Error + Send + Sync>>(status.is_success())
                }
                .await;
                match ok {
                    Ok(true) => latencies.push((
                        at.elapsed().as_secs_f64() * 1e6,
                        sent.elapsed().as_secs_f64() * 1e6,
                    )),
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let (mut from_due, mut from_send) = (Vec::with_capacity(due), Vec::with_capacity(due));
    let mut failed = 0;
    let _ = tokio::task::spawn_blocking(move || clock.join()).await;
    for t in tasks {
        let (l, f) = t.await?;
        for (d, s) in l {
            from_due.push(d);
            from_send.push(s);
        }
        failed += f;
    }
    let summary = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        [
            percentile(&v, 0.50),
            percentile(&v, 0.99),
            percentile(&v, 0.999),
            v.last().copied().unwrap_or(f64::NAN),
        ]
    };
    Ok(LoadReport {
        rate,
        due,
        ok: from_due.len(),
        failed,
        from_due_us: summary(from_due),
        from_send_us: summary(from_send),
    })
}
