//! The watch window's rows: measured from outside, on the same control plane. A windowed run
//! is started; during its window 100 namespaces are created at ~10/s, and for each the time from
//! its create call to the moment the bench's own watches see both its copy and its `default`
//! ServiceAccount listing it; then the source is rotated and the time until every copy holds the
//! new data. An idle window gives the cost of a window when nothing happens. The latencies are
//! also drawn as a small SVG (a cumulative distribution) that docs/performance.md shows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{Args, HOME, SECRET, measure_with, named};
use crate::support::{self, ControlPlane, fake_dockerconfig};

/// New namespaces made during the window, and how fast.
const NEW: usize = 100;
const EVERY: Duration = Duration::from_millis(100);

/// When each namespace's copy (and its data) and patched ServiceAccount were first seen.
#[derive(Default)]
struct Seen {
    copies: BTreeMap<String, (Instant, Vec<u8>)>,
    listed: BTreeMap<String, Instant>,
}

fn observe(client: &Client, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    let secrets: Api<Secret> = Api::all(client.clone());
    let s = seen.clone();
    set.spawn(async move {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={SECRET}"));
        let mut stream = std::pin::pin!(watcher::watcher(secrets, cfg));
        while let Some(e) = stream.next().await {
            if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = e {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let data = support::secret_data(&o);
                let mut s = s.lock().unwrap();
                let entry = s.copies.entry(ns).or_insert((Instant::now(), data.clone()));
                if entry.1 != data {
                    *entry = (Instant::now(), data);
                }
            }
        }
    });
    let sas: Api<ServiceAccount> = Api::all(client.clone());
    set.spawn(async move {
        let cfg = watcher::Config::default().fields("metadata.name=default");
        let mut stream = std::pin::pin!(watcher::watcher(sas, cfg));
        while let Some(e) = stream.next().await {
            if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = e
                && support::pull_secret_names(&o).iter().any(|n| n == SECRET)
            {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                seen.lock().unwrap().listed.entry(ns).or_insert_with(Instant::now);
            }
        }
    });
    set
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bench: timed out waiting for {what}");
}

/// The window rows, and the new-namespace latencies in milliseconds.
pub async fn rows(
    cp: &'static ControlPlane,
    client: &Client,
    env: &support::TestEnv,
    args: &Args,
) -> (Vec<Value>, Vec<u64>) {
    let mut rows = Vec::new();
    // An idle window: what a window costs when nothing happens.
    let idle = [("PULLSECRET_WATCH", "30s")];
    rows.push(measure_with(cp, "idle window of 30 s", args, &idle, &support::binary()).await);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let observers = observe(client, seen.clone());
    let busy_args = args.clone();
    let busy = tokio::spawn(async move {
        let vars = [("PULLSECRET_WATCH", "60s")];
        measure_with(
            cp,
            "window of 60 s: 100 new namespaces, one rotation",
            &busy_args,
            &vars,
            &support::binary(),
        )
        .await
    });
    // The full pass of a converged cluster is well under a second; give the watches their
    // first view too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let api: Api<Namespace> = Api::all(client.clone());
    let mut created = BTreeMap::new();
    for i in 0..NEW {
        let name = format!("bench-new-{i:03}");
        let at = Instant::now();
        api.create(&Default::default(), &named::<Namespace>(name.clone()))
            .await
            .unwrap();
        created.insert(name, at);
        tokio::time::sleep(EVERY).await;
    }
    until("every new namespace's copy and ServiceAccount", 60, || {
        let s = seen.lock().unwrap();
        created
            .keys()
            .all(|n| s.copies.contains_key(n) && s.listed.contains_key(n))
    })
    .await;
    let latencies: Vec<u64> = {
        let s = seen.lock().unwrap();
        created
            .iter()
            .map(|(n, at)| {
                let done = s.copies[n].0.max(s.listed[n]);
                done.duration_since(*at).as_millis() as u64
            })
            .collect()
    };

    // Rotation: every copy (those seen so far) must hold the new data.
    let fresh = fake_dockerconfig("bench-user", "bench-password-window");
    let copies: BTreeSet<String> = seen
        .lock()
        .unwrap()
        .copies
        .keys()
        .filter(|n| *n != HOME)
        .cloned()
        .collect();
    let rotated_at = Instant::now();
    env.put_dockerconfig(HOME, SECRET, &fresh, &[]).await;
    until("every copy rotated", 60, || {
        let s = seen.lock().unwrap();
        copies.iter().all(|n| s.copies.get(n).is_some_and(|c| c.1 == fresh))
    })
    .await;
    let rotation_ms = {
        let s = seen.lock().unwrap();
        copies
            .iter()
            .map(|n| s.copies[n].0.duration_since(rotated_at).as_millis() as u64)
            .max()
            .unwrap_or(0)
    };
    drop(observers);
    let mut row = busy.await.unwrap();
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    row["new_namespace_latency_ms"] = json!({
        "p50": sorted[(sorted.len() - 1) / 2],
        "max": sorted[sorted.len() - 1],
        "count": sorted.len(),
    });
    row["rotation_all_copies_ms"] = json!(rotation_ms);
    row["rotated_copies"] = json!(copies.len());
    eprintln!("bench: window: {row}");
    rows.push(row);
    (rows, latencies)
}

/// A cumulative distribution of `ms`, as a small standalone SVG.
pub fn svg(ms: &[u64], title: &str) -> String {
    let mut s = ms.to_vec();
    s.sort_unstable();
    let (w, h, pad) = (480.0, 240.0, 40.0);
    let max = s.last().copied().unwrap_or(1).max(1) as f64;
    let x = |v: f64| pad + v / max * (w - 2.0 * pad);
    let y = |f: f64| h - pad - f * (h - 2.0 * pad);
    let points: Vec<String> = s
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(*v as f64), y((i + 1) as f64 / s.len() as f64)))
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="20">{title}</text>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{pad}" y1="{t}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{pad}" y="{lb}">0 ms</text><text x="{r}" y="{lb}" text-anchor="end">{max} ms</text>
<text x="{l}" y="{b}" text-anchor="end">0</text><text x="{l}" y="{t}" text-anchor="end">100%</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts}"/>
</svg>
"##,
        b = h - pad,
        t = pad,
        r = w - pad,
        lb = h - pad + 15.0,
        l = pad - 4.0,
        pts = points.join(" "),
    )
}
