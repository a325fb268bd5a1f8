//! What we ship: the kustomize base applies, its RBAC is enough to converge and no more, and the
//! CronJob's Pod passes the "restricted" Pod Security profile.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::Value;

use crate::support::{ControlPlane, TestEnv, is_ours, secret_data};

pub const HOME: &str = "pullsecret-reconciler";

fn render(cp: &ControlPlane) -> String {
    render_dir(cp, &Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests"))
}

/// `kubectl kustomize DIR`.
pub fn render_dir(cp: &ControlPlane, dir: &Path) -> String {
    let out = cp.kubectl().arg("kustomize").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Applies the shipped manifests once for this test binary (server-side dry run first).
async fn installed(cp: &'static ControlPlane) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async { install(cp) }).await;
}

/// `kubectl apply -k manifests/`, with a server-side dry run of everything first.
pub fn install(cp: &ControlPlane) {
    install_rendered(cp, &render(cp));
}

/// Applies rendered manifests whose first object is their Namespace (server-side dry run first).
pub fn install_rendered(cp: &ControlPlane, yaml: &str) {
    // A server-side dry run cannot see a Namespace it did not persist: create that first,
    // then dry-run everything (validation, admission, RBAC escalation checks), then apply.
    let ns = cp.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        yaml.split("\n---\n").next().unwrap(),
    );
    assert!(
        ns.status.success(),
        "namespace apply failed: {}",
        String::from_utf8_lossy(&ns.stderr)
    );
    let dry = cp.kubectl_stdin(&["apply", "--server-side", "--dry-run=server", "-f", "-"], yaml);
    assert!(
        dry.status.success(),
        "server-side dry run failed: {}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let real = cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], yaml);
    assert!(
        real.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&real.stderr)
    );
}

/// The shipped settings as the CronJob gets them (JSON logs aside, for readable failures), with the
/// source namespace in-cluster runs take from the Pod.
pub fn shipped_vars() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = config_env()
        .into_iter()
        // One-shot runs here: the watch window has its own tests (tests/integration/watch.rs).
        .filter(|(k, _)| k != "PULLSECRET_LOG_FORMAT" && k != "PULLSECRET_WATCH")
        .collect();
    vars.push(("PULLSECRET_SOURCE_NAMESPACE".into(), HOME.into()));
    vars
}

fn config_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/config.env")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_jobs_deadline_is_the_tools_deadline_plus_its_reporting_time() {
    let timeout: u64 = config_env()
        .into_iter()
        .find(|(k, _)| k == "PULLSECRET_TIMEOUT_SECS")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let cronjob =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/cronjob.yaml")).unwrap();
    let deadline = cronjob
        .lines()
        .find_map(|l| l.trim().strip_prefix("activeDeadlineSeconds:"))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .unwrap();
    assert_eq!(
        deadline,
        timeout + 120,
        "manifests/cronjob.yaml and config.env drifted apart"
    );
}

