//! Test support: a real local control plane (tests/controlplane/up.sh) and helpers that run the
//! real reconciler binary against it and read results back through the API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::Value;

pub mod proxy;

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The reconciler binary: Cargo's for integration tests, the release build for the benchmark.
pub fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_pullsecret-reconciler") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/pullsecret-reconciler"),
    }
}
pub const TEST_LABEL: &str = "pullsecret-test";

/// A running control plane, stopped when dropped or, for the shared one, when the test process
/// exits (up.sh sees its stdin close and tears everything down).
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
    child: Mutex<Child>,
    stdin: Mutex<ChildStdin>,
    stdout: Mutex<BufReader<ChildStdout>>,
}

impl ControlPlane {
    /// Starts a new control plane; panics with the reason if it cannot (tests never skip).
    pub fn start() -> ControlPlane {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/up.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut kubeconfig, mut bin) = (None, None);
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
            } else if line == "READY" {
                break;
            }
        }
        ControlPlane {
            kubeconfig: kubeconfig.expect("up.sh printed no KUBECONFIG"),
            bin: bin.expect("up.sh printed no BIN"),
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

/// The outcome of one reconciler process.
#[derive(Debug)]
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    /// The JSON summary (every helper run uses `PULLSECRET_OUTPUT=json`).
    pub fn summary(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn count(&self, group: &str, key: &str) -> u64 {
        self.summary()[group][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {group}.{key} in {}", self.stdout))
    }

    pub fn writes(&self) -> u64 {
        self.count("api_requests", "writes")
    }

    pub fn problems(&self) -> Vec<Value> {
        self.summary()["problems"].as_array().cloned().unwrap_or_default()
    }
}

/// One test's private corner of the shared cluster: its own namespaces (labelled for the
/// reconciler's namespace selector), its own source namespace and inventory, and target names
/// prefixed with its id, so tests running side by side never see each other's objects.
pub struct TestEnv {
    pub id: String,
    pub client: Client,
    pub home: String,
    pub kubeconfig: PathBuf,
    pub cp: &'static ControlPlane,
}

impl TestEnv {
    pub async fn new(id: &str) -> TestEnv {
        TestEnv::on(ControlPlane::shared(), id).await
    }

    pub async fn on(cp: &'static ControlPlane, id: &str) -> TestEnv {
        let env = TestEnv {
            id: id.to_owned(),
            client: cp.client().await,
            home: format!("{id}-home"),
            kubeconfig: cp.kubeconfig.clone(),
            cp,
        };
        env.create_namespace(&env.home.clone(), &[], &[]).await;
        env
    }

    /// A name unique to this test (`<id>-<suffix>`).
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// Creates a namespace carrying this test's label and waits for its `default` ServiceAccount.
    pub async fn create_namespace(&self, name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) {
        let mut l = string_map(labels);
        l.insert(TEST_LABEL.into(), self.id.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(l),
                annotations: Some(string_map(annotations)),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        self.wait_for_service_account(name, "default").await;
    }

    pub async fn wait_for_service_account(&self, ns: &str, name: &str) {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        for _ in 0..300 {
            if api.get_opt(name).await.unwrap().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ServiceAccount {ns}/{name} never appeared: is kube-controller-manager running?");
    }

    /// A `kubernetes.io/dockerconfigjson` Secret with obviously fake credentials; returns its bytes.
    pub async fn create_source(&self, name: &str, user: &str, password: &str) -> Vec<u8> {
        let bytes = fake_dockerconfig(user, password);
        self.put_dockerconfig(&self.home.clone(), name, &bytes, &[]).await;
        bytes
    }

    /// Creates or replaces a `kubernetes.io/dockerconfigjson` Secret with `annotations`.
    pub async fn put_dockerconfig(&self, ns: &str, name: &str, bytes: &[u8], annotations: &[(&str, &str)]) {
        self.put_secret(
            ns,
            name,
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            bytes,
            &[],
            annotations,
        )
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn put_secret(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        key: &str,
        value: &[u8],
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(string_map(labels)),
                annotations: Some(string_map(annotations)),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(key.to_owned(), ByteString(value.to_vec()))])),
            ..Secret::default()
        };
        match api.get_opt(name).await.unwrap() {
            Some(old) => {
                let mut s = secret;
                s.metadata.resource_version = old.metadata.resource_version;
                api.replace(name, &PostParams::default(), &s).await.unwrap();
            }
            None => {
                api.create(&PostParams::default(), &secret).await.unwrap();
            }
        }
    }

    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    pub async fn delete_secret(&self, ns: &str, name: &str) {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    pub async fn service_account(&self, ns: &str, name: &str) -> ServiceAccount {
        Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .unwrap()
    }

    pub async fn pull_secrets(&self, ns: &str, sa: &str) -> Vec<String> {
        pull_secret_names(&self.service_account(ns, sa).await)
    }

    pub async fn set_pull_secrets(&self, ns: &str, sa: &str, names: &[&str]) {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let list: Vec<Value> = names.iter().map(|n| serde_json::json!({ "name": n })).collect();
        let patch = kube::api::Patch::Merge(serde_json::json!({ "imagePullSecrets": list }));
        api.patch(sa, &kube::api::PatchParams::default(), &patch).await.unwrap();
    }

    /// resourceVersions of every Secret, ServiceAccount and ConfigMap in this test's namespaces.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let selector = format!("{TEST_LABEL}={}", self.id);
        let namespaces = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        for ns in namespaces {
            let ns = ns.metadata.name.unwrap();
            self.versions::<Secret>(&ns, "secret", &mut out).await;
            self.versions::<ServiceAccount>(&ns, "sa", &mut out).await;
            self.versions::<k8s_openapi::api::core::v1::ConfigMap>(&ns, "cm", &mut out)
                .await;
        }
        out
    }

    async fn versions<K>(&self, ns: &str, kind: &str, out: &mut BTreeMap<String, String>)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        for o in Api::<K>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            let meta = o.meta();
            out.insert(
                format!("{kind}/{ns}/{}", meta.name.clone().unwrap()),
                meta.resource_version.clone().unwrap(),
            );
        }
    }

    /// A ServiceAccount `name` in this test's source namespace with exactly the ClusterRole `rules`
    /// (YAML list items) bound cluster-wide; returns a kubeconfig that authenticates as it.
    pub async fn identity(&self, name: &str, rules: &str) -> PathBuf {
        let role = self.name(name);
        self.cp.apply_yaml(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, namespace: {home}}}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {role}}}\nrules:\n{rules}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {role}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{kind: ServiceAccount, name: {name}, namespace: {home}}}]\n",
            home = self.home
        ));
        self.cp.service_account_kubeconfig(&self.home, name).await
    }

    /// The variables that scope a run to this test (its source namespace, its namespace selector,
    /// JSON output, a 60 s deadline), with `env` added or overriding.
    pub fn vars(&self, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            ("PULLSECRET_SOURCE_NAMESPACE".into(), self.home.clone()),
            (
                "PULLSECRET_NAMESPACE_SELECTOR".into(),
                format!("{TEST_LABEL}={}", self.id),
            ),
            ("PULLSECRET_OUTPUT".into(), "json".into()),
            ("PULLSECRET_TIMEOUT_SECS".into(), "60".into()),
        ];
        for (k, v) in env {
            vars.retain(|(key, _)| key != k);
            vars.push((k.to_string(), v.to_string()));
        }
        vars
    }

    /// Runs the real binary scoped to this test, as the admin.
    pub async fn run(&self, env: &[(&str, &str)]) -> RunResult {
        self.run_as(&self.kubeconfig, env).await
    }

    /// Runs the real binary scoped to this test, as whoever `kubeconfig` authenticates.
    pub async fn run_as(&self, kubeconfig: &Path, env: &[(&str, &str)]) -> RunResult {
        run_binary(kubeconfig, &self.vars(env)).await
    }
}

