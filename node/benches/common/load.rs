//! HTTP load shared by the benches: client loops POSTing request bodies,
//! and the latency summary every JSON line reports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `clients` loops POSTing `bodies` (each once) to `url`; latencies in ms.
pub async fn load(
    url: &str,
    bodies: Arc<Vec<String>>,
    clients: usize,
    expect: u16,
) -> (Duration, Vec<f64>) {
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, bodies, http, url) =
                (next.clone(), bodies.clone(), http.clone(), url.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let resp = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("POST");
                    let code = resp.status().as_u16();
                    let text = resp.bytes().await.expect("body");
                    assert_eq!(code, expect, "{}", String::from_utf8_lossy(&text));
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(bodies.len());
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    (started.elapsed(), all)
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i] * 100.0).round() / 100.0
}

pub fn summary(took: Duration, mut lat: Vec<f64>) -> (f64, f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let per_sec = (lat.len() as f64 / took.as_secs_f64()).round();
    (per_sec, pct(&lat, 0.5), pct(&lat, 0.99))
}
