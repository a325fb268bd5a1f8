//! The node's side of a test: workloads of the test registry's images (hostNetwork, loopback
//! only), and what the kubelet did with them — Pod status, container states and the kubelet's
//! own Events. Containers are killed through containerd, as a crash would.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::json;

use super::controlplane::ControlPlane;
use super::registry::Registry;

/// The one-node cluster shared by every test of this test binary.
pub fn shared() -> &'static ControlPlane {
    static SHARED: std::sync::OnceLock<ControlPlane> = std::sync::OnceLock::new();
    SHARED.get_or_init(ControlPlane::start_node)
}

impl ControlPlane {
    fn node_dir(&self) -> &PathBuf {
        self.node
            .as_ref()
            .expect("this control plane was started without a node")
    }

    /// Makes containerd trust `registry`'s test CA (certs.d/HOST:PORT/hosts.toml; containerd
    /// reads the folder at every pull).
    pub fn trust(&self, registry: &Registry) {
        let dir = self.node_dir().join("certs.d").join(&registry.host);
        std::fs::create_dir_all(&dir).unwrap();
        let host = &registry.host;
        let ca = registry.ca.display();
        std::fs::write(
            dir.join("hosts.toml"),
            format!("server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  ca = \"{ca}\"\n"),
        )
        .unwrap();
    }

    /// The API server's port, for Pods on the node (no kube-proxy: they set
    /// KUBERNETES_SERVICE_HOST=127.0.0.1 and this port).
    pub fn api_port(&self) -> u16 {
        self.api_address().rsplit(':').next().unwrap().parse().unwrap()
    }

    /// What a container of a Pod wrote (the kubelet's log file; `kubectl logs` needs a node
    /// address, which a loopback node does not have). Empty when there is none yet.
    pub fn pod_log(&self, pod: &Pod, container: &str) -> String {
        let meta = &pod.metadata;
        let folder = format!(
            "{}_{}_{}",
            meta.namespace.as_deref().unwrap(),
            meta.name.as_deref().unwrap(),
            meta.uid.as_deref().unwrap()
        );
        let dir = self.node_dir().join("pod-logs").join(folder).join(container);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        // CRI log lines: "TIME STREAM TAG MESSAGE".
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills a container's process through containerd (SIGKILL), as a crash would; the kubelet
    /// then restarts it from the image it has.
    pub fn kill_container(&self, pod: &Pod, container: &str) {
        let status = container_status(pod, container).expect("no status for that container");
        let id = status
            .container_id
            .as_deref()
            .and_then(|c| c.strip_prefix("containerd://"))
            .expect("a containerd container id");
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.node_dir().join("containerd/containerd.sock"))
            .args(["--namespace", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr tasks kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A namespace for workloads on the node: hostNetwork needs the "privileged" Pod Security level.
pub const PRIVILEGED: (&str, &str) = ("pod-security.kubernetes.io/enforce", "privileged");

/// A Deployment of `image` (the busybox app image: `sleep 3600`) on the host network.
pub fn deployment(ns: &str, name: &str, image: &str, replicas: u32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": pod_spec(image, &[]),
            }
        }
    })
}

/// A Pod spec running `image` on the host network, naming `pull_secrets` (none: the
/// ServiceAccount's are copied in at admission).
pub fn pod_spec(image: &str, pull_secrets: &[&str]) -> serde_json::Value {
    let mut spec = json!({
        "hostNetwork": true,
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": false,
        "containers": [{ "name": "app", "image": image, "imagePullPolicy": "IfNotPresent" }]
    });
    if !pull_secrets.is_empty() {
        let names: Vec<_> = pull_secrets.iter().map(|n| json!({ "name": n })).collect();
        spec["imagePullSecrets"] = json!(names);
    }
    spec
}

/// The names in a Pod's own `spec.imagePullSecrets`.
pub fn pod_pull_secrets(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

pub fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
}

