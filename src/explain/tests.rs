//! explain without a cluster: judging from fixtures, and gathering through fakes of its own
//! `Reads` and `Registry` traits (the kubelet's credential order, late patches, `--stuck`'s bounds).

use super::*;
use k8s_openapi::ByteString;

fn secret(ty: &str, json: &str) -> SecretRead {
    SecretRead::Found(Box::new(Secret {
        type_: Some(ty.into()),
        data: Some([(".dockerconfigjson".to_string(), ByteString(json.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }))
}

#[test]
fn secrets_are_judged_and_only_good_ones_enter_the_keyring() {
    let good = r#"{"auths":{"ghcr.io":{"username":"u","password":"fake-p"}}}"#;
    let reads = vec![
        ("gone".to_string(), SecretRead::Missing),
        ("opaque".to_string(), secret("Opaque", good)),
        ("regcred".to_string(), secret("kubernetes.io/dockerconfigjson", good)),
        ("other".to_string(), SecretRead::Forbidden),
    ];
    let judge::Judged {
        steps,
        keyring,
        problems,
    } = judge_secrets("team", &reads);
    let results: Vec<StepResult> = steps.iter().map(|s| s.result).collect();
    assert_eq!(
        results,
        [
            StepResult::Failed,
            StepResult::Failed,
            StepResult::Ok,
            StepResult::Unknown
        ]
    );
    assert!(steps[0].detail.contains("does not exist in namespace team"));
    assert!(steps[1].detail.contains("has type Opaque"), "{}", steps[1].detail);
    assert_eq!(
        problems,
        vec![
            (Cause::SecretMissing, "gone".to_string()),
            (Cause::SecretWrongType, "opaque".to_string()),
            (Cause::SecretUnreadable, "other".to_string())
        ]
    );
    let found = keyring.lookup("ghcr.io/acme/app");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].source, "regcred");
    assert!(!format!("{steps:?}{found:?}").contains("fake-p"));
}

fn explained(namespace: &str, pod: &str, cause: Cause, subject: &str) -> PodExplanation {
    PodExplanation {
        namespace: namespace.into(),
        pod: Some(pod.into()),
        service_account: "default".into(),
        pull_secrets: vec![],
        pull_secrets_from: String::new(),
        would_pull: false,
        images: vec![ImageVerdict {
            container: "app".into(),
            image: "ghcr.io/acme/app".into(),
            would_pull: false,
            steps: vec![],
            cause: Some(cause),
            subject: subject.into(),
            verdict: String::new(),
            fix: "f".into(),
        }],
    }
}

#[test]
fn stuck_pods_group_by_cause_and_subject() {
    let pods = vec![
        explained("a", "p1", Cause::NoAuthsEntry, "ghcr.io"),
        explained("b", "p2", Cause::NoAuthsEntry, "ghcr.io"),
        explained("b", "p3", Cause::NoAuthsEntry, "ghcr.io"),
        explained("c", "p4", Cause::SecretMissing, "regcred"),
    ];
    let groups = group(&pods);
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0].summary,
        "3 Pods in 2 namespaces use ghcr.io, for which no Secret they name has an entry"
    );
    assert_eq!(groups[0].pods, vec!["a/p1", "b/p2", "b/p3"]);
    assert_eq!(
        groups[1].summary,
        "1 Pod in 1 namespace name Secret regcred, which does not exist in their namespace"
    );
}

// The seam: explain's gathering through fakes of its own traits, judged as on a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};

use crate::cluster::registry::{ManifestResult, Reply, Target, Verdict};

#[derive(Default)]
struct FakeReads {
    pods: BTreeMap<(String, String), Pod>,
    accounts: BTreeMap<(String, String), ServiceAccount>,
    secrets: BTreeMap<(String, String), Secret>,
    stuck: Vec<(Pod, BTreeSet<String>)>,
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

impl Reads for FakeReads {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self.pods.get(&key(namespace, name)).cloned())
    }
    async fn service_account(&self, namespace: &str, name: &str) -> Result<Option<ServiceAccount>> {
        Ok(self.accounts.get(&key(namespace, name)).cloned())
    }
    async fn secret(&self, namespace: &str, name: &str) -> Result<SecretRead> {
        Ok(match self.secrets.get(&key(namespace, name)) {
            Some(s) => SecretRead::Found(Box::new(s.clone())),
            None => SecretRead::Missing,
        })
    }
    async fn stuck_pods(&self) -> Result<Vec<(Pod, BTreeSet<String>)>> {
        Ok(self.stuck.clone())
    }
}

/// Accepts the password `right` on every registry; `hang` never answers a login.
#[derive(Default)]
struct FakeRegistry {
    hang: bool,
    logins: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Counts a login in flight until it ends or is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn start(registry: &'a FakeRegistry) -> InFlight<'a> {
        let now = registry.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        registry.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&registry.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Registry for FakeRegistry {
    async fn login(&self, target: &Target, host: &str, _: &str) -> Verdict {
        self.logins
            .lock()
            .unwrap()
            .push(format!("{host} as {}", target.username));
        let _flight = InFlight::start(self);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if target.password == "right" {
            (Reply::Ok, Some(200), "logged in".into())
        } else {
            (Reply::Rejected, Some(401), "401 Unauthorized".into())
        }
    }
    async fn manifest(&self, _: &oci_client::Reference, credentials: Option<&Target>) -> ManifestResult {
        match credentials {
            Some(_) => Ok("sha256:0000".into()),
            None => Err((Reply::Rejected, "anonymous pull refused (401)".into())),
        }
    }
}

fn pod(ns: &str, name: &str, sa: &str, pull_secrets: &[&str], image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "serviceAccountName": sa,
            "imagePullSecrets": pull_secrets.iter().map(|n| serde_json::json!({ "name": n })).collect::<Vec<_>>(),
            "containers": [{ "name": "app", "image": image }]
        }
    }))
    .unwrap()
}

