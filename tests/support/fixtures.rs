//! Fixtures: one test's private corner of the shared cluster, and helpers that read results back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::Value;

use super::controlplane::ControlPlane;
use super::runner::{RunResult, run_binary};

pub const TEST_LABEL: &str = "pullsecret-test";

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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

    /// Waits (bounded: 30 s) until at least `n` Secrets named `name` exist across the cluster.
    pub async fn wait_for_copies(&self, name: &str, n: usize) {
        let secrets: Api<Secret> = Api::all(self.client.clone());
        let field = format!("metadata.name={name}");
        for _ in 0..600 {
            let found = secrets
                .list(&ListParams::default().fields(&field))
                .await
                .unwrap()
                .items
                .len();
            if found >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} copies of {name} after 30 s");
    }

    /// `kubectl annotate secret NAME -n NS CHANGE` (`key=value`, or `key-` to remove it).
    pub fn annotate_secret(&self, ns: &str, name: &str, change: &str) {
        let out = self
            .cp
            .kubectl()
            .args(["annotate", "secret", name, "-n", ns, change])
            .output()
            .unwrap();
        super::runner::ok(out, "kubectl annotate");
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
    /// (YAML list items) bound cluster-wide, plus the Lease rules every writing run needs; returns a
    /// kubeconfig that authenticates as it.
    pub async fn identity(&self, name: &str, rules: &str) -> PathBuf {
        let role = self.name(name);
        // Every writing run takes the Lease: that much is always granted (in the shipped Role).
        let rules = format!(
            "{rules}\n- {{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, patch, create]}}"
        );
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
            // The fixtures' registry (registry.example.invalid) does not exist: tests that are
            // not about verification (tests/integration/verify.rs) turn it off.
            ("PULLSECRET_VERIFY".into(), "off".into()),
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

    /// The settings an installed CronJob gets in `ns`: its ConfigMap `pullsecret-reconciler`
    /// (one-shot runs: the window has its own tests, and text logs read better in failures),
    /// and the in-cluster source namespace.
    pub async fn installed_settings(&self, ns: &str) -> Vec<(String, String)> {
        let config: k8s_openapi::api::core::v1::ConfigMap = Api::namespaced(self.client.clone(), ns)
            .get("pullsecret-reconciler")
            .await
            .unwrap();
        let mut vars: Vec<(String, String)> = config
            .data
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "PULLSECRET_LOG_FORMAT" && k != "PULLSECRET_WATCH")
            .collect();
        vars.push(("PULLSECRET_SOURCE_NAMESPACE".into(), ns.into()));
        vars
    }

    /// Two runs as `kubeconfig`: the first converges (exit 0), the second has nothing to write.
    pub async fn converge_twice(&self, kubeconfig: &Path, env: &[(&str, &str)]) {
        let first = self.run_as(kubeconfig, env).await;
        assert_eq!(first.code, 0, "first run: {first:?}");
        let second = self.run_as(kubeconfig, env).await;
        assert_eq!((second.code, second.writes()), (0, 0), "second run: {second:?}");
    }

    /// Runs the real binary scoped to this test, as whoever `kubeconfig` authenticates.
    pub async fn run_as(&self, kubeconfig: &Path, env: &[(&str, &str)]) -> RunResult {
        run_binary(kubeconfig, &self.vars(env)).await
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
