//! Benchmark: the release reconciler against a fresh local control plane with N namespaces.
//! Measures three runs (first, steady state, after rotation): wall time, API reads and writes,
//! writes in flight, peak RSS of the reconciler process, and 429s answered by the API server.
//!
//!   cargo run --release --example bench -- --namespaces 5000 --concurrency 16 [--out bench-results]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;
mod window;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use support::{ControlPlane, fake_dockerconfig};

const HOME: &str = "bench-home";
const SECRET: &str = "regcred";

#[derive(Clone)]
struct Args {
    namespaces: usize,
    concurrency: usize,
    /// ServiceAccounts in each namespace, `default` included (real clusters carry about ten).
    service_accounts: usize,
    /// With `--pods P --kept K`: P Pods naming nothing across the namespaces, then a rename that
    /// one Pod in each of K namespaces holds up (their old copies kept, checked every run).
    pods: usize,
    kept: usize,
    /// `--window-only true`: the first run, then only the watch window's rows.
    window_only: bool,
    /// `--star-only true`: the first run, then `SERVICE_ACCOUNTS='*'` as a dry run and as a run
    /// (one patch per ServiceAccount: the largest summary a run prints).
    star_only: bool,
    /// `--rename-only true`: the first run, then only the held-rename rows (`--pods`, `--kept`).
    rename_only: bool,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        namespaces: 5000,
        concurrency: 16,
        service_accounts: 10,
        pods: 0,
        kept: 0,
        window_only: false,
        star_only: false,
        rename_only: false,
        out: PathBuf::from("bench-results"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--namespaces" => a.namespaces = value.parse().expect("--namespaces N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--service-accounts-per-namespace" => {
                a.service_accounts = value.parse().expect("--service-accounts-per-namespace K")
            }
            "--pods" => a.pods = value.parse().expect("--pods P"),
            "--kept" => a.kept = value.parse().expect("--kept K"),
            "--out" => a.out = PathBuf::from(value),
            "--window-only" => a.window_only = value.parse().expect("--window-only true|false"),
            "--star-only" => a.star_only = value.parse().expect("--star-only true|false"),
            "--rename-only" => a.rename_only = value.parse().expect("--rename-only true|false"),
            other => panic!(
                "unknown flag {other}; use --namespaces N --concurrency N --service-accounts-per-namespace K \
                 [--pods P --kept K] [--window-only true | --star-only true | --rename-only true] --out DIR"
            ),
        }
    }
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    eprintln!("bench: building the release binary");
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--locked", "--bin", "pullsecret-reconciler"])
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --release failed");

    eprintln!("bench: starting a local control plane");
    let cp: &'static ControlPlane = Box::leak(Box::new(ControlPlane::start()));
    let client = cp.client().await;
    let setup = Instant::now();
    create_namespaces(&client, args.namespaces).await;
    create_service_accounts(&client, args.namespaces, args.service_accounts).await;
    eprintln!(
        "bench: {} namespaces with {} ServiceAccounts each ready in {:?}",
        args.namespaces,
        args.service_accounts,
        setup.elapsed()
    );
    let env = support::TestEnv {
        id: "bench".into(),
        client: client.clone(),
        home: HOME.into(),
        kubeconfig: cp.kubeconfig.clone(),
        cp,
    };
    env.put_dockerconfig(HOME, SECRET, &fake_dockerconfig("bench-user", "bench-password-1"), &[])
        .await;

    let mut rows = Vec::new();
    rows.push(measure(cp, "first run", &args, &[]).await);
    if args.rename_only {
        rows.extend(rename_held_by_pods(cp, &client, &args).await);
        cp.stop();
        write_results(&args, &rows);
        return;
    }
    if args.star_only {
        let all = [("PULLSECRET_SERVICE_ACCOUNTS", "*"), ("PULLSECRET_DRY_RUN", "true")];
        rows.push(measure(cp, "SERVICE_ACCOUNTS='*', dry run", &args, &all).await);
        rows.push(measure(cp, "SERVICE_ACCOUNTS='*'", &args, &all[..1]).await);
        cp.stop();
        write_results(&args, &rows);
        return;
    }
    if !args.window_only {
        rows.extend(one_shot_rows(cp, &client, &env, &args).await);
    }
    let (window_rows, latencies) = window::rows(cp, &client, &env, &args).await;
    rows.extend(window_rows);
    cp.stop();
    let title = format!(
        "new namespace -> copy + ServiceAccount patched, {} namespaces, {} created at ~10/s",
        args.namespaces,
        latencies.len()
    );
    std::fs::create_dir_all(&args.out).unwrap();
    std::fs::write(args.out.join("window-latency.svg"), window::svg(&latencies, &title)).unwrap();
    write_results(&args, &rows);
}

