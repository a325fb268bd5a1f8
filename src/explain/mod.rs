//! `pullsecret-reconciler explain`: why a Pod's images would or would not pull. Reads only.
//!
//! It walks the chain the kubelet walks, one verdict per step: the Pod's `imagePullSecrets`
//! (copied from its ServiceAccount at admission, or not), each named Secret (exists in the Pod's
//! namespace, right type, parsable), which `auths` entry matches each image by the kubelet's own
//! rules ([`crate::core::kubelet`]), whether the registry accepts that credential for pulling that
//! repository, and whether the manifest for that tag or digest exists. The first step that fails
//! ends the walk and is the verdict, with the fix in one line.
//!
//! Reading (the Pod, its ServiceAccount, the named Secrets; one paged Pod list for `--stuck`) and
//! the registry calls are the only I/O; [`judge_secrets`] and [`group`] are pure. No credential
//! is ever printed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::{Api, Client};
use oci_client::Reference;
use serde::Serialize;

use crate::cli::ExplainArgs;
use crate::cluster::registry::{self, Clients, Target};
use crate::core::kubelet::{self, ImageName, Keyring};

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    Pod {
        namespace: String,
        name: String,
    },
    Image {
        namespace: String,
        image: String,
        service_account: String,
    },
    Stuck,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// pull-secrets, secret, match, login, manifest
    pub step: &'static str,
    /// ok, failed, unknown, skipped
    pub result: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageVerdict {
    pub container: String,
    pub image: String,
    pub would_pull: bool,
    pub steps: Vec<Step>,
    /// A stable code for the failing step (for grouping): NoPullSecrets, SecretMissing,
    /// SecretUnreadable, SecretWrongType, SecretInvalid, ServiceAccountPatchedAfterAdmission,
    /// NoAuthsEntry, Rejected, Unreachable, TLS, ManifestMissing, InvalidImage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// What the cause is about: a registry or a Secret name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub verdict: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodExplanation {
    pub namespace: String,
    /// Absent for `--image` (a Pod not created yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub service_account: String,
    pub pull_secrets: Vec<String>,
    /// Where the list comes from, and whether the ServiceAccount changed since admission.
    pub pull_secrets_from: String,
    pub would_pull: bool,
    pub images: Vec<ImageVerdict>,
}

/// A named Secret as read from the Pod's namespace.
#[derive(Debug, Clone)]
pub enum SecretRead {
    Missing,
    /// RBAC let us not read it (not a managed name for the shipped identity).
    Forbidden,
    Found(Box<Secret>),
}

