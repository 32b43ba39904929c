//! The load bench's client: an open-loop load of single-applicant scoring
//! requests at a fixed rate over keep-alive HTTP/1.1 connections, each
//! latency measured from the moment its request was *due* (not sent), so
//! a slow answer that delays the next request is charged to the server
//! (no coordinated omission).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

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
    /// Latency percentiles from the due time, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// The slowest.
    pub max_us: f64,
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
    let mut tasks = Vec::with_capacity(connections);
    for (c, mut sender) in senders.into_iter().enumerate() {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            let mut k = c;
            while k < due {
                let at = start + interval.mul_f64(k as f64);
                tokio::time::sleep_until(at).await;
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
                    Ok(true) => latencies.push(at.elapsed().as_secs_f64() * 1e6),
                    _ => failed += 1,
                }
                k += connections;
            }
            (latencies, failed)
        }));
    }
    let mut all = Vec::with_capacity(due);
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await?;
        all.extend(l);
        failed += f;
    }
    all.sort_by(f64::total_cmp);
    Ok(LoadReport {
        rate,
        due,
        ok: all.len(),
        failed,
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        p999_us: percentile(&all, 0.999),
        max_us: all.last().copied().unwrap_or(f64::NAN),
    })
}
