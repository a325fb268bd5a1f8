//! The Helm chart (charts/pullsecret-reconciler) with a real `helm`, built once from its Go module
//! (tests/tools/helm, cached beside the control plane): `helm lint`, the same objects as the
//! kustomize base with default values, RBAC names derived from the configuration, a server-side
//! dry run of `helm template`, and a real `helm install` on a control plane of its own whose
//! CronJob identity converges under the chart's RBAC and admission fence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;

use crate::support::{ControlPlane, TestEnv, client_for, is_ours, ok, secret_data};

const NS: &str = "pullsecret-reconciler";
/// `helm install` goes elsewhere: the RBAC, the fence and the settings follow the release namespace.
const INSTALL_NS: &str = "platform-pulls";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/pullsecret-reconciler")
}

/// The cached helm binary (built on first use; a build failure fails the test, saying why).
fn helm() -> PathBuf {
    crate::support::tools::tool("helm")
}

/// The chart tests' own control plane: the shared one carries the kustomize install, whose
/// cluster-scoped objects (ClusterRole, admission policy) have the same names.
fn cp() -> &'static ControlPlane {
    static CP: OnceLock<&'static ControlPlane> = OnceLock::new();
    CP.get_or_init(|| Box::leak(Box::new(ControlPlane::start())))
}

fn helm_cmd(cp: &ControlPlane, args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .env("KUBECONFIG", &cp.kubeconfig)
        // helm keeps its caches and repository config here, never in the user's home.
        .env("HELM_CACHE_HOME", cp.kubeconfig.with_file_name("helm-cache"))
        .env("HELM_CONFIG_HOME", cp.kubeconfig.with_file_name("helm-config"))
        .env("HELM_DATA_HOME", cp.kubeconfig.with_file_name("helm-data"))
        .output()
        .unwrap()
}

/// `helm template` into the release namespace `pullsecret-reconciler`, as installed.
fn template(cp: &ControlPlane, set: &[&str]) -> String {
    template_in(cp, NS, set)
}

fn template_in(cp: &ControlPlane, namespace: &str, set: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "pullsecret-reconciler",
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    ok(helm_cmd(cp, &args), "helm template")
}

/// `helm template` of the chart with a values file.
fn template_with(cp: &ControlPlane, values: &Path, what: &str) -> String {
    let chart = chart();
    let args = [
        "template",
        "pullsecret-reconciler",
        chart.to_str().unwrap(),
        "--namespace",
        NS,
        "-f",
        values.to_str().unwrap(),
    ];
    ok(helm_cmd(cp, &args), what)
}

/// YAML documents -> objects keyed by "Kind/name", by kubectl's own parser (client-side).
fn objects(cp: &ControlPlane, yaml: &str) -> BTreeMap<String, Value> {
    let json = ok(
        cp.kubectl_stdin(&["create", "--dry-run=client", "-o", "json", "-f", "-"], yaml),
        "kubectl create --dry-run=client",
    );
    serde_json::Deserializer::from_str(&json)
        .into_iter::<Value>()
        .map(|v| {
            let v = v.unwrap();
            let key = format!(
                "{}/{}",
                v["kind"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            );
            (key, v)
        })
        .collect()
}

/// Drops the labels Helm adds (instance, version, managed-by: Helm, chart) wherever labels are.
fn without_helm_labels(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(labels)) = map.get_mut("labels") {
                labels.remove("app.kubernetes.io/instance");
                labels.remove("app.kubernetes.io/version");
                labels.remove("helm.sh/chart");
                if labels.get("app.kubernetes.io/managed-by") == Some(&Value::from("Helm")) {
                    labels.remove("app.kubernetes.io/managed-by");
                }
            }
            map.values_mut().for_each(without_helm_labels);
        }
        Value::Array(items) => items.iter_mut().for_each(without_helm_labels),
        _ => {}
    }
}

