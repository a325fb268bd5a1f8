//! Gathering (I/O only): the Pod, its ServiceAccount and the Secrets it names, through [`Reads`];
//! the registry's answers, through [`Registry`]. Both are traits so that judging and the bounds
//! of `--stuck` are tested without a cluster or a registry; the real ones are `kube::Client` and
//! `cluster::registry::Clients` (which shares answers per registry, credential and image).

use std::collections::BTreeSet;
use std::future::Future;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{LocalObjectReference, Pod, Secret, ServiceAccount};
use kube::{Api, Client};
use oci_client::Reference;

use super::SecretRead;
use super::judge::reference_of;
use crate::cluster::registry::{self, Clients, ManifestResult, Reply, Target, Verdict};
use crate::core::kubelet::{self, ImageName, Keyring};
use crate::core::reduce::stuck_containers;

/// The reads `explain` makes.
pub trait Reads: Sync {
    fn pod(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<Pod>>> + Send;
    fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ServiceAccount>>> + Send;
    fn secret(&self, namespace: &str, name: &str) -> impl Future<Output = Result<SecretRead>> + Send;
    /// Every Pod with a container waiting on an image pull, with those containers' names.
    fn stuck_pods(&self) -> impl Future<Output = Result<Vec<(Pod, BTreeSet<String>)>>> + Send;
}

/// The registry calls `explain` makes.
pub trait Registry: Sync {
    /// A login with pull scope on `repository` at `host`.
    fn login(&self, target: &Target, host: &str, repository: &str) -> impl Future<Output = Verdict> + Send;
    /// Whether the manifest exists, with `credentials` or anonymously.
    fn manifest(
        &self,
        reference: &Reference,
        credentials: Option<&Target>,
    ) -> impl Future<Output = ManifestResult> + Send;
}

impl Reads for Client {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Api::<Pod>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .with_context(|| format!("reading Pod {namespace}/{name}"))
    }

    async fn service_account(&self, namespace: &str, name: &str) -> Result<Option<ServiceAccount>> {
        Api::<ServiceAccount>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .with_context(|| format!("reading ServiceAccount {namespace}/{name}"))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<SecretRead> {
        match Api::<Secret>::namespaced(self.clone(), namespace).get_opt(name).await {
            Ok(Some(s)) => Ok(SecretRead::Found(Box::new(s))),
            Ok(None) => Ok(SecretRead::Missing),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(SecretRead::Forbidden),
            Err(e) => Err(e).with_context(|| format!("reading Secret {name}")),
        }
    }

    /// One paged cluster-wide list, each page reduced to the stuck Pods.
    async fn stuck_pods(&self) -> Result<Vec<(Pod, BTreeSet<String>)>> {
        let reader = crate::cluster::reads::Reader::new(self.clone());
        reader
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
            .context("listing Pods")
    }
}

impl Registry for Clients {
    async fn login(&self, target: &Target, host: &str, repository: &str) -> Verdict {
        registry::login_shared(self, target, host, repository).await
    }

    async fn manifest(&self, reference: &Reference, credentials: Option<&Target>) -> ManifestResult {
        registry::manifest_shared(self, reference, credentials).await
    }
}

/// The Pod-level facts the chain starts from.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub namespace: String,
    pub pod: Option<String>,
    pub service_account: String,
    pub pull_secrets: Vec<String>,
    pub pull_secrets_from: String,
    /// The pull secrets the ServiceAccount gained after the Pod was admitted.
    pub patched: Vec<String>,
    /// (container, image), init containers first.
    pub containers: Vec<(String, String)>,
}

/// What the registry said about one image.
#[derive(Debug, Clone)]
pub enum Access {
    /// Not an image reference: nothing was asked.
    Invalid,
    /// No `auths` entry matched: the anonymous manifest check.
    Anonymous { name: ImageName, manifest: ManifestResult },
    /// The matching entries in the kubelet's order, the logins tried until one was accepted,
    /// and the manifest check with the accepted one.
    Credentials {
        name: ImageName,
        entries: Vec<Target>,
        logins: Vec<Verdict>,
        manifest: Option<ManifestResult>,
    },
}

fn names(refs: Option<&Vec<LocalObjectReference>>) -> Vec<String> {
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

/// Where the Pod's list came from (pure): admission copies the ServiceAccount's list only into a
/// Pod that names none; a list that is all the ServiceAccount's but shorter than today's was
/// copied before it gained the rest. Returns (patched, description).
fn provenance(pull_secrets: &[String], sa: Option<&ServiceAccount>, service_account: &str) -> (Vec<String>, String) {
    let sa_secrets = sa.map(|s| names(s.image_pull_secrets.as_ref())).unwrap_or_default();
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
    (patched, from)
}

pub async fn subject_of_pod(reads: &impl Reads, pod: &Pod, only: Option<&BTreeSet<String>>) -> Result<Subject> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let service_account = spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let pull_secrets = names(spec.image_pull_secrets.as_ref());
    let sa = reads.service_account(&namespace, &service_account).await?;
    let (patched, pull_secrets_from) = provenance(&pull_secrets, sa.as_ref(), &service_account);
    Ok(Subject {
        namespace,
        pod: pod.metadata.name.clone(),
        service_account,
        pull_secrets,
        pull_secrets_from,
        patched,
        containers: containers(pod, only),
    })
}

/// A Pod not created yet: the ServiceAccount's list, as admission would copy it.
pub async fn subject_of_image(
    reads: &impl Reads,
    namespace: &str,
    image: &str,
    service_account: &str,
) -> Result<Subject> {
    if kubelet::parse_image_name(image).is_none() {
        bail!("--image {image:?} is not an image reference");
    }
    let sa = reads
        .service_account(namespace, service_account)
        .await?
        .with_context(|| format!("ServiceAccount {namespace}/{service_account} does not exist"))?;
    Ok(Subject {
        namespace: namespace.to_owned(),
        pod: None,
        pull_secrets_from: format!("ServiceAccount {service_account}, as admission would copy it into a new Pod"),
        service_account: service_account.to_owned(),
        pull_secrets: names(sa.image_pull_secrets.as_ref()),
        patched: Vec::new(),
        containers: vec![("(new Pod)".to_owned(), image.to_owned())],
    })
}

/// The Secrets the Pod names, in its order.
pub async fn secrets(reads: &impl Reads, subject: &Subject) -> Result<Vec<(String, SecretRead)>> {
    let mut out = Vec::new();
    for name in &subject.pull_secrets {
        out.push((name.clone(), reads.secret(&subject.namespace, name).await?));
    }
    Ok(out)
}

/// Asks the registry what the kubelet would: each matching credential's login in turn until
/// one is accepted, then the manifest with it; with no match, the manifest anonymously.
pub async fn access(registry: &impl Registry, keyring: &Keyring<Target>, image: &str) -> Access {
    let Some(name) = kubelet::parse_image_name(image) else {
        return Access::Invalid;
    };
    let reference = reference_of(&name);
    let entries = keyring.lookup(&name.repository());
    if entries.is_empty() {
        let manifest = registry.manifest(&reference, None).await;
        return Access::Anonymous { name, manifest };
    }
    let host = name.api_host();
    let mut logins = Vec::new();
    let mut manifest = None;
    for e in &entries {
        let verdict = registry.login(e, &host, &name.path).await;
        let ok = verdict.0 == Reply::Ok;
        logins.push(verdict);
        if ok {
            manifest = Some(registry.manifest(&reference, Some(e)).await);
            break;
        }
    }
    Access::Credentials {
        name,
        entries,
        logins,
        manifest,
    }
}