/// Runs the binary with a clean environment: only PATH, HOME, KUBECONFIG and `vars`.
pub async fn run_binary(kubeconfig: &Path, vars: &[(String, String)]) -> RunResult {
    run_binary_args(kubeconfig, vars, &[]).await
}

pub async fn run_binary_args(kubeconfig: &Path, vars: &[(String, String)], args: &[&str]) -> RunResult {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .args(args);
    for (k, v) in vars {
        if !v.is_empty() || k.starts_with("PULLSECRET_") {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().await.unwrap();
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn pull_secret_names(sa: &ServiceAccount) -> Vec<String> {
    sa.image_pull_secrets
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

pub fn secret_data(s: &Secret) -> Vec<u8> {
    s.data
        .as_ref()
        .and_then(|d| d.get(".dockerconfigjson"))
        .map(|b| b.0.clone())
        .unwrap_or_default()
}

pub fn is_ours(s: &Secret) -> bool {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
        .map(String::as_str)
        == Some("pullsecret-reconciler")
}

/// An obviously fake docker config.
pub fn fake_dockerconfig(user: &str, password: &str) -> Vec<u8> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"registry.example.invalid":{{"auth":"{auth}"}}}}}}"#).into_bytes()
}

impl ControlPlane {
    /// `kubectl apply --server-side -f -` of `yaml` as the admin.
    pub fn apply_yaml(&self, yaml: &str) {
        let mut child = self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
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
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap();
        let token = token.status.unwrap().token;
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let mut out = String::new();
        let mut skip = false;
        for line in admin.lines() {
            if line.starts_with("users:") {
                out.push_str(&format!("users:\n- name: admin\n  user:\n    token: {token}\n"));
                skip = true;
                continue;
            }
            if skip && (line.starts_with("- name: admin") || line.starts_with("  ")) {
                continue;
            }
            skip = false;
            out.push_str(line);
            out.push('\n');
        }
        let path = self.kubeconfig.with_file_name(format!("kubeconfig-{ns}-{name}"));
        std::fs::write(&path, out).unwrap();
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
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let server = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap();
        server.trim_start_matches("https://").to_owned()
    }
}