fn rules(objects: &BTreeMap<String, Value>, key: &str) -> Vec<(Vec<String>, Vec<String>)> {
    objects[key]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resources"] == serde_json::json!(["secrets"]))
        .map(|r| {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            (strings(&r["resourceNames"]), strings(&r["verbs"]))
        })
        .collect()
}

#[test]
fn the_chart_lints_and_renders_the_kustomize_base() {
    let cp = cp();
    let lint = helm_cmd(cp, &["lint", "--strict", chart().to_str().unwrap()]);
    let text = ok(lint, "helm lint --strict");
    assert!(text.contains("0 chart(s) failed"), "{text}");

    // Helm's convention: the release namespace is made by `helm install --create-namespace`,
    // never by the chart; the kustomize base creates its own.
    let chart = same_as_kustomize(cp, &[], &[]);

    // Every PULLSECRET_* setting is a value (the two credentials go through envFromSecret).
    let values = std::fs::read_to_string(chart_path("values.yaml")).unwrap();
    let mut listed: Vec<String> = values
        .lines()
        .filter_map(|l| l.strip_prefix("  PULLSECRET_"))
        .map(|l| format!("PULLSECRET_{}", l.split(':').next().unwrap()))
        .chain([
            "PULLSECRET_DOCKERCONFIGJSON".into(),
            "PULLSECRET_REGISTRY_PASSWORD".into(),
        ])
        .collect();
    listed.sort();
    let known: Vec<String> = pullsecret_reconciler::config::known_variables().into_iter().collect();
    assert_eq!(listed, known, "values.yaml config lists every variable");

    // One version everywhere; never `latest`.
    let version = env!("CARGO_PKG_VERSION");
    let chart_yaml = std::fs::read_to_string(chart_path("Chart.yaml")).unwrap();
    assert!(chart_yaml.contains(&format!("\nversion: {version}\n")), "{chart_yaml}");
    assert!(
        chart_yaml.contains(&format!("\nappVersion: \"{version}\"\n")),
        "{chart_yaml}"
    );
    let image = chart["CronJob/pullsecret-reconciler"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .clone();
    assert_eq!(image, format!("pullsecret-reconciler:{version}"));
}

fn chart_path(file: &str) -> PathBuf {
    chart().join(file)
}

#[test]
fn the_chart_rbac_names_follow_the_configuration() {
    let cp = cp();
    let o = objects(
        cp,
        &template(
            cp,
            &[
                "config.PULLSECRET_SOURCE_SECRETS=regcred=pull\\, ghcr",
                "rbac.extraSecretNames={old-name}",
            ],
        ),
    );
    let cluster = rules(&o, "ClusterRole/pullsecret-reconciler");
    let writes: Vec<String> = ["pull", "ghcr", "old-name"].map(String::from).into();
    assert_eq!(cluster[0].0, writes, "{cluster:?}");
    assert_eq!(cluster[1], (vec![], vec!["create".to_string()]));
    let own = rules(&o, "Role/pullsecret-reconciler");
    assert_eq!(
        own,
        vec![(
            vec!["regcred".to_string(), "ghcr".to_string()],
            ["get", "list", "watch"].map(String::from).to_vec()
        )]
    );

    // The inline/file/registry modes: PULLSECRET_SECRET_NAME is written, no source Secret is read.
    let o = objects(
        cp,
        &template(
            cp,
            &[
                "config.PULLSECRET_SOURCE_SECRETS=",
                "config.PULLSECRET_DOCKERCONFIGJSON_FILE=/etc/pull/config.json",
                "config.PULLSECRET_SECRET_NAME=registry-pull",
                "envFromSecret=ci-credentials",
            ],
        ),
    );
    assert_eq!(
        rules(&o, "ClusterRole/pullsecret-reconciler")[0].0,
        vec!["registry-pull".to_string()]
    );
    assert!(rules(&o, "Role/pullsecret-reconciler").is_empty());
    let container =
        &o["CronJob/pullsecret-reconciler"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["envFrom"][1]["secretRef"]["name"], "ci-credentials");

    // A credential in values is refused, naming the value and not echoing it.
    let chart = chart();
    let refused = helm_cmd(
        cp,
        &[
            "template",
            "x",
            chart.to_str().unwrap(),
            "--set",
            "config.PULLSECRET_REGISTRY_PASSWORD=fake-hunter2",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("config.PULLSECRET_REGISTRY_PASSWORD: a credential does not belong in values"),
        "{stderr}"
    );
    assert!(!stderr.contains("fake-hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_converges_under_the_charts_rbac_and_fence() {
    let cp = cp();
    // `helm template | kubectl apply --dry-run=server`: a server-side dry run cannot see a
    // Namespace it did not persist, so this one renders into a namespace that exists.
    let dry_ns = "chart-dry-run";
    ok(
        cp.kubectl().args(["create", "namespace", dry_ns]).output().unwrap(),
        "create namespace",
    );
    let rendered = template_in(cp, dry_ns, &[]);
    ok(
        cp.kubectl_stdin(&["apply", "--server-side", "--dry-run=server", "-f", "-"], &rendered),
        "kubectl apply --dry-run=server of helm template",
    );

    let chart = chart();
    let install = helm_cmd(
        cp,
        &[
            "install",
            "pullsecret-reconciler",
            chart.to_str().unwrap(),
            "--namespace",
            INSTALL_NS,
            "--create-namespace",
        ],
    );
    let text = ok(install, "helm install");
    assert!(text.contains("STATUS: deployed"), "{text}");
    assert!(text.contains("create secret docker-registry regcred"), "NOTES: {text}");

    let env = TestEnv::on(cp, "hc1").await;
    let bytes = crate::support::fake_dockerconfig("fake-user", "fake-password");
    env.put_dockerconfig(INSTALL_NS, "regcred", &bytes, &[]).await;
    let namespaces: Vec<String> = (0..3).map(|i| env.name(&format!("n{i}"))).collect();
    for ns in &namespaces {
        env.create_namespace(ns, &[], &[]).await;
    }

    let vars = env.installed_settings(INSTALL_NS).await;
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let kubeconfig = cp.service_account_kubeconfig(INSTALL_NS, "pullsecret-reconciler").await;

    // The fence is live for the job's identity (the API server loads policies asynchronously).
    let client = client_for(&kubeconfig).await;
    let mut fenced = false;
    for _ in 0..300 {
        let stray = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("not-managed".into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    k8s_openapi::ByteString(br#"{"auths":{}}"#.to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        let r = Api::<Secret>::namespaced(client.clone(), &namespaces[0])
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &stray,
            )
            .await;
        if let Err(kube::Error::Api(s)) = &r
            && s.message.contains("pullsecret-reconciler fence [secret-name]")
        {
            fenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fenced,
        "the chart's admission fence never denied an unmanaged Secret name"
    );

    env.converge_twice(&kubeconfig, &vars).await;
    for ns in &namespaces {
        let s = env.secret(ns, "regcred").await.unwrap();
        assert!(is_ours(&s) && secret_data(&s) == bytes);
        assert_eq!(env.pull_secrets(ns, "default").await, vec!["regcred".to_string()]);
    }

    // An upgrade that renames the target moves the RBAC with it; uninstall removes it all.
    let upgrade = helm_cmd(
        cp,
        &[
            "upgrade",
            "pullsecret-reconciler",
            chart.to_str().unwrap(),
            "--namespace",
            INSTALL_NS,
            "--set",
            "config.PULLSECRET_SOURCE_SECRETS=regcred=pull",
            "--set",
            "rbac.extraSecretNames={regcred}",
        ],
    );
    ok(upgrade, "helm upgrade");
    let role = ok(
        cp.kubectl()
            .args(["get", "clusterrole", "pullsecret-reconciler", "-o", "json"])
            .output()
            .unwrap(),
        "get clusterrole",
    );
    let role: Value = serde_json::from_str(&role).unwrap();
    assert_eq!(
        role["rules"][2]["resourceNames"],
        serde_json::json!(["pull", "regcred"])
    );
    ok(
        helm_cmd(
            cp,
            &[
                "uninstall",
                "pullsecret-reconciler",
                "--namespace",
                INSTALL_NS,
                "--wait",
                "--debug",
            ],
        ),
        "helm uninstall",
    );
    let gone = cp
        .kubectl()
        .args(["get", "clusterrole", "pullsecret-reconciler"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the ClusterRole is removed with the release");
}

/// The lines of the block under `key:` in `file`'s text, dedented (the examples' YAML is ours and
/// regular: two-space indentation, no flow style in these blocks).
fn block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim_start() != key);
    let head = lines.next().unwrap_or_else(|| panic!("no {key} in the example"));
    let indent = head.len() - head.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect();
    let strip = body.iter().map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    body.iter().map(|l| format!("{}\n", &l[strip.min(l.len())..])).collect()
}

#[test]
fn fleet_examples_render_with_what_we_ship() {
    let cp = cp();
    let examples = root().join("manifests/examples");
    let dir = cp.kubeconfig.with_file_name("fleet-examples");
    std::fs::create_dir_all(&dir).unwrap();

    // Argo CD: the ApplicationSet's chart path and values, as Argo CD's helm would render them
    // for a cluster named prod-eu-1.
    let appset = std::fs::read_to_string(examples.join("argocd-applicationset.yaml")).unwrap();
    assert!(appset.contains("path: charts/pullsecret-reconciler\n"));
    let values = block(&appset, "valuesObject:").replace("{{ .name }}", "prod-eu-1");
    std::fs::write(dir.join("values.yaml"), values).unwrap();
    let rendered = template_with(
        cp,
        &dir.join("values.yaml"),
        "helm template with the ApplicationSet's values",
    );
    let o = objects(cp, &rendered);
    let data = &o["ConfigMap/pullsecret-reconciler"]["data"];
    assert_eq!(data["PULLSECRET_CLUSTER_NAME"], "prod-eu-1");
    assert_eq!(data["PULLSECRET_SOURCE_SECRETS"], "regcred");
    let pod = &o["CronJob/pullsecret-reconciler"]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.com/pullsecret-reconciler:0.1.0"
    );

    // Flux: the Kustomization's path, images and patches, as an overlay on the shipped base.
    let flux = std::fs::read_to_string(examples.join("flux-kustomization.yaml")).unwrap();
    assert!(flux.contains("path: ./manifests\n"));
    // kustomize accepts a base only by a relative path: the overlay lives under target/.
    let overlay_dir = root().join(format!("target/fleet-overlay-{}", std::process::id()));
    std::fs::create_dir_all(&overlay_dir).unwrap();
    let overlay = format!(
        "resources:\n  - ../../manifests\nimages:\n{}patches:\n{}",
        block(&flux, "images:")
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>(),
        block(&flux, "patches:")
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>(),
    );
    std::fs::write(overlay_dir.join("kustomization.yaml"), overlay).unwrap();
    let built = cp.kubectl().arg("kustomize").arg(&overlay_dir).output().unwrap();
    std::fs::remove_dir_all(&overlay_dir).unwrap();
    let built = ok(built, "kubectl kustomize (Flux overlay)");
    let o = objects(cp, &built);
    let config = &o["ConfigMap/pullsecret-reconciler"];
    assert_eq!(config["data"]["PULLSECRET_CLUSTER_NAME"], "prod-eu-1");
    assert_eq!(config["data"]["PULLSECRET_SOURCE_SECRETS"], "regcred");
    let pod = &o["CronJob/pullsecret-reconciler"]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.com/pullsecret-reconciler:0.1.0"
    );

    // Neither example carries a credential.
    for text in [&appset, &flux] {
        assert!(!text.contains("PASSWORD") && !text.contains("DOCKERCONFIGJSON:") && !text.contains("auths"));
    }
}

#[test]
fn the_chart_carries_a_credential_provider_config_and_only_then_the_token_rule() {
    let cp = cp();
    let dir = cp.kubeconfig.with_file_name("chart-credential-provider");
    std::fs::create_dir_all(&dir).unwrap();
    let values = dir.join("values.yaml");
    std::fs::write(
        &values,
        "config:\n  PULLSECRET_SOURCE_SECRETS: \"\"\n  PULLSECRET_SECRET_NAME: ecr-pull\n  \
         PULLSECRET_CREDENTIAL_PROVIDER_IMAGES: 111122223333.dkr.ecr.eu-west-1.amazonaws.com/app\n\
         serviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/ecr-pull\n\
         credentialProvider:\n  serviceAccountToken: true\n  config: |\n    apiVersion: kubelet.config.k8s.io/v1\n    \
         kind: CredentialProviderConfig\n    providers: []\n",
    )
    .unwrap();
    let rendered = template_with(cp, &values, "helm template with a credential provider");
    let chart = chart();
    let o = objects(cp, &rendered);
    let data = &o["ConfigMap/pullsecret-reconciler"]["data"];
    assert_eq!(
        data["PULLSECRET_CREDENTIAL_PROVIDER_CONFIG"],
        "/etc/pullsecret-reconciler/credential-providers.yaml"
    );
    assert_eq!(
        data["PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR"],
        "/usr/local/lib/pullsecret-reconciler/credential-providers"
    );
    assert!(data.get("PULLSECRET_SOURCE_SECRETS").is_none());
    let file = &o["ConfigMap/pullsecret-reconciler-credential-providers"]["data"]["credential-providers.yaml"];
    assert!(
        file.as_str()
            .unwrap()
            .starts_with("apiVersion: kubelet.config.k8s.io/v1\n"),
        "{file}"
    );
    let pod = &o["CronJob/pullsecret-reconciler"]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        "pullsecret-reconciler-credential-providers"
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/etc/pullsecret-reconciler"
    );
    assert_eq!(
        o["ServiceAccount/pullsecret-reconciler"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/ecr-pull"
    );
    // The written name follows PULLSECRET_SECRET_NAME; the token rule names only the job's account.
    assert_eq!(
        rules(&o, "ClusterRole/pullsecret-reconciler")[0].0,
        vec!["ecr-pull".to_string()]
    );
    let role = o["Role/pullsecret-reconciler"]["rules"].as_array().unwrap();
    let token: Vec<&Value> = role
        .iter()
        .filter(|r| r["resources"] == serde_json::json!(["serviceaccounts/token"]))
        .collect();
    assert_eq!(token.len(), 1, "{role:?}");
    assert_eq!(token[0]["resourceNames"], serde_json::json!(["pullsecret-reconciler"]));
    assert_eq!(token[0]["verbs"], serde_json::json!(["create"]));
    // Without serviceAccountToken (the default) there is no such rule.
    let default = objects(cp, &template(cp, &[]));
    assert!(
        !serde_json::to_string(&default["Role/pullsecret-reconciler"])
            .unwrap()
            .contains("serviceaccounts/token")
    );
    // Two source modes at once are refused at render time.
    let both = helm_cmd(
        cp,
        &[
            "template",
            "x",
            chart.to_str().unwrap(),
            "--set",
            "credentialProvider.config=providers: []",
        ],
    );
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("set config.PULLSECRET_SOURCE_SECRETS to \"\""));
}

/// `kubectl kustomize` of the base with `components`, from an overlay under target/ (kustomize
/// takes relative paths only).
fn kustomize_with(cp: &ControlPlane, components: &[&str]) -> String {
    let dir = root()
        .join("target")
        .join(format!("chart-overlay-{}-{}", std::process::id(), components.join("-")));
    std::fs::create_dir_all(&dir).unwrap();
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("../../manifests/components/{c}"))
        .collect();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!("resources: [../../manifests]\ncomponents: [{}]\n", list.join(", ")),
    )
    .unwrap();
    ok(
        cp.kubectl().arg("kustomize").arg(&dir).output().unwrap(),
        "kubectl kustomize",
    )
}

/// The chart rendered with `set` is the kustomize base with `components`, object for object
/// (Helm's labels aside; the base's Namespace aside: Helm never creates the release namespace).
/// Returns the chart's objects.
fn same_as_kustomize(cp: &ControlPlane, set: &[&str], components: &[&str]) -> BTreeMap<String, Value> {
    let mut chart = objects(cp, &template(cp, set));
    chart.values_mut().for_each(without_helm_labels);
    let mut base = objects(cp, &kustomize_with(cp, components));
    assert!(base.remove("Namespace/pullsecret-reconciler").is_some());
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "{set:?}: the same objects"
    );
    for (key, object) in &base {
        assert_eq!(
            &chart[key], object,
            "{set:?}: {key} differs between the chart (left) and the kustomize base (right)"
        );
    }
    chart
}

