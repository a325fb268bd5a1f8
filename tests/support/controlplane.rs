//! The real local control plane (tests/controlplane/up.sh): etcd, kube-apiserver and
//! kube-controller-manager, started once per test binary; admin helpers on top of it. With a
//! node (`up.sh --node`) it is a one-node cluster: scheduler, every controller, containerd and a
//! kubelet.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::kubeconfig;

/// A running control plane, stopped when dropped or, for the shared one, when the test process
/// exits (up.sh sees its stdin close and tears everything down).
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
    /// The node's folder (certs.d, pod-logs), when started with a node.
    pub node: Option<PathBuf>,
    child: Mutex<Child>,
    stdin: Mutex<ChildStdin>,
    stdout: Mutex<BufReader<ChildStdout>>,
}

impl ControlPlane {
    /// Starts a new control plane; panics with the reason if it cannot (tests never skip).
    pub fn start() -> ControlPlane {
        ControlPlane::start_with(&[])
    }

    /// Starts a one-node cluster (`up.sh --node`).
    pub fn start_node() -> ControlPlane {
        ControlPlane::start_with(&["--node"])
    }

    fn start_with(args: &[&str]) -> ControlPlane {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/up.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut kubeconfig, mut bin, mut node) = (None, None, None);
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).unwrap();
            if n == 0 {
                let status = child.wait().ok();
                panic!("the local control plane failed to start ({status:?}); see the controlplane: lines above");
            }
            let line = line.trim();
            if let Some(p) = line.strip_prefix("KUBECONFIG=") {
                kubeconfig = Some(PathBuf::from(p));
            } else if let Some(p) = line.strip_prefix("BIN=") {
                bin = Some(PathBuf::from(p));
            } else if let Some(p) = line.strip_prefix("NODE=") {
                node = Some(PathBuf::from(p));
            } else if line == "READY" {
                break;
            }
        }
        ControlPlane {
            kubeconfig: kubeconfig.expect("up.sh printed no KUBECONFIG"),
            bin: bin.expect("up.sh printed no BIN"),
            node,
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            stdout: Mutex::new(stdout),
        }
    }

    /// The control plane shared by every test of this test binary.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(ControlPlane::start)
    }

    /// Sends a supervisor command (`stop-apiserver`, `start-apiserver`) and waits for its answer.
    pub fn command(&self, cmd: &str) {
        writeln!(self.stdin.lock().unwrap(), "{cmd}").unwrap();
        let mut line = String::new();
        self.stdout.lock().unwrap().read_line(&mut line).unwrap();
        assert!(line.starts_with("OK"), "control plane command {cmd} failed: {line}");
    }

    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin.join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            let _ = writeln!(stdin, "stop");
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.wait();
        }
    }
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

impl ControlPlane {
    /// kubectl `args` as the admin with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `kubectl apply --server-side -f -` of `yaml` as the admin.
    pub fn apply_yaml(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A kubeconfig that authenticates as ServiceAccount `ns/name` with a bound token
    /// (TokenRequest), for tests that must run with exactly some RBAC.
    pub async fn service_account_kubeconfig(&self, ns: &str, name: &str) -> PathBuf {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let client = self.client().await;
        let api: Api<ServiceAccount> = Api::namespaced(client, ns);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let token = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap();
        let token = token.status.unwrap().token.unwrap();
        let path = self.kubeconfig.with_file_name(format!("kubeconfig-{ns}-{name}"));
        kubeconfig::with_token(&self.kubeconfig, &token, &path);
        path
    }

    /// Sum of a counter from the API server's /metrics whose labels contain `filter`.
    pub async fn metric(&self, name: &str, filter: &str) -> f64 {
        let client = self.client().await;
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = client.request_text(req).await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

impl ControlPlane {
    /// Stops this control plane now (for private ones; the shared one stops at process exit).
    pub fn stop(&self) {
        let _ = writeln!(self.stdin.lock().unwrap(), "stop");
        let _ = self.child.lock().unwrap().wait();
    }

    /// host:port of the API server, for a proxy in front of it.
    pub fn api_address(&self) -> String {
        kubeconfig::server(&self.kubeconfig)
            .trim_start_matches("https://")
            .to_owned()
    }
}

/// The Kubernetes version the tests run: `PULLSECRET_KUBERNETES_VERSION`, else the default of
/// tests/controlplane/versions.env (what up.sh builds and starts).
pub fn kubernetes_version() -> String {
    if let Ok(v) = std::env::var("PULLSECRET_KUBERNETES_VERSION") {
        return v;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/versions.env");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION="))
        .unwrap()
        .trim()
        .to_owned()
}