/// What the kubelet says of a Pod's image pull, from its container statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// Not decided yet (scheduling, pulling).
    Pending,
    /// Every container runs (or ran to completion): the images were pulled or present.
    Pulled,
    /// A container waits on ErrImagePull/ImagePullBackOff (or another image error): the message.
    Failed(String),
}

pub fn pull(pod: &Pod) -> Pull {
    let Some(status) = pod.status.as_ref() else {
        return Pull::Pending;
    };
    let all: Vec<&ContainerStatus> = status.container_statuses.iter().flatten().collect();
    for c in &all {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
            ) {
                return Pull::Failed(format!("{reason}: {}", w.message.as_deref().unwrap_or_default()));
            }
        }
    }
    let started = |c: &&ContainerStatus| {
        c.state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    };
    if !all.is_empty() && all.iter().all(started) {
        Pull::Pulled
    } else {
        Pull::Pending
    }
}

/// Polls `check` every half second until it returns Some, for at most `secs`; panics naming
/// `what` and the last state seen.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..secs * 2 {
        match check().await {
            Ok(v) => return v,
            Err(state) => last = state,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out after {secs}s waiting for {what}; last state: {last}");
}

pub async fn pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(selector)).await.unwrap().items
}

fn describe(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| format!("{}: {:?}", p.metadata.name.as_deref().unwrap_or("?"), pull(p)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits until exactly `n` Pods match `selector`, none terminating, and all run.
pub async fn wait_running(client: &Client, ns: &str, selector: &str, n: usize) -> Vec<Pod> {
    wait_for(&format!("{n} running Pod(s) {selector} in {ns}"), 180, || async {
        let pods = pods(client, ns, selector).await;
        let live: Vec<Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        if live.len() == n && pods.len() == n && live.iter().all(|p| pull(p) == Pull::Pulled) {
            Ok(live)
        } else {
            Err(describe(&pods))
        }
    })
    .await
}

/// Waits until a Pod matching `selector` fails its pull; that Pod and the kubelet's message.
pub async fn wait_pull_failed(client: &Client, ns: &str, selector: &str) -> (Pod, String) {
    wait_for(&format!("a pull failure of {selector} in {ns}"), 180, || async {
        let pods = pods(client, ns, selector).await;
        for p in &pods {
            if let Pull::Failed(m) = pull(p) {
                return Ok((p.clone(), m));
            }
        }
        Err(describe(&pods))
    })
    .await
}

/// The kubelet's Events about Pod `name` in `ns`, oldest first, as "Reason: message".
pub async fn kubelet_events(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut events = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items;
    events.retain(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("kubelet"));
    events.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
    events
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// Checks what the kubelet said of each of `pods`' image: one Pod's pull succeeded, and every
/// other one either pulled too or found the image on the node and verified that its own pull
/// credentials may use it (KEP-2535: "already present on machine and can be accessed by the
/// pod"). Returns the kubelet's Event lines of a Pod that pulled.
pub async fn assert_pulled(client: &Client, pods: &[Pod]) -> Vec<String> {
    const PULLED: &str = "Pulled: Successfully pulled image";
    const VERIFIED: &str = "already present on machine and can be accessed by the pod";
    let mut pulled = None;
    for pod in pods {
        let ns = pod.metadata.namespace.as_deref().unwrap();
        let events = kubelet_events(client, ns, pod.metadata.name.as_deref().unwrap()).await;
        if events.iter().any(|e| e.starts_with(PULLED)) {
            pulled = Some(events);
        } else {
            assert!(
                events.iter().any(|e| e.contains(VERIFIED)),
                "the kubelet neither pulled nor verified the image for {ns}/{}: {events:?}",
                pod.metadata.name.as_deref().unwrap()
            );
        }
    }
    pulled.unwrap_or_else(|| panic!("none of these Pods pulled its image: {}", describe(pods)))
}

/// Every kubelet Event in `ns` that reports a failed pull ("Failed" with a pull message).
pub async fn pull_failures(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Failed"))
        .filter_map(|e| e.message.clone())
        .filter(|m| m.contains("pull") || m.contains("image"))
        .collect()
}
