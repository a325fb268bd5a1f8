//! The seed story, as an operator lives it: team Deployments of a private image wait on a 401;
//! the shipped kustomize base (or the Helm chart, with Helm 3 and Helm 4) is installed with the
//! product image from the same private registry; one Job made from the CronJob runs to
//! completion as a Pod under the shipped RBAC and admission fence; after `kubectl rollout
//! restart` every team Pod runs and the kubelet reports the pull.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::support::node::{self, PRIVILEGED};
use crate::support::registry::{Registry, images};
use crate::support::{ControlPlane, TestEnv, binary, ok};

/// The shipped install's namespace and every cluster-scoped name are fixed: one install at a time.
pub static SHIPPED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const HOME: &str = "pullsecret-reconciler";

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The registry, the team image and the product image (built from this test build's binary,
/// see tests/images/build.sh), pushed as an operator's CI would.
pub struct Images {
    pub registry: Registry,
    pub app: String,
    pub product_repository: String,
}

pub fn images_on(cp: &ControlPlane, password: &str) -> Images {
    let registry = Registry::start("ci-bot", password);
    cp.trust(&registry);
    let app = registry.push_app("team/app", "1");
    let product = images(&["product", binary().to_str().unwrap()]);
    registry.push_local(&product, "pullsecret-reconciler", "test");
    let product_repository = format!("{}/pullsecret-reconciler", registry.host);
    Images {
        registry,
        app,
        product_repository,
    }
}

/// Team namespaces with a Deployment each, waiting on the registry's 401.
async fn teams_waiting(env: &TestEnv, image: &str) -> Vec<String> {
    let mut namespaces = vec![];
    for team in ["a", "b"] {
        let ns = env.name(team);
        env.create_namespace(&ns, &[PRIVILEGED], &[]).await;
        env.cp.apply_yaml(&node::deployment(&ns, "web", image, 1).to_string());
        namespaces.push(ns);
    }
    for ns in &namespaces {
        let (_, message) = node::wait_pull_failed(&env.client, ns, "app=web").await;
        assert!(message.contains("401"), "expected the registry's 401, got {message}");
    }
    namespaces
}

/// The first Job converged: a copy and a ServiceAccount entry in both team namespaces and the
/// test's own home namespace (it carries the test's label too).
fn assert_converged_teams(summary: &Value) {
    assert_eq!(summary["converged"], true, "{summary}");
    assert_eq!(summary["secrets"]["created"], 3, "{summary}");
    assert!(
        summary["service_accounts"]["patched"].as_u64().unwrap() >= 3,
        "{summary}"
    );
}

/// The source Secret an operator creates in the tool's namespace.
pub async fn create_source(env: &TestEnv, registry: &Registry) {
    env.put_dockerconfig(HOME, "regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
}

/// `kubectl create job --from=cronjob/pullsecret-reconciler NAME`, waited for; the Pod's summary.
pub async fn run_job(env: &TestEnv, name: &str) -> Value {
    start_job(env, name);
    finish_job(env, name, 240).await
}

/// `kubectl create job --from=cronjob/pullsecret-reconciler NAME`, not waited for.
pub fn start_job(env: &TestEnv, name: &str) {
    ok(
        env.cp
            .kubectl()
            .args([
                "-n",
                HOME,
                "create",
                "job",
                "--from=cronjob/pullsecret-reconciler",
                name,
            ])
            .output()
            .unwrap(),
        "kubectl create job",
    );
}

/// Waits up to `secs` for the Job `name` to succeed; its Pod's JSON summary.
pub async fn finish_job(env: &TestEnv, name: &str, secs: u64) -> Value {
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), HOME);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), HOME);
    let pod = node::wait_for(&format!("Job {name} to finish"), secs, || async {
        let job = jobs.get(name).await.unwrap();
        let status = job.status.unwrap_or_default();
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await
            .unwrap()
            .items;
        let states: Vec<_> = list.iter().map(|p| format!("{:?}", node::pull(p))).collect();
        if status.succeeded == Some(1) {
            return Ok(list.into_iter().next().unwrap());
        }
        if status.failed.unwrap_or(0) > 0 {
            let logs: Vec<String> = list
                .iter()
                .map(|p| env.cp.pod_log(p, "pullsecret-reconciler"))
                .collect();
            panic!("Job {name} failed: {states:?}\n{}", logs.join("\n"));
        }
        Err(format!("{status:?} pods {states:?}"))
    })
    .await;
    let events = node::kubelet_events(&env.client, HOME, pod.metadata.name.as_deref().unwrap()).await;
    assert!(
        events.iter().any(|e| e.starts_with("Pulled: ")),
        "the kubelet pulled the product image from the private registry: {events:?}"
    );
    let log = env.cp.pod_log(&pod, "pullsecret-reconciler");
    log.lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("converged").is_some())
        })
        .unwrap_or_else(|| panic!("no JSON summary in the Job's log:\n{log}"))
}