/// The one-shot rows after the first run: steady state, healing, rotation, globs, a held rename.
async fn one_shot_rows(cp: &'static ControlPlane, client: &Client, env: &support::TestEnv, args: &Args) -> Vec<Value> {
    let args = args.clone();
    let mut rows = Vec::new();
    rows.push(measure(cp, "steady state", &args, &[]).await);
    // Healing on with nothing stuck: one more paged list (Pending Pods), nothing else.
    let heal = [("PULLSECRET_HEAL_PODS", "evict")];
    rows.push(measure(cp, "steady state, HEAL_PODS=evict (nothing stuck)", &args, &heal).await);
    env.put_dockerconfig(HOME, SECRET, &fake_dockerconfig("bench-user", "bench-password-2"), &[])
        .await;
    rows.push(measure(cp, "after rotation", &args, &[]).await);
    // For comparison, what reading every ServiceAccount costs: the same steady state selected
    // by a glob that matches only `default` (same plan, all ServiceAccounts listed), and a dry
    // run with `*` (also plans a patch for every other ServiceAccount, and sends none).
    let glob = [("PULLSECRET_SERVICE_ACCOUNTS", "defaul?")];
    rows.push(measure(cp, "steady state, SERVICE_ACCOUNTS='defaul?' (a glob)", &args, &glob).await);
    let all = [("PULLSECRET_SERVICE_ACCOUNTS", "*"), ("PULLSECRET_DRY_RUN", "true")];
    rows.push(measure(cp, "SERVICE_ACCOUNTS='*', dry run", &args, &all).await);
    if args.pods > 0 && args.kept > 0 {
        rows.extend(rename_held_by_pods(cp, client, &args).await);
    }
    rows
}

fn write_results(args: &Args, rows: &[Value]) {
    std::fs::create_dir_all(&args.out).unwrap();
    let stem = args.out.join(format!(
        "bench-{}-k{}-c{}",
        args.namespaces, args.service_accounts, args.concurrency
    ));
    let doc = json!({
        "namespaces": args.namespaces,
        "service_accounts_per_namespace": args.service_accounts,
        "concurrency": args.concurrency,
        "machine": machine(),
        "runs": rows,
    });
    std::fs::write(stem.with_extension("json"), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let table = markdown(args, rows);
    std::fs::write(stem.with_extension("md"), &table).unwrap();
    println!("{table}");
    eprintln!("bench: wrote {}.json and .md", stem.display());
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} cores, control plane on the same machine")
}

