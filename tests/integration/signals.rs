//! Signals in every stage: SIGTERM or SIGINT ends whatever the run is doing — reading the source,
//! verifying registries, waiting for the Lease, reading the cluster — with its summary (problem
//! `Stopped` naming the stage, nothing written, exit 1); a second signal exits at once (exit 1,
//! no summary). Each stage is held open by a real fault (a hung proxy, a registry that never
//! answers, a Lease held by another run) and the signal is sent once the run is seen in it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::support::proxy::{Mode, Proxy};
use crate::support::{RunResult, TestEnv, fake_dockerconfig};

/// A running reconciler whose stderr is collected as it comes.
struct Running {
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn start(kubeconfig: &std::path::Path, vars: &[(String, String)]) -> Running {
        let mut child = crate::support::runner::command(kubeconfig, vars, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running { child, stderr }
    }

    /// Waits (bounded) until `seen` holds.
    async fn until(&self, what: &str, seen: impl Fn(&str) -> bool) {
        for _ in 0..600 {
            if seen(&self.stderr.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the run never got to {what}: {}", self.stderr.lock().unwrap());
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// The outcome; the run must end long before any of its own timeouts would end it.
    async fn finish(self) -> RunResult {
        let mut child = self.child;
        let mut stdout = child.stdout.take().unwrap();
        let mut out = String::new();
        let status = tokio::time::timeout(Duration::from_secs(8), async {
            tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
                .await
                .unwrap();
            child.wait().await.unwrap()
        })
        .await
        .expect("a signalled run ends at once, not at a timeout of its own");
        tokio::time::sleep(Duration::from_millis(100)).await;
        RunResult {
            code: status.code().unwrap_or(-1),
            stdout: out,
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

async fn until_accepted(proxy: &Proxy) {
    for _ in 0..600 {
        if proxy.accepted() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run never connected");
}

/// The run stopped in `stage`: one `Stopped` error naming it, nothing written, exit 1.
fn stopped_in(run: &RunResult, stage: &str) {
    assert_eq!(run.code, 1, "stopped by a signal, not a broken setting: {run:?}");
    let stopped: Vec<_> = run
        .problems()
        .into_iter()
        .filter(|p| p["reason"] == "Stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "{}", run.stdout);
    let message = stopped[0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("while {stage}")), "{message}");
    assert_eq!(run.writes(), 0, "{}", run.stdout);
    assert!(
        run.summary().get("error").is_none(),
        "exit 2's `error` is for broken settings"
    );
}

async fn proxied(env: &TestEnv) -> (Proxy, std::path::PathBuf) {
    let proxy = Proxy::start(env.cp.api_address()).await;
    let dir = env.cp.kubeconfig.parent().unwrap().to_owned();
    let via = proxy.kubeconfig(&env.cp.kubeconfig, &dir);
    (proxy, via)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_reading_the_source_or_the_cluster_ends_the_run_with_its_summary() {
    let env = TestEnv::new("sg1").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;

    // A hung API server: the first request, the source Secret's read, never gets an answer.
    let (proxy, via) = proxied(&env).await;
    proxy.set(Mode::Hang, Duration::ZERO);
    let run = Running::start(&via, &env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src)]));
    until_accepted(&proxy).await;
    run.signal("TERM");
    stopped_in(&run.finish().await, "reading the source");

    // Inline credentials and a dry run (no Lease): the first request is the cluster read.
    let (proxy, via) = proxied(&env).await;
    proxy.set(Mode::Hang, Duration::ZERO);
    let config = String::from_utf8(fake_dockerconfig("fake-user", "fake-password")).unwrap();
    let vars = env.vars(&[("PULLSECRET_DOCKERCONFIGJSON", &config), ("PULLSECRET_DRY_RUN", "true")]);
    let run = Running::start(&via, &vars);
    until_accepted(&proxy).await;
    run.signal("INT");
    stopped_in(&run.finish().await, "reading the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_verifying_a_registry_that_never_answers_ends_the_run() {
    let env = TestEnv::new("sg2").await;
    // A registry that accepts the connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let config = json!({ "auths": { &server: { "username": "fake-user", "password": "fake-password" } } }).to_string();
    let vars = env.vars(&[("PULLSECRET_DOCKERCONFIGJSON", &config), ("PULLSECRET_VERIFY", "warn")]);
    let run = Running::start(&env.cp.kubeconfig, &vars);
    for _ in 0..600 {
        if accepted.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        "the run never called the registry"
    );
    run.signal("TERM");
    stopped_in(&run.finish().await, "verifying registries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_waiting_for_the_lease_ends_the_wait_and_leaves_the_lease_alone() {
    let env = TestEnv::new("sg3").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    // Another run holds the Lease and keeps it fresh.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.home);
    let now = k8s_openapi::jiff::Timestamp::now();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "pullsecret-reconciler" },
        "spec": { "holderIdentity": "other-run/1", "leaseDurationSeconds": 3600,
                  "acquireTime": now.to_string(), "renewTime": now.to_string() }
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let run = Running::start(&env.cp.kubeconfig, &env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src)]));
    run.until("the Lease wait", |s| s.contains("another run holds the Lease"))
        .await;
    run.signal("TERM");
    stopped_in(&run.finish().await, "waiting for the Lease");
    let after = leases.get("pullsecret-reconciler").await.unwrap();
    assert_eq!(after.spec.unwrap().holder_identity.as_deref(), Some("other-run/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_without_a_summary() {
    let env = TestEnv::new("sg4").await;
    let src = env.name("regcred");
    env.create_source(&src, "fake-user", "fake-password").await;
    for i in 0..30 {
        env.create_namespace(&env.name(&format!("n{i:02}")), &[], &[]).await;
    }
    let (proxy, via) = proxied(&env).await;
    proxy.set(Mode::Slow, Duration::from_millis(40));
    let vars = env.vars(&[("PULLSECRET_SOURCE_SECRETS", &src), ("PULLSECRET_CONCURRENCY", "1")]);
    let run = Running::start(&via, &vars);
    // Once copies are being written, the API server hangs: the first signal's grace for the
    // write in flight, the Events and the Lease release would all wait on it.
    env.wait_for_copies(&src, 4).await;
    proxy.set(Mode::Hang, Duration::ZERO);
    run.signal("INT");
    run.until("the first signal", |s| s.contains("asked to stop")).await;
    run.signal("INT");
    let out = run.finish().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "no summary after a second signal: {}",
        out.stdout
    );
    assert!(out.stderr.contains("asked to stop again"), "{}", out.stderr);
}