/// `kubectl rollout restart` each team's Deployment; every new Pod runs and the kubelet says
/// it pulled. Returns the kubelet's Event lines of one Pod.
async fn restart_and_pull(env: &TestEnv, namespaces: &[String]) -> Vec<String> {
    for ns in namespaces {
        ok(
            env.cp
                .kubectl()
                .args(["-n", ns, "rollout", "restart", "deployment/web"])
                .output()
                .unwrap(),
            "kubectl rollout restart",
        );
    }
    // The team Pods run the same image: the first pull brings it to the node, the others are
    // verified against it (KEP-2535). One of them pulled, none failed.
    let mut pods = vec![];
    for ns in namespaces {
        pods.extend(node::wait_running(&env.client, ns, "app=web", 1).await);
    }
    node::assert_pulled(&env.client, &pods).await
}

/// The shipped settings for this test: the CronJob's Pod on the host network, talking to the API
/// server on loopback, pulling its own image with the source Secret, scoped to the test's
/// namespaces (an operator edits the same ConfigMap).
/// With `inject`, also the references-from-birth component, its binding narrowed to the same
/// namespaces (CEL cannot evaluate PULLSECRET_NAMESPACE_SELECTOR).
pub fn overlay(cp: &ControlPlane, dir: &Path, image: &str, selector: &str, inject: bool) -> PathBuf {
    let base = dir.join("base");
    ok(
        Command::new("cp")
            .arg("-r")
            .arg(root().join("manifests"))
            .arg(&base)
            .output()
            .unwrap(),
        "copy manifests",
    );
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    let port = cp.api_port();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../base]
images:
  - name: pullsecret-reconciler
    newName: {image}
    newTag: test
configMapGenerator:
  - name: pullsecret-reconciler
    behavior: merge
    literals: [PULLSECRET_NAMESPACE_SELECTOR={selector}, PULLSECRET_OUTPUT=json, PULLSECRET_WATCH=0]
patches:
  # hostNetwork (loopback only on the test node) is refused by the "restricted" profile.
  - target: {{kind: Namespace, name: pullsecret-reconciler}}
    patch: |
      - {{op: replace, path: /metadata/labels/pod-security.kubernetes.io~1enforce, value: privileged}}
  - target: {{kind: CronJob, name: pullsecret-reconciler}}
    patch: |
      - {{op: add, path: /spec/jobTemplate/spec/template/spec/hostNetwork, value: true}}
      - {{op: add, path: /spec/jobTemplate/spec/template/spec/imagePullSecrets, value: [{{name: regcred}}]}}
      - op: add
        path: /spec/jobTemplate/spec/template/spec/containers/0/env
        value: [{{name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}}, {{name: KUBERNETES_SERVICE_PORT, value: "{port}"}}]
{inject}"#,
            inject = if inject { inject_component(selector) } else { String::new() },
        ),
    )
    .unwrap();
    overlay
}