/// The Secrets' steps and the keyring the kubelet would build from the good ones (pure).
pub fn judge_secrets(
    namespace: &str,
    secrets: &[(String, SecretRead)],
) -> (Vec<Step>, Keyring<Target>, Vec<(&'static str, String)>) {
    let mut steps = Vec::new();
    let mut keyring = Keyring::new();
    let mut problems = Vec::new();
    for (name, read) in secrets {
        let (result, detail) = match read {
            SecretRead::Missing => {
                problems.push(("SecretMissing", name.clone()));
                (
                    "failed",
                    format!("Secret {name} does not exist in namespace {namespace}"),
                )
            }
            SecretRead::Forbidden => {
                problems.push(("SecretUnreadable", name.clone()));
                (
                    "unknown",
                    format!("may not read Secret {name} (this identity reads only the managed pull-secret names)"),
                )
            }
            SecretRead::Found(secret) => {
                let what = format!("Secret {namespace}/{name}");
                match crate::sources::from_secret(secret, &what) {
                    Err(e) => {
                        let wrong_type = !matches!(
                            secret.type_.as_deref(),
                            Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg")
                        );
                        problems.push((
                            if wrong_type { "SecretWrongType" } else { "SecretInvalid" },
                            name.clone(),
                        ));
                        ("failed", format!("{e:#}"))
                    }
                    Ok(bytes) => {
                        let credential = crate::core::model::Credential {
                            target: name.clone(),
                            origin: name.clone(),
                            source_secret: None,
                            data: bytes,
                        };
                        let targets = registry::targets(std::slice::from_ref(&credential));
                        let keys: Vec<String> = targets.iter().map(|t| t.server.clone()).collect();
                        // Each entry's source is its Secret's name (the credential's origin).
                        for t in targets {
                            let server = t.server.clone();
                            keyring.add(&server, t);
                        }
                        (
                            "ok",
                            format!(
                                "Secret {name}: {}, auths for {}",
                                secret.type_.as_deref().unwrap_or_default(),
                                keys.join(", ")
                            ),
                        )
                    }
                }
            }
        };
        steps.push(Step {
            step: "secret",
            result,
            detail,
        });
    }
    (steps, keyring, problems)
}

/// The chain for one image, after the Secrets were judged. `patched` lists the pull secrets the
/// ServiceAccount has gained since the Pod was admitted.
#[allow(clippy::too_many_arguments)]
async fn judge_image(
    clients: &Clients,
    container: &str,
    image: &str,
    base_steps: &[Step],
    keyring: &Keyring<Target>,
    secret_problems: &[(&'static str, String)],
    pull_secrets: &[String],
    patched: &[String],
) -> ImageVerdict {
    let mut v = ImageVerdict {
        container: container.to_owned(),
        image: image.to_owned(),
        would_pull: false,
        steps: base_steps.to_vec(),
        cause: None,
        subject: String::new(),
        verdict: String::new(),
        fix: String::new(),
    };
    let fail = |v: &mut ImageVerdict, cause: &'static str, subject: &str, verdict: String, fix: String| {
        v.cause = Some(cause);
        v.subject = subject.to_owned();
        v.verdict = verdict;
        v.fix = fix;
    };
    let Some(name) = kubelet::parse_image_name(image) else {
        v.steps
            .push(step("match", "failed", format!("{image:?} is not an image reference")));
        fail(
            &mut v,
            "InvalidImage",
            image,
            format!("{image:?} is not an image reference"),
            "fix the image field of the container".into(),
        );
        return v;
    };
    let registry = name.domain.clone();
    let reference = reference_of(&name);
    let entries = keyring.lookup(&name.repository());
    if entries.is_empty() {
        v.steps.push(step(
            "match",
            "failed",
            format!(
                "no auths entry matches {} (kubelet matching on {})",
                registry,
                name.repository()
            ),
        ));
        // Without a credential the kubelet pulls anonymously: a public image still pulls.
        match registry::manifest_shared(clients, &reference, None).await {
            Ok(digest) => {
                v.steps.push(step(
                    "manifest",
                    "ok",
                    format!("anonymous pull: {reference} is {digest}"),
                ));
                v.would_pull = true;
                return v;
            }
            Err(("missing", message)) => {
                v.steps.push(step("manifest", "failed", message.clone()));
            }
            Err((_, message)) => v.steps.push(step("login", "failed", format!("anonymous: {message}"))),
        }
        if !patched.is_empty() {
            fail(
                &mut v,
                "ServiceAccountPatchedAfterAdmission",
                &patched.join(","),
                format!(
                    "the Pod was admitted before its ServiceAccount listed {}; Pods keep the imagePullSecrets they were created with",
                    patched.join(", ")
                ),
                "delete the Pod (or kubectl rollout restart its workload): new Pods get the ServiceAccount's imagePullSecrets".into(),
            );
        } else if let Some((cause, secret)) = secret_problems.first() {
            let (verdict, fix) = match *cause {
                "SecretMissing" => (
                    format!("Secret {secret} does not exist in the Pod's namespace"),
                    format!("create {secret} there, or let pullsecret-reconciler copy it (is the namespace selected?)"),
                ),
                "SecretUnreadable" => (
                    format!("cannot tell: may not read Secret {secret}"),
                    format!("run explain with an identity that may read {secret}, or check it by hand"),
                ),
                "SecretWrongType" => (
                    format!("Secret {secret} is not of type kubernetes.io/dockerconfigjson"),
                    format!("recreate {secret} with kubectl create secret docker-registry (type cannot be changed)"),
                ),
                _ => (
                    format!("Secret {secret} holds no usable docker config"),
                    format!("fix the .dockerconfigjson of {secret}"),
                ),
            };
            fail(&mut v, cause, secret, verdict, fix);
        } else if pull_secrets.is_empty() {
            fail(
                &mut v,
                "NoPullSecrets",
                &registry,
                format!("no imagePullSecrets, and {registry} does not serve {reference} anonymously"),
                "add the pull Secret to the Pod's ServiceAccount (PULLSECRET_SERVICE_ACCOUNTS) and recreate the Pod"
                    .into(),
            );
        } else {
            fail(
                &mut v,
                "NoAuthsEntry",
                &registry,
                format!(
                    "no Secret in imagePullSecrets ({}) has an auths entry for {registry}",
                    pull_secrets.join(", ")
                ),
                format!("add {registry} to the source's auths (its key must match the image by the kubelet's rules)"),
            );
        }
        return v;
    }
    let described: Vec<String> = entries
        .iter()
        .map(|e| format!("{:?} of Secret {}", e.server, e.source))
        .collect();
    v.steps.push(step(
        "match",
        "ok",
        format!("auths entry {}", described.join(", then ")),
    ));
    // The kubelet tries each matching credential in turn; the first the registry accepts wins.
    let host = name.api_host();
    let mut accepted: Option<&Target> = None;
    let mut first_failure: Option<registry::Verdict> = None;
    for e in &entries {
        let verdict = registry::login_shared(clients, e, &host, &name.path).await;
        if verdict.0 == "ok" {
            v.steps.push(step(
                "login",
                "ok",
                format!("{} (Secret {}, pull scope on {})", verdict.2, e.source, name.path),
            ));
            accepted = Some(e);
            break;
        }
        first_failure.get_or_insert(verdict);
    }
    let Some(entry) = accepted else {
        let (result, status, message) = first_failure.unwrap_or(("unreachable", None, String::new()));
        v.steps.push(step("login", "failed", message.clone()));
        let (cause, fix) = match result {
            "rejected" => (
                "Rejected",
                format!(
                    "rotate the credential in the source of {} (PULLSECRET_VERIFY=strict keeps a wrong one from being copied)",
                    entries[0].source
                ),
            ),
            "tls" => (
                "TLS",
                format!(
                    "make {registry}'s certificate trusted by the nodes (and PULLSECRET_REGISTRY_CA_FILE for this check)"
                ),
            ),
            _ => (
                "Unreachable",
                format!("check that {registry} is reachable from the nodes (DNS, firewall, proxy)"),
            ),
        };
        let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
        fail(
            &mut v,
            cause,
            &registry,
            format!(
                "{registry} does not accept the credential for pulling {}: {result}{status}",
                name.path
            ),
            fix,
        );
        return v;
    };
    match registry::manifest_shared(clients, &reference, Some(entry)).await {
        Ok(digest) => {
            v.steps.push(step("manifest", "ok", format!("{reference} is {digest}")));
            v.would_pull = true;
        }
        Err((result, message)) => {
            v.steps.push(step("manifest", "failed", message.clone()));
            let (cause, fix) = if result == "missing" {
                (
                    "ManifestMissing",
                    "check the image name and tag (or push it)".to_owned(),
                )
            } else {
                (
                    "Rejected",
                    format!(
                        "give the credential in Secret {} pull access to {}",
                        entry.source, name.path
                    ),
                )
            };
            fail(&mut v, cause, &registry, message, fix);
        }
    }
    v
}

fn step(step: &'static str, result: &'static str, detail: String) -> Step {
    Step { step, result, detail }
}

fn reference_of(name: &ImageName) -> Reference {
    match (&name.tag, &name.digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(name.domain.clone(), name.path.clone(), tag.clone(), digest.clone())
        }
        (None, Some(digest)) => Reference::with_digest(name.domain.clone(), name.path.clone(), digest.clone()),
        (tag, None) => Reference::with_tag(
            name.domain.clone(),
            name.path.clone(),
            tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

impl ImageName {
    /// The registry API host (Docker Hub's is index.docker.io).
    pub fn api_host(&self) -> String {
        if self.domain == "docker.io" {
            registry::DOCKER_HUB.to_owned()
        } else {
            self.domain.clone()
        }
    }
}

/// The Pod-level facts the chain starts from.
struct Subject {
    namespace: String,
    pod: Option<String>,
    service_account: String,
    pull_secrets: Vec<String>,
    pull_secrets_from: String,
    patched: Vec<String>,
    containers: Vec<(String, String)>,
}

async fn read_secret(api: &Api<Secret>, name: &str) -> Result<SecretRead> {
    match api.get_opt(name).await {
        Ok(Some(s)) => Ok(SecretRead::Found(Box::new(s))),
        Ok(None) => Ok(SecretRead::Missing),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(SecretRead::Forbidden),
        Err(e) => Err(e).with_context(|| format!("reading Secret {name}")),
    }
}

fn names(refs: Option<&Vec<k8s_openapi::api::core::v1::LocalObjectReference>>) -> Vec<String> {
    refs.map(|r| r.iter().map(|x| x.name.clone()).filter(|n| !n.is_empty()).collect())
        .unwrap_or_default()
}

/// The Pod's containers (init containers first) whose images the kubelet pulls; `only` limits
/// them to the named ones.
fn containers(pod: &Pod, only: Option<&BTreeSet<String>>) -> Vec<(String, String)> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter(|c| only.is_none_or(|o| o.contains(&c.name)))
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

async fn subject_of_pod(client: &Client, pod: &Pod, only: Option<&BTreeSet<String>>) -> Result<Subject> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let service_account = spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let pull_secrets = names(spec.image_pull_secrets.as_ref());
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .get_opt(&service_account)
        .await
        .with_context(|| format!("reading ServiceAccount {namespace}/{service_account}"))?;
    let sa_secrets = sa
        .as_ref()
        .map(|s| names(s.image_pull_secrets.as_ref()))
        .unwrap_or_default();
    // Admission copies the ServiceAccount's list only into a Pod that names none; a list that is
    // all the ServiceAccount's but shorter than today's was copied before it gained the rest.
    let copied = pull_secrets.iter().all(|p| sa_secrets.contains(p));
    let patched: Vec<String> = if copied {
        sa_secrets
            .iter()
            .filter(|s| !pull_secrets.contains(s))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let from = if sa.is_none() {
        format!("the Pod spec (its ServiceAccount {service_account} does not exist)")
    } else if !patched.is_empty() {
        format!(
            "the Pod spec; ServiceAccount {service_account} now also lists {} — added after the Pod was admitted",
            patched.join(", ")
        )
    } else if !pull_secrets.is_empty() && pull_secrets == sa_secrets {
        format!("ServiceAccount {service_account}, copied at admission")
    } else {
        "the Pod spec".to_owned()
    };
    Ok(Subject {
        namespace,
        pod: pod.metadata.name.clone(),
        service_account,
        pull_secrets,
        pull_secrets_from: from,
        patched,
        containers: containers(pod, only),
    })
}

async fn explain_subject(client: &Client, clients: &Clients, s: Subject) -> Result<PodExplanation> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let mut reads = Vec::new();
    for name in &s.pull_secrets {
        reads.push((name.clone(), read_secret(&api, name).await?));
    }
    let (mut steps, keyring, problems) = judge_secrets(&s.namespace, &reads);
    steps.insert(
        0,
        step(
            "pull-secrets",
            "ok",
            format!(
                "imagePullSecrets [{}] from {}",
                s.pull_secrets.join(", "),
                s.pull_secrets_from
            ),
        ),
    );
    let mut images = Vec::new();
    for (container, image) in &s.containers {
        images.push(
            judge_image(
                clients,
                container,
                image,
                &steps,
                &keyring,
                &problems,
                &s.pull_secrets,
                &s.patched,
            )
            .await,
        );
    }
    Ok(PodExplanation {
        would_pull: images.iter().all(|i| i.would_pull),
        namespace: s.namespace,
        pod: s.pod,
        service_account: s.service_account,
        pull_secrets: s.pull_secrets,
        pull_secrets_from: s.pull_secrets_from,
        images,
    })
}

/// `explain POD` or `explain --image`: `Err` = the question is invalid (exit 2).
pub async fn explain_one(client: &Client, clients: &Clients, question: &Question) -> Result<PodExplanation> {
    match question {
        Question::Pod { namespace, name } => {
            let pod = Api::<Pod>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .with_context(|| format!("reading Pod {namespace}/{name}"))?
                .with_context(|| format!("Pod {namespace}/{name} does not exist"))?;
            let subject = subject_of_pod(client, &pod, None).await?;
            explain_subject(client, clients, subject).await
        }
        Question::Image {
            namespace,
            image,
            service_account,
        } => {
            if kubelet::parse_image_name(image).is_none() {
                bail!("--image {image:?} is not an image reference");
            }
            let sa = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .get_opt(service_account)
                .await
                .with_context(|| format!("reading ServiceAccount {namespace}/{service_account}"))?
                .with_context(|| format!("ServiceAccount {namespace}/{service_account} does not exist"))?;
            let pull_secrets = names(sa.image_pull_secrets.as_ref());
            let subject = Subject {
                namespace: namespace.clone(),
                pod: None,
                pull_secrets_from: format!(
                    "ServiceAccount {service_account}, as admission would copy it into a new Pod"
                ),
                service_account: service_account.clone(),
                pull_secrets,
                patched: Vec::new(),
                containers: vec![("(new Pod)".to_owned(), image.clone())],
            };
            explain_subject(client, clients, subject).await
        }
        Question::Stuck => bail!("--stuck is answered by explain_stuck"),
    }
}

/// The waiting reasons of a container whose image the kubelet cannot pull.
pub const STUCK_REASONS: &[&str] = &["ImagePullBackOff", "ErrImagePull"];

/// A Pod's containers waiting on an image pull (pure; what each page of the list is reduced to).
pub fn stuck_containers(pod: &Pod) -> BTreeSet<String> {
    let Some(status) = &pod.status else {
        return BTreeSet::new();
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| STUCK_REASONS.contains(&r))
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Pods with the same cause about the same registry or Secret.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub cause: String,
    pub subject: String,
    /// One line: how many Pods in how many namespaces, and why.
    pub summary: String,
    pub fix: String,
    pub pods: Vec<String>,
}

/// Groups the explained stuck Pods by (cause, subject) (pure).
pub fn group(explanations: &[PodExplanation]) -> Vec<Group> {
    // (cause, subject) -> (fix, pods, namespaces)
    type Members = (String, BTreeSet<String>, BTreeSet<String>);
    let mut groups: BTreeMap<(String, String), Members> = BTreeMap::new();
    for e in explanations {
        for i in e.images.iter().filter(|i| !i.would_pull) {
            let key = (i.cause.unwrap_or("Unknown").to_owned(), i.subject.clone());
            let entry = groups
                .entry(key)
                .or_insert_with(|| (i.fix.clone(), BTreeSet::new(), BTreeSet::new()));
            entry
                .1
                .insert(format!("{}/{}", e.namespace, e.pod.clone().unwrap_or_default()));
            entry.2.insert(e.namespace.clone());
        }
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|((cause, subject), (fix, pods, namespaces))| {
            let (n, m) = (pods.len(), namespaces.len());
            let what = format!(
                "{n} Pod{} in {m} namespace{}",
                if n == 1 { "" } else { "s" },
                if m == 1 { "" } else { "s" }
            );
            let summary = match cause.as_str() {
                "NoAuthsEntry" => format!("{what} use {subject}, for which no Secret they name has an entry"),
                "NoPullSecrets" => format!("{what} pull from {subject} with no imagePullSecrets at all"),
                "SecretMissing" => format!("{what} name Secret {subject}, which does not exist in their namespace"),
                "SecretUnreadable" => format!("{what} name Secret {subject}, which this identity may not read"),
                "SecretWrongType" => {
                    format!("{what} name Secret {subject}, which is not kubernetes.io/dockerconfigjson")
                }
                "SecretInvalid" => format!("{what} name Secret {subject}, which holds no usable docker config"),
                "ServiceAccountPatchedAfterAdmission" => {
                    format!("{what} were admitted before their ServiceAccount listed {subject}")
                }
                "Rejected" => format!("{what} use {subject}, which rejects the credential"),
                "Unreachable" => format!("{what} use {subject}, which is unreachable"),
                "TLS" => format!("{what} use {subject}, whose certificate is not trusted"),
                "ManifestMissing" => format!("{what} use images that {subject} does not have"),
                _ => format!("{what}: {cause} ({subject})"),
            };
            Group {
                cause,
                subject,
                summary,
                fix,
                pods: pods.into_iter().collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.pods.len().cmp(&a.pods.len()).then_with(|| a.summary.cmp(&b.summary)));
    out
}

/// `explain --stuck`: one paged cluster-wide Pod list, each page reduced to the stuck Pods, then
/// each explained (only its stuck containers).
pub async fn explain_stuck(client: &Client, clients: &Clients) -> Result<Vec<PodExplanation>> {
    let reader = crate::cluster::reads::Reader::new(client.clone());
    let stuck: Vec<(Pod, BTreeSet<String>)> = reader
        .list_all::<Pod, _>(None, |pod: Pod| {
            let names = stuck_containers(&pod);
            if names.is_empty() {
                return None;
            }
            // Keep only what the chain needs.
            let mut slim = Pod::default();
            slim.metadata.name = pod.metadata.name;
            slim.metadata.namespace = pod.metadata.namespace;
            slim.spec = pod.spec;
            Some((slim, names))
        })
        .await
        .context("listing Pods")?;
    // Concurrently, registry answers shared (Clients), and bounded: a registry outage with
    // hundreds of stuck Pods ends at the deadline with what was found.
    use futures::StreamExt as _;
    let deadline = tokio::time::Instant::now() + STUCK_DEADLINE;
    let results: Vec<_> = futures::stream::iter(stuck)
        .map(|(pod, names)| async move {
            tokio::time::timeout_at(deadline, async {
                let subject = subject_of_pod(client, &pod, Some(&names)).await?;
                explain_subject(client, clients, subject).await
            })
            .await
        })
        .buffered(STUCK_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    let mut late = 0;
    for r in results {
        match r {
            Ok(e) => out.push(e?),
            Err(_) => late += 1,
        }
    }
    if late > 0 {
        eprintln!(
            "explain --stuck: {late} stuck Pod(s) not examined within {}s (registries slow or unreachable); \
             ask about one with `explain POD -n NAMESPACE`",
            STUCK_DEADLINE.as_secs()
        );
    }
    Ok(out)
}

/// How long `explain --stuck` examines stuck Pods, and how many at once.
pub const STUCK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
const STUCK_CONCURRENCY: usize = 8;

/// Text for a person.
pub fn render_text(e: &PodExplanation) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let what = match &e.pod {
        Some(p) => format!("Pod {}/{p}", e.namespace),
        None => format!("A new Pod in {} with ServiceAccount {}", e.namespace, e.service_account),
    };
    let state = if e.would_pull { "would pull" } else { "would NOT pull" };
    let _ = writeln!(t, "{what}: {state}");
    for i in &e.images {
        let _ = writeln!(t, "  container {} image {}", i.container, i.image);
        for s in &i.steps {
            let mark = match s.result {
                "ok" => "ok  ",
                "failed" => "FAIL",
                "unknown" => "??  ",
                _ => "--  ",
            };
            let _ = writeln!(t, "    {mark} {:<12} {}", s.step, s.detail);
        }
        if !i.would_pull {
            let _ = writeln!(t, "    verdict: {}", i.verdict);
            let _ = writeln!(t, "    fix:     {}", i.fix);
        }
    }
    t
}

#[cfg(test)]
mod tests {
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
        let (steps, keyring, problems) = judge_secrets("team", &reads);
        let results: Vec<&str> = steps.iter().map(|s| s.result).collect();
        assert_eq!(results, vec!["failed", "failed", "ok", "unknown"]);
        assert!(steps[0].detail.contains("does not exist in namespace team"));
        assert!(steps[1].detail.contains("has type Opaque"), "{}", steps[1].detail);
        assert_eq!(
            problems,
            vec![
                ("SecretMissing", "gone".to_string()),
                ("SecretWrongType", "opaque".to_string()),
                ("SecretUnreadable", "other".to_string())
            ]
        );
        let found = keyring.lookup("ghcr.io/acme/app");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source, "regcred");
        assert!(!format!("{steps:?}{found:?}").contains("fake-p"));
    }

    fn explained(namespace: &str, pod: &str, cause: &'static str, subject: &str) -> PodExplanation {
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
            explained("a", "p1", "NoAuthsEntry", "ghcr.io"),
            explained("b", "p2", "NoAuthsEntry", "ghcr.io"),
            explained("b", "p3", "NoAuthsEntry", "ghcr.io"),
            explained("c", "p4", "SecretMissing", "regcred"),
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
}

impl Question {
    /// The question checked arguments ask, with the kubeconfig's namespace when `-n` is not given.
    pub fn of(args: &ExplainArgs, default_namespace: &str) -> Question {
        let namespace = args.namespace.clone().unwrap_or_else(|| default_namespace.to_owned());
        if args.stuck {
            Question::Stuck
        } else if let Some(image) = &args.image {
            Question::Image {
                namespace,
                image: image.clone(),
                service_account: args.service_account.clone().unwrap_or_else(|| "default".into()),
            }
        } else {
            Question::Pod {
                namespace,
                name: args.pod.clone().unwrap_or_default(),
            }
        }
    }
}

/// Answers the question and prints the answer; the exit code: 0 would pull, 1 would not, 2 the
/// question itself is invalid.
pub async fn answer(client: &Client, clients: &Clients, question: &Question, json: bool) -> u8 {
    if *question == Question::Stuck {
        return match explain_stuck(client, clients).await {
            Ok(pods) => {
                let groups = group(&pods);
                if json {
                    let out = serde_json::json!({ "stuck_pods": pods.len(), "groups": groups, "pods": pods });
                    println!("{out}");
                } else if pods.is_empty() {
                    println!("No Pod waits in ImagePullBackOff or ErrImagePull.");
                } else {
                    for g in &groups {
                        println!("{}\n  fix: {}\n  pods: {}", g.summary, g.fix, g.pods.join(", "));
                    }
                }
                u8::from(pods.iter().any(|p| !p.would_pull))
            }
            Err(e) => invalid(&e, json),
        };
    }
    match explain_one(client, clients, question).await {
        Ok(e) => {
            if json {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
            } else {
                print!("{}", render_text(&e));
            }
            u8::from(!e.would_pull)
        }
        Err(e) => invalid(&e, json),
    }
}

fn invalid(e: &anyhow::Error, json: bool) -> u8 {
    eprintln!("error: {e:#}");
    if json {
        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
    }
    2
}

#[cfg(test)]
mod args_tests {
    use super::*;

    #[test]
    fn only_stuck_containers_are_kept() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p" },
            "status": { "containerStatuses": [
                { "name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "waiting": { "reason": "ImagePullBackOff" } } },
                { "name": "b", "image": "y", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "waiting": { "reason": "CrashLoopBackOff" } } } ],
              "initContainerStatuses": [
                { "name": "init", "image": "z", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "waiting": { "reason": "ErrImagePull" } } } ] }
        }))
        .unwrap();
        assert_eq!(
            stuck_containers(&pod),
            ["a", "init"].iter().map(|s| s.to_string()).collect()
        );
        assert!(stuck_containers(&Pod::default()).is_empty());
    }
}