/// RBAC follows the settings, in both install paths alike: prune's reads only with prune on (the
/// default; `no-prune` drops them), healing's only with PULLSECRET_HEAL_PODS=evict (`heal`). The
/// chart with a setting renders what the base with the matching component does.
#[test]
fn rbac_follows_the_settings_in_the_chart_and_the_components() {
    let cp = cp();
    let cases: [(&[&str], &str); 3] = [
        (&["config.PULLSECRET_PRUNE=false"], "no-prune"),
        (
            &["config.PULLSECRET_HEAL_PODS=evict", "config.PULLSECRET_HEAL_LIMIT=10"],
            "heal",
        ),
        (&[], ""),
    ];
    for (set, component) in cases {
        let components: Vec<&str> = [component].into_iter().filter(|c| !c.is_empty()).collect();
        let base = same_as_kustomize(cp, set, &components);
        let pods = |o: &BTreeMap<String, Value>| -> Vec<String> {
            o.iter()
                .filter(|(k, _)| k.starts_with("ClusterRole/"))
                .flat_map(|(k, r)| {
                    r["rules"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|rule| rule["resources"][0] == "pods")
                        .map(move |rule| format!("{k}: {}", rule["verbs"]))
                })
                .collect()
        };
        let expected: Vec<String> = match component {
            "no-prune" => vec![],
            "heal" => vec![
                r#"ClusterRole/pullsecret-reconciler-heal: ["list","watch"]"#.into(),
                r#"ClusterRole/pullsecret-reconciler-prune: ["list"]"#.into(),
            ],
            _ => vec![r#"ClusterRole/pullsecret-reconciler-prune: ["list"]"#.into()],
        };
        assert_eq!(pods(&base), expected, "{set:?}: who may read Pods");
    }
}

/// The chart's RBAC names the managed names the tool derives (`Source::target_names`), for the
/// same table the admission policies are checked against (tests/integration/parity.rs).
#[test]
fn the_chart_derives_the_managed_names_as_the_tool_does() {
    let cp = cp();
    for (i, row) in super::parity::NAME_ROWS.iter().enumerate() {
        // (The chart's own default names regcred: a row without the variable sets it empty.)
        let mut config = serde_json::Map::new();
        config.insert("PULLSECRET_SOURCE_SECRETS".into(), serde_json::json!(""));
        config.extend(row.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))));
        let values = root()
            .join("target")
            .join(format!("chart-names-{}-{i}.json", std::process::id()));
        std::fs::write(&values, serde_json::json!({ "config": config }).to_string()).unwrap();
        let o = objects(cp, &template_with(cp, &values, "helm template"));
        assert_eq!(
            rules(&o, "ClusterRole/pullsecret-reconciler")[0].0,
            super::parity::tool_names(row),
            "{row:?}"
        );
    }
}