fn inject_component(selector: &str) -> String {
    let (key, value) = selector.split_once('=').unwrap();
    format!(
        r#"  - target: {{kind: MutatingAdmissionPolicyBinding, name: pullsecret-reconciler-inject}}
    patch: |
      - {{op: add, path: /spec/matchResources, value: {{namespaceSelector: {{matchLabels: {{{key}: {value}}}}}}}}}
components: [../base/components/inject]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_story_with_the_kustomize_base() {
    let _one = SHIPPED.lock().await;
    let cp = node::shared();
    let env = TestEnv::on(cp, "seed").await;
    let images = images_on(cp, "fake-seed-password");
    let namespaces = teams_waiting(&env, &images.app).await;
    let _teams = remove_namespaces(cp, &namespaces, &env.home);

    let (yaml, _uninstall) = rendered(cp, "seed", &images.product_repository, false);
    cp.apply_yaml(&yaml);
    create_source(&env, &images.registry).await;

    let summary = run_job(&env, "seed-first").await;
    assert_converged_teams(&summary);

    let lines = restart_and_pull(&env, &namespaces).await;
    eprintln!("seed story, kubelet Events of one team Pod:\n  {}", lines.join("\n  "));

    // A second Job has nothing to write.
    let again = run_job(&env, "seed-again").await;
    assert_eq!(
        (again["converged"].clone(), again["api_requests"]["writes"].clone()),
        (Value::Bool(true), 0.into()),
        "{again}"
    );
}

/// Deletes this test's namespaces when dropped: the next install's first run would otherwise
/// meet (and report) their copies of the same shipped name.
pub fn remove_namespaces(
    cp: &'static ControlPlane,
    namespaces: &[String],
    home: &str,
) -> Cleanup<impl FnMut() + use<>> {
    let mut args: Vec<String> = vec!["delete".into(), "namespace".into(), "--wait=true".into()];
    args.extend(namespaces.iter().cloned());
    args.push(home.to_owned());
    Cleanup(move || {
        let _ = cp.kubectl().args(&args).output();
    })
}

/// The shipped base as the test node needs it ([`overlay`]), rendered by kustomize, and a guard
/// that deletes all of it (and the temp folder) when dropped.
pub fn rendered(
    cp: &'static ControlPlane,
    id: &str,
    image: &str,
    inject: bool,
) -> (String, Cleanup<impl FnMut() + use<>>) {
    let dir = tempdir(id);
    let overlay = overlay(cp, &dir, image, &format!("pullsecret-test={id}"), inject);
    let yaml = ok(
        cp.kubectl().arg("kustomize").arg(&overlay).output().unwrap(),
        "kustomize",
    );
    let rendered = yaml.clone();
    let guard = Cleanup(move || {
        let _ = cp.kubectl_stdin(&["delete", "--wait=true", "--ignore-not-found", "-f", "-"], &rendered);
        let _ = std::fs::remove_dir_all(&dir);
    });
    (yaml, guard)
}

/// One `kubectl apply` of `list` (a namespace and its workloads), retried as a person would: the
/// namespace's default ServiceAccount appears a moment after the namespace, and a Pod created
/// before it is refused.
pub async fn apply_retried(cp: &ControlPlane, list: &Value) {
    node::wait_for("one kubectl apply of the namespace and its workloads", 30, || async {
        let out = cp.kubectl_stdin(&["apply", "-f", "-"], &list.to_string());
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await;
}

/// Runs its closure when dropped, also when the test fails: the next test installs the same
/// cluster-scoped names.
pub struct Cleanup<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Cleanup<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// The same story installed the way Helm users do:
/// `helm install pullsecret-reconciler charts/pullsecret-reconciler -n pullsecret-reconciler --create-namespace`.
async fn seed_story_with_helm(tool: &str, id: &str) {
    let _one = SHIPPED.lock().await;
    let cp = node::shared();
    let env = TestEnv::on(cp, id).await;
    let images = images_on(cp, "fake-helm-password");
    let namespaces = teams_waiting(&env, &images.app).await;
    let _teams = remove_namespaces(cp, &namespaces, &env.home);

    let dir = tempdir(id);
    let helm = |args: &[&str]| {
        Command::new(crate::support::tools::tool(tool))
            .args(args)
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("HELM_CACHE_HOME", dir.join("cache"))
            .env("HELM_CONFIG_HOME", dir.join("config"))
            .env("HELM_DATA_HOME", dir.join("data"))
            .output()
            .unwrap()
    };
    let version = ok(helm(&["version", "--short"]), "helm version");
    eprintln!("{id}: helm {version}");
    let chart = root().join("charts/pullsecret-reconciler");
    let port = cp.api_port().to_string();
    let selector = format!("pullsecret-test={id}");
    let _uninstall = Cleanup(|| {
        let _ = helm(&[
            "uninstall",
            "pullsecret-reconciler",
            "-n",
            HOME,
            "--wait",
            "--ignore-not-found",
        ]);
        let _ = cp
            .kubectl()
            .args(["delete", "namespace", HOME, "--wait=true", "--ignore-not-found"])
            .output();
        let _ = std::fs::remove_dir_all(&dir);
    });
    let install = ok(
        helm(&[
            "install",
            "pullsecret-reconciler",
            chart.to_str().unwrap(),
            "-n",
            HOME,
            "--create-namespace",
            "--set",
            &format!("image.repository={}", images.product_repository),
            "--set",
            "image.tag=test",
            "--set",
            "imagePullSecrets={regcred}",
            "--set",
            "hostNetwork=true",
            "--set",
            "extraEnv[0].name=KUBERNETES_SERVICE_HOST,extraEnv[0].value=127.0.0.1",
            "--set",
            "extraEnv[1].name=KUBERNETES_SERVICE_PORT",
            "--set-string",
            &format!("extraEnv[1].value={port}"),
            "--set-string",
            &format!("config.PULLSECRET_NAMESPACE_SELECTOR={selector}"),
            "--set",
            "config.PULLSECRET_OUTPUT=json",
            // One-shot Jobs in this story; the window's node test runs the shipped one.
            "--set-string",
            "config.PULLSECRET_WATCH=0",
        ]),
        "helm install",
    );
    assert!(install.contains("STATUS: deployed"), "{install}");
    create_source(&env, &images.registry).await;

    let summary = run_job(&env, &format!("{id}-first")).await;
    assert_converged_teams(&summary);
    restart_and_pull(&env, &namespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_story_with_helm_3() {
    seed_story_with_helm("helm", "hm3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_story_with_helm_4() {
    seed_story_with_helm("helm4", "hm4").await;
}

pub fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pullsecret-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
