//! The watch window (PULLSECRET_WATCH) on the real control plane: after its full pass a run
//! keeps watching and reacts — new namespaces, new ServiceAccounts, copies deleted by hand, a
//! rotated source — without deleting anything inside the window; it ends by itself with one
//! summary, at once on SIGTERM, and keeps its Lease through the window. Outcomes and order are
//! asserted, never times.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::node::wait_for;
use crate::support::proxy::{Mode, Proxy};
use crate::support::runner::command;
use crate::support::{RunResult, TEST_LABEL, TestEnv, fake_dockerconfig, secret_data};

/// A run in the background, its logs in a file (a pipe nobody reads could fill and block it).
struct Windowed {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

async fn start(env: &TestEnv, kubeconfig: &Path, vars: &[(&str, &str)]) -> Windowed {
    let log = std::env::temp_dir().join(format!("pullsecret-window-{}-{}.log", env.id, std::process::id()));
    let mut cmd = command(kubeconfig, &env.vars(vars), &[]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    Windowed {
        child: cmd.spawn().unwrap(),
        log,
    }
}

impl Windowed {
    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn finish(self) -> RunResult {
        let out = self.child.wait_with_output().await.unwrap();
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        RunResult {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    }
}

async fn copy_data(env: &TestEnv, ns: &str, name: &str) -> Result<Vec<u8>, String> {
    env.secret(ns, name)
        .await
        .map(|s| secret_data(&s))
        .ok_or_else(|| format!("no {ns}/{name}"))
}

async fn lists(env: &TestEnv, ns: &str, sa: &str, name: &str) -> Result<(), String> {
    let list = env.pull_secrets(ns, sa).await;
    if list.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(format!("{ns}/{sa} lists {list:?}"))
    }
}

fn actions(summary: &Value) -> Vec<(String, String, String)> {
    summary["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s("kind"), s("namespace"), s("action"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_reacts_to_namespaces_service_accounts_deleted_copies_and_rotation() {
    let env = TestEnv::new("wa1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password-1").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    let run = start(
        &env,
        &env.kubeconfig,
        &[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_SERVICE_ACCOUNTS", "default,builder"),
            ("PULLSECRET_WATCH", "40s"),
        ],
    )
    .await;
    // The full pass.
    wait_for("the full pass's copy in a", 30, || copy_data(&env, &a, &src)).await;

    // 1. A new namespace: its copy, and its default ServiceAccount patched.
    env.create_namespace(&b, &[], &[]).await;
    wait_for("b's copy", 20, || copy_data(&env, &b, &src)).await;
    wait_for("b's default ServiceAccount", 20, || lists(&env, &b, "default", &src)).await;

    // 2. A new selected ServiceAccount.
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "builder" } })).unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), &a)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    wait_for("a's builder ServiceAccount", 20, || lists(&env, &a, "builder", &src)).await;

    // 3. A copy deleted by hand comes back.
    let before = env.secret(&a, &src).await.unwrap().metadata.uid;
    env.delete_secret(&a, &src).await;
    let restored = wait_for("a's copy restored", 20, || async {
        match env.secret(&a, &src).await {
            Some(s) if s.metadata.uid != before => Ok(s),
            _ => Err("not yet".to_owned()),
        }
    })
    .await;
    assert!(crate::support::is_ours(&restored));

    // 4. A rotation reaches every copy.
    let rotated = fake_dockerconfig("fake-user", "fake-password-2");
    env.put_dockerconfig(&env.home, &src, &rotated, &[]).await;
    for ns in [&a, &b] {
        wait_for(&format!("{ns}'s copy rotated"), 20, || async {
            match copy_data(&env, ns, &src).await {
                Ok(d) if d == rotated => Ok(()),
                other => Err(format!("{:?}", other.map(|d| d.len()))),
            }
        })
        .await;
    }

    // 5. Relabelled out of the selection: nothing is deleted inside the window.
    let relabel = json!({ "metadata": { "labels": { TEST_LABEL: "elsewhere" } } });
    Api::<Namespace>::all(env.client.clone())
        .patch(&b, &PatchParams::default(), &Patch::Merge(relabel))
        .await
        .unwrap();

    let out = run.finish().await;
    assert_eq!(out.code, 0, "converged at the window's end: {out:?}");
    let s = out.summary();
    assert_eq!(s["watch"]["ended_by"], "window", "{s}");
    assert!(s["watch"]["reactions"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["watch"]["events"]["namespaces"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["watch"]["latency_ms"]["max"].as_u64().unwrap() >= s["watch"]["latency_ms"]["p50"].as_u64().unwrap());
    assert!(
        env.secret(&b, &src).await.is_some(),
        "the deselected namespace keeps its copy until the next run"
    );
    assert_eq!(s["secrets"]["deleted"], 0, "{s}");
    let done = actions(&s);
    // The window's writes, in the order the cluster changed (the full pass's come first).
    let mut from = 0;
    let mut next = |x: (&str, &str, &str)| {
        let found = done[from..]
            .iter()
            .position(|(k, n, a)| (k.as_str(), n.as_str(), a.as_str()) == x)
            .unwrap_or_else(|| panic!("{x:?} not after position {from} in {done:?}"));
        from += found + 1;
        from
    };
    next(("Secret", &a, "create"));
    next(("Secret", &b, "create"));
    next(("ServiceAccount", &b, "patch"));
    next(("ServiceAccount", &a, "patch"));
    let restored_at = next(("Secret", &a, "create"));
    let rotated: Vec<&(String, String, String)> = done[restored_at..].iter().collect();
    for ns in [&a, &b] {
        assert!(
            rotated.contains(&&("Secret".to_owned(), ns.clone(), "update".to_owned())),
            "{done:?}"
        );
    }
    assert!(
        out.stderr.lines().all(|l| !l.contains("fake-password")),
        "no credential in the logs"
    );

    // The next run's full pass does the delete.
    let next = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_SERVICE_ACCOUNTS", "default,builder"),
        ])
        .await;
    let pruned = next.count("secrets", "deleted") + next.count("secrets", "kept");
    assert!(pruned >= 1, "the next full pass takes up the deselected copy: {next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_window_at_once_and_a_converged_run_exits_0() {
    let env = TestEnv::new("wa2").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let a = env.name("a");
    env.create_namespace(&a, &[], &[]).await;
    let run = start(
        &env,
        &env.kubeconfig,
        &[("PULLSECRET_SOURCE_SECRETS", src.as_str()), ("PULLSECRET_WATCH", "10m")],
    )
    .await;
    wait_for("the full pass", 30, || lists(&env, &a, "default", &src)).await;
    // Let the watches start (their first view) before the signal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &run.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(60), run.finish())
        .await
        .expect("the run ends on SIGTERM, long before its 10-minute window");
    assert_eq!(out.code, 0, "ending a window is not a failure: {out:?}");
    let s = out.summary();
    assert_eq!(s["watch"]["ended_by"], "signal", "{s}");
    assert_eq!(s["converged"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_run_keeps_its_lease_past_its_duration_and_a_second_run_waits() {
    let env = TestEnv::new("wa3").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let a = env.name("a");
    env.create_namespace(&a, &[], &[]).await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", src.as_str()), ("PULLSECRET_WATCH", "30s")];
    let first = start(&env, &env.kubeconfig, &vars).await;
    wait_for("the first run's full pass", 30, || lists(&env, &a, "default", &src)).await;
    // Longer than the Lease lasts without renewal (15 s): only renewals keep it.
    tokio::time::sleep(Duration::from_secs(17)).await;
    let second = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_TIMEOUT_SECS", "6"),
        ])
        .await;
    assert_eq!((second.code, second.writes()), (1, 0), "{second:?}");
    assert_eq!(second.problems()[0]["reason"], "LeaseHeld", "{second:?}");
    // A namespace made now is still the first run's to cover.
    let b = env.name("b");
    env.create_namespace(&b, &[], &[]).await;
    wait_for("b's copy, from the first run's window", 20, || {
        copy_data(&env, &b, &src)
    })
    .await;
    let out = first.finish().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.summary()["watch"]["ended_by"], "window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_connection_is_resumed_and_nothing_is_missed() {
    let env = TestEnv::new("wa4").await;
    let (run, proxy, dir, src) = watching_through_proxy(&env, "30s").await;
    // Every connection through the proxy is cut as soon as data flows on it: the namespace's
    // own watch event kills the namespace watch.
    proxy.set(Mode::Drop, Duration::ZERO);
    let b = env.name("b");
    env.create_namespace(&b, &[], &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set(Mode::Pass, Duration::ZERO);
    wait_for("b's copy after the watch resumed", 30, || copy_data(&env, &b, &src)).await;
    wait_for("b's ServiceAccount", 20, || lists(&env, &b, "default", &src)).await;
    let out = run.finish().await;
    let s = out.summary();
    assert_eq!(s["watch"]["ended_by"], "window", "{out:?}");
    assert_eq!(out.code, 0, "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_cannot_come_back_ends_the_window_with_a_problem() {
    let env = TestEnv::new("wa5").await;
    let (run, proxy, dir, _) = watching_through_proxy(&env, "10m").await;
    // The API server is gone for good (for this run): the Lease cannot be renewed and the
    // watches cannot come back. Whichever is noticed first ends the window; never a silent gap.
    proxy.set(Mode::Drop, Duration::ZERO);
    env.create_namespace(&env.name("b"), &[], &[]).await;
    let out = tokio::time::timeout(Duration::from_secs(120), run.finish())
        .await
        .expect("the window ends early");
    assert_eq!(out.code, 1, "{out:?}");
    let s = out.summary();
    let ended = s["watch"]["ended_by"].as_str().unwrap().to_owned();
    assert!(ended == "lease" || ended == "error", "{s}");
    let reasons: Vec<&str> = s["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"LeaseLost") || reasons.contains(&"WatchLost"),
        "{reasons:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A windowed run through a fault-injecting proxy, past its full pass and its watches' first
/// view: (the run, the proxy, the temp folder, the source name).
async fn watching_through_proxy(env: &TestEnv, window: &str) -> (Windowed, Proxy, std::path::PathBuf, String) {
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    let a = env.name("a");
    env.create_namespace(&a, &[], &[]).await;
    let proxy = Proxy::start(env.cp.api_address()).await;
    let dir = tempdir(env);
    let kubeconfig = proxy.kubeconfig(&env.kubeconfig, &dir);
    let run = start(
        env,
        &kubeconfig,
        &[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_WATCH", window),
        ],
    )
    .await;
    wait_for("the full pass", 30, || lists(env, &a, "default", &src)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    (run, proxy, dir, src)
}

fn tempdir(env: &TestEnv) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pullsecret-{}-{}", env.id, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