/// Creates every object with at most 32 requests in flight; one that already exists is fine.
async fn create_all<K>(objects: impl IntoIterator<Item = (Api<K>, K)>)
where
    K: kube::Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut set = JoinSet::new();
    for (api, object) in objects {
        while set.len() >= 32 {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(async move {
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("creating {object:?}: {e}"),
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn named<K: kube::Resource + Default>(name: String) -> K {
    let mut object = K::default();
    object.meta_mut().name = Some(name);
    object
}

async fn create_namespaces(client: &Client, n: usize) {
    let api: Api<Namespace> = Api::all(client.clone());
    let names = (0..n).map(|i| format!("bench-{i:05}")).chain([HOME.to_owned()]);
    create_all(names.map(|name| (api.clone(), named::<Namespace>(name)))).await;
    let sas: Api<ServiceAccount> = Api::all(client.clone());
    loop {
        let mut count = 0;
        let mut lp = ListParams::default().fields("metadata.name=default").limit(500);
        loop {
            let page = sas.list(&lp).await.unwrap();
            count += page.items.len();
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => lp.continue_token = Some(c),
                _ => break,
            }
        }
        if count > n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `K - 1` more ServiceAccounts in every bench namespace, besides `default`.
async fn create_service_accounts(client: &Client, namespaces: usize, per_namespace: usize) {
    let objects = (0..namespaces).flat_map(|i| {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &format!("bench-{i:05}"));
        (1..per_namespace).map(move |k| (api.clone(), named::<ServiceAccount>(format!("workload-{k:02}"))))
    });
    create_all(objects).await;
}

/// A rename held up by one Pod in each of `kept` namespaces, among `pods` Pods that name nothing:
/// every later run re-checks the kept copies' references. Rows: the rename, then its steady runs
/// (with `PULLSECRET_BENCH_OLD_BINARY`, also that binary's steady run, for comparison).
async fn rename_held_by_pods(cp: &'static ControlPlane, client: &Client, args: &Args) -> Vec<Value> {
    use k8s_openapi::api::core::v1::Pod;
    let pod = |name: String, secrets: &[&str]| -> Pod {
        let refs: Vec<Value> = secrets.iter().map(|n| json!({ "name": n })).collect();
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": {
            "imagePullSecrets": refs,
            "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] } }))
        .unwrap()
    };
    let setup = Instant::now();
    let per_namespace = args.pods.div_ceil(args.namespaces);
    let objects = (0..args.namespaces).flat_map(|i| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &format!("bench-{i:05}"));
        // A list of their own: admission copies nothing from the ServiceAccount into them.
        (0..per_namespace).map(move |k| (api.clone(), pod(format!("app-{k:03}"), &["app-own-secret"])))
    });
    create_all(objects.take(args.pods)).await;
    let held = (0..args.kept).map(|i| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &format!("bench-{i:05}"));
        (api, pod("holds-the-old-name".into(), &[SECRET]))
    });
    create_all(held).await;
    eprintln!(
        "bench: {} Pods ({} holding {SECRET}) ready in {:?}",
        args.pods + args.kept,
        args.kept,
        setup.elapsed()
    );
    let renamed = format!("{SECRET}={SECRET}-v2");
    let rename = [("PULLSECRET_SOURCE_SECRETS", renamed.as_str())];
    let mut rows = vec![
        measure(
            cp,
            &format!("rename, {} copies kept by a Pod", args.kept),
            args,
            &rename,
        )
        .await,
    ];
    let label = format!(
        "steady rename held in {} namespaces, {} Pods",
        args.kept,
        args.pods + args.kept
    );
    // The run above read every Pod and workload and recorded the Pod holders; this one reads Pod
    // metadata only (none of the holders has ended).
    rows.push(measure(cp, &label, args, &rename).await);
    rows.push(measure(cp, &format!("{label}, holders recorded"), args, &rename).await);
    if let Ok(old) = std::env::var("PULLSECRET_BENCH_OLD_BINARY") {
        let old_label = format!("{label}, {old}");
        rows.push(measure_with(cp, &old_label, args, &rename, std::path::Path::new(&old)).await);
    }
    rows
}

/// The API server's own counters: LIST response bytes, and request count and total seconds.
async fn server_view(cp: &ControlPlane) -> (f64, f64, f64) {
    (
        cp.metric("apiserver_response_sizes_sum", "verb=\"LIST\"").await,
        cp.metric("apiserver_request_duration_seconds_count", "").await,
        cp.metric("apiserver_request_duration_seconds_sum", "").await,
    )
}

async fn measure(cp: &ControlPlane, label: &str, args: &Args, extra: &[(&str, &str)]) -> Value {
    measure_with(cp, label, args, extra, &support::binary()).await
}