fn account(ns: &str, name: &str, pull_secrets: &[&str]) -> ServiceAccount {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": ns },
        "imagePullSecrets": pull_secrets.iter().map(|n| serde_json::json!({ "name": n })).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn pull_secret(password: &str) -> Secret {
    let json = format!(r#"{{"auths":{{"registry.test":{{"username":"u-{password}","password":"{password}"}}}}}}"#);
    Secret {
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some([(".dockerconfigjson".to_string(), ByteString(json.into_bytes()))].into()),
        ..Secret::default()
    }
}

fn cluster() -> FakeReads {
    let mut reads = FakeReads::default();
    let image = "registry.test/team/app:1";
    reads
        .accounts
        .insert(key("team", "default"), account("team", "default", &["old", "new"]));
    reads.secrets.insert(key("team", "old"), pull_secret("wrong"));
    reads.secrets.insert(key("team", "new"), pull_secret("right"));
    // Both names, the wrong credential first: the kubelet tries the next one.
    reads.pods.insert(
        key("team", "both"),
        pod("team", "both", "default", &["old", "new"], image),
    );
    // Admitted when the ServiceAccount listed only `old`.
    reads
        .pods
        .insert(key("team", "early"), pod("team", "early", "default", &["old"], image));
    reads
        .pods
        .insert(key("team", "none"), pod("team", "none", "nobody", &[], image));
    reads
}

fn ask(name: &str) -> Question {
    Question::Pod {
        namespace: "team".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn each_matching_credential_is_tried_in_the_kubelets_order() {
    let (reads, registry) = (cluster(), FakeRegistry::default());
    let e = explain_one(&reads, &registry, &ask("both")).await.unwrap();
    assert!(e.would_pull, "{e:?}");
    assert_eq!(e.pull_secrets_from, "ServiceAccount default, copied at admission");
    assert_eq!(
        *registry.logins.lock().unwrap(),
        ["registry.test as u-wrong", "registry.test as u-right"]
    );
    let steps: Vec<(&str, StepResult)> = e.images[0].steps.iter().map(|s| (s.step, s.result)).collect();
    assert_eq!(
        steps,
        [
            ("pull-secrets", StepResult::Ok),
            ("secret", StepResult::Ok),
            ("secret", StepResult::Ok),
            ("match", StepResult::Ok),
            ("login", StepResult::Ok),
            ("manifest", StepResult::Ok)
        ]
    );
}

#[tokio::test]
async fn a_wrong_credential_alone_is_rejected_and_a_late_patch_is_named() {
    let (reads, registry) = (cluster(), FakeRegistry::default());
    let e = explain_one(&reads, &registry, &ask("early")).await.unwrap();
    assert!(!e.would_pull);
    assert_eq!(e.images[0].cause, Some(Cause::Rejected), "{e:?}");
    assert!(
        e.pull_secrets_from.contains("now also lists new"),
        "{}",
        e.pull_secrets_from
    );
    let e = explain_one(&reads, &registry, &ask("none")).await.unwrap();
    assert_eq!(e.images[0].cause, Some(Cause::NoPullSecrets), "{e:?}");
    assert!(e.pull_secrets_from.contains("ServiceAccount nobody does not exist"));
    let missing = explain_one(&reads, &registry, &ask("gone")).await.unwrap_err();
    assert_eq!(format!("{missing:#}"), "Pod team/gone does not exist");
}

/// A registry outage with more stuck Pods than the concurrency: `--stuck` stops at its deadline
/// with every Pod counted as not examined, never more than STUCK_CONCURRENCY at once.
#[tokio::test(start_paused = true)]
async fn stuck_stops_at_its_deadline_with_bounded_concurrency() {
    let mut reads = cluster();
    for i in 0..30 {
        let p = pod(
            "team",
            &format!("p{i}"),
            "default",
            &["new"],
            "registry.test/team/app:1",
        );
        reads.stuck.push((p, ["app".to_owned()].into()));
    }
    let registry = FakeRegistry {
        hang: true,
        ..FakeRegistry::default()
    };
    let started = tokio::time::Instant::now();
    let stuck = explain_stuck(&reads, &registry).await.unwrap();
    assert_eq!((stuck.pods.len(), stuck.late), (0, 30));
    assert_eq!(
        started.elapsed(),
        STUCK_DEADLINE,
        "virtual time: the deadline, not a Pod's timeout"
    );
    assert_eq!(registry.most_in_flight.load(Ordering::SeqCst), STUCK_CONCURRENCY);
    // Nothing is started after the deadline: only the first wave ever asked the registry.
    assert_eq!(registry.logins.lock().unwrap().len(), STUCK_CONCURRENCY);
    assert_eq!(
        render::print_stuck(&stuck, true),
        1,
        "Pods not examined are not a clean answer"
    );
}

#[tokio::test(start_paused = true)]
async fn stuck_pods_are_explained_and_grouped_when_registries_answer() {
    let mut reads = cluster();
    for (i, secret) in ["old", "old", "new"].iter().enumerate() {
        let p = pod(
            "team",
            &format!("p{i}"),
            "default",
            &[secret],
            "registry.test/team/app:1",
        );
        reads.stuck.push((p, ["app".to_owned()].into()));
    }
    let stuck = explain_stuck(&reads, &FakeRegistry::default()).await.unwrap();
    assert_eq!((stuck.pods.len(), stuck.late), (3, 0));
    let groups = group(&stuck.pods);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!((groups[0].cause, groups[0].pods.len()), (Cause::Rejected, 2));
}