#[test]
fn the_shipped_window_tiles_the_schedule() {
    let window = config_env()
        .into_iter()
        .find(|(k, _)| k == "PULLSECRET_WATCH")
        .map(|(_, v)| pullsecret_reconciler::core::duration::parse_go_duration(&v).unwrap())
        .expect("config.env sets PULLSECRET_WATCH");
    let cronjob =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/cronjob.yaml")).unwrap();
    assert!(cronjob.contains(r#"schedule: "*/5 * * * *""#), "a 5-minute schedule");
    assert!(cronjob.contains("concurrencyPolicy: Forbid"));
    let deadline = cronjob
        .lines()
        .find_map(|l| l.trim().strip_prefix("activeDeadlineSeconds:"))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .unwrap();
    let (window, period) = (window.as_secs(), 300);
    assert!(window < period, "a run ends before the next one is due ({window}s)");
    assert!(
        period - window <= 30,
        "no uncovered gap over ~30 s between windows ({window}s)"
    );
    assert!(
        window + 30 + 20 < deadline,
        "the Job's deadline ({deadline}s) leaves room for the window, one reaction and the report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rbac_names_every_configured_target() {
    let rendered = render(ControlPlane::shared());
    let (_, list) = config_env()
        .into_iter()
        .find(|(k, _)| k == "PULLSECRET_SOURCE_SECRETS")
        .unwrap();
    for entry in list.split(',') {
        let target = entry.rsplit('=').next().unwrap().trim();
        // Once in the ClusterRole (list/patch/delete everywhere), once in the Role (source get).
        let listed = rendered.matches(&format!("resourceNames:\n  - {target}\n")).count();
        assert_eq!(
            listed, 2,
            "{target} must be in both resourceNames lists of the shipped RBAC"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cronjob_identity_converges_with_exactly_the_shipped_rbac() {
    let env = TestEnv::new("sh1").await;
    installed(env.cp).await;
    let bytes = crate::support::fake_dockerconfig("fake-user", "fake-password");
    env.put_dockerconfig(HOME, "regcred", &bytes, &[]).await;
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
    }
    env.set_pull_secrets(&namespaces[0], "default", &["other-secret"]).await;

    let kubeconfig = env.cp.service_account_kubeconfig(HOME, "pullsecret-reconciler").await;
    // The shipped settings; env.vars' selector keeps this test to its own namespaces.
    let shipped = shipped_vars();
    let vars: Vec<(&str, &str)> = shipped.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.converge_twice(&kubeconfig, &vars).await;
    for ns in &namespaces {
        let s = env.secret(ns, "regcred").await.unwrap();
        assert!(is_ours(&s) && secret_data(&s) == bytes);
    }
    assert_eq!(
        env.pull_secrets(&namespaces[0], "default").await,
        vec!["other-secret".to_string(), "regcred".to_string()]
    );

    // ...and cannot read anything else.
    let client = crate::support::client_for(&kubeconfig).await;
    env.put_secret(
        &namespaces[1],
        "database-password",
        "Opaque",
        "password",
        b"not-for-you",
        &[],
        &[],
    )
    .await;
    let denied = Api::<Secret>::namespaced(client.clone(), &namespaces[1])
        .get("database-password")
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{denied:?}"
    );
    let all = Api::<Secret>::all(client.clone()).list(&ListParams::default()).await;
    assert!(
        matches!(all, Err(kube::Error::Api(ref s)) if s.code == 403),
        "listing every Secret must be forbidden"
    );
    let other_name = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().fields("metadata.name=database-password"))
        .await;
    assert!(
        matches!(other_name, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{other_name:?}"
    );
    let managed = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().fields("metadata.name=regcred"))
        .await;
    assert!(managed.is_ok(), "the managed name is readable with the field selector");
    let source_ns_other = Api::<Secret>::namespaced(client.clone(), HOME)
        .get("some-other-secret")
        .await;
    assert!(
        matches!(source_ns_other, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{source_ns_other:?}"
    );
    // No Pod reads beyond prune's list: `get` (explain runs as its user) and `watch` (healing's).
    let pods = Api::<Pod>::namespaced(client.clone(), &namespaces[0]);
    let get = pods.get("any").await;
    assert!(matches!(get, Err(kube::Error::Api(ref s)) if s.code == 403), "{get:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cronjob_pod_is_admitted_under_restricted_pod_security() {
    let cp = ControlPlane::shared();
    installed(cp).await;
    let out = cp
        .kubectl()
        .args(["-n", HOME, "get", "cronjob", "pullsecret-reconciler", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cronjob: Value = serde_json::from_slice(&out.stdout).unwrap();
    let template = &cronjob["spec"]["jobTemplate"]["spec"]["template"];
    let mut pod = serde_json::json!({ "metadata": { "name": "admission-check" }, "spec": template["spec"].clone() });
    let pod_ok: Pod = serde_json::from_value(pod.clone()).unwrap();
    let client = cp.client().await;
    let pods: Api<Pod> = Api::namespaced(client, HOME);
    pods.create(&PostParams::default(), &pod_ok)
        .await
        .expect("the CronJob's Pod must pass the restricted profile");

    // The namespace really enforces it: a privileged variant is refused.
    pod["metadata"]["name"] = "admission-check-privileged".into();
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = true.into();
    let bad: Pod = serde_json::from_value(pod).unwrap();
    let refused = pods.create(&PostParams::default(), &bad).await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{refused:?}"
    );
}