async fn measure_with(
    cp: &ControlPlane,
    label: &str,
    args: &Args,
    extra: &[(&str, &str)],
    binary: &std::path::Path,
) -> Value {
    let throttled_before = cp.metric("apiserver_request_total", "code=\"429\"").await;
    let server_before = server_view(cp).await;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("PULLSECRET_SOURCE_SECRETS", SECRET)
        .env("PULLSECRET_SOURCE_NAMESPACE", HOME)
        .env("PULLSECRET_CONCURRENCY", args.concurrency.to_string())
        .env("PULLSECRET_OUTPUT", "json")
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Peak RSS: the kernel's high-water mark, read until the process exits.
    let pid = child.id().unwrap();
    let mut peak_kib = 0u64;
    let mut cpu_ms = 0u64;
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s)
            .await
            .unwrap();
        s
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        // utime + stime (clock ticks, 100 per second here), last read before the process exits.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(rest) = stat.rsplit(')').next()
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(u), Some(k)) = (f.get(11), f.get(12)) {
                cpu_ms = (u.parse::<u64>().unwrap_or(0) + k.parse::<u64>().unwrap_or(0)) * 10;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = started.elapsed();
    let stdout = reader.await.unwrap();
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    let throttled = cp.metric("apiserver_request_total", "code=\"429\"").await - throttled_before;
    let server_after = server_view(cp).await;
    let list_bytes = server_after.0 - server_before.0;
    let requests = server_after.1 - server_before.1;
    let mean_latency_ms = if requests > 0.0 {
        (server_after.2 - server_before.2) / requests * 1000.0
    } else {
        0.0
    };
    let row = json!({
        "run": label,
        "exit_code": status.code(),
        "wall_ms": wall.as_millis() as u64,
        "reads": summary["api_requests"]["reads"],
        "writes": summary["api_requests"]["writes"],
        "bytes_read": summary["api_requests"]["bytes_read"],
        "service_accounts_listed": summary["service_accounts"]["listed"],
        "apiserver_list_response_bytes": list_bytes as u64,
        "apiserver_requests": requests as u64,
        "apiserver_mean_latency_ms": (mean_latency_ms * 10.0).round() / 10.0,
        "max_writes_in_flight": summary["api_requests"]["max_writes_in_flight"],
        "peak_rss_mib": (peak_kib as f64 / 1024.0 * 10.0).round() / 10.0,
        "http_429": throttled as u64,
        "secrets": summary["secrets"],
        "service_accounts": summary["service_accounts"],
        "cpu_ms": cpu_ms,
        "watch": summary["watch"],
        "summary_kib": stdout.len() / 1024,
        "actions_listed": summary["actions"].as_array().map_or(0, Vec::len),
        "actions_omitted": summary["actions_omitted"],
    });
    eprintln!("bench: {label}: {row}");
    assert_eq!(status.code(), Some(0), "{label} did not converge: {summary}");
    row
}

fn markdown(args: &Args, rows: &[Value]) -> String {
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let mut t = format!(
        "N = {} namespaces × K = {} ServiceAccounts, PULLSECRET_CONCURRENCY = {}, {}\n\n\
         | run | wall time | reads | bytes read | writes | max in flight | peak RSS | 429s | \
         API server: LIST bytes | requests | mean latency |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.namespaces,
        args.service_accounts,
        args.concurrency,
        machine()
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {:.2} s | {} | {:.2} MiB | {} | {} | {} MiB | {} | {:.2} MiB | {} | {} ms |\n",
            r["run"].as_str().unwrap(),
            r["wall_ms"].as_u64().unwrap() as f64 / 1000.0,
            r["reads"],
            mib(&r["bytes_read"]),
            r["writes"],
            r["max_writes_in_flight"],
            r["peak_rss_mib"],
            r["http_429"],
            mib(&r["apiserver_list_response_bytes"]),
            r["apiserver_requests"],
            r["apiserver_mean_latency_ms"],
        ));
    }
    t
}
