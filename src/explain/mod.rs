//! `pullsecret-reconciler explain`: why a Pod's images would or would not pull. Reads only.
//!
//! It walks the chain the kubelet walks, one verdict per step: the Pod's `imagePullSecrets`
//! (copied from its ServiceAccount at admission, or not), each named Secret (exists in the Pod's
//! namespace, right type, parsable), which `auths` entry matches each image by the kubelet's own
//! rules ([`crate::core::kubelet`]), whether the registry accepts that credential for pulling that
//! repository, and whether the manifest for that tag or digest exists. The first step that fails
//! ends the walk and is the verdict, with the fix in one line.
//!
//! `gather` reads (the Pod, its ServiceAccount, the named Secrets; one paged Pod list for
//! `--stuck`) and asks the registries, through traits; `judge` is pure (one [`Cause`] per failing
//! image: verdict, fix and group line); `render` prints. No credential is ever printed.

pub mod gather;
pub mod judge;
pub mod render;

use anyhow::{Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;

pub use crate::core::reduce::stuck_containers;
use gather::Subject;
pub use gather::{Reads, Registry};
pub use judge::{Cause, group, judge_secrets};

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
    pub result: StepResult,
    pub detail: String,
}

/// How one step of the chain went; serialized as `ok`, `failed`, `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    Ok,
    Failed,
    /// Not known from here (a Secret this identity may not read).
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageVerdict {
    pub container: String,
    pub image: String,
    pub would_pull: bool,
    pub steps: Vec<Step>,
    /// The failing step, for grouping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
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

/// Pods with the same cause about the same registry or Secret.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub cause: Cause,
    pub subject: String,
    /// One line: how many Pods in how many namespaces, and why.
    pub summary: String,
    pub fix: String,
    pub pods: Vec<String>,
}

/// What `--stuck` found: the Pods examined in time, and how many were not.
#[derive(Debug, Default)]
pub struct Stuck {
    pub pods: Vec<PodExplanation>,
    pub late: usize,
}

/// How long `explain --stuck` examines stuck Pods, and how many at once.
pub const STUCK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
pub const STUCK_CONCURRENCY: usize = 8;

async fn explain_subject(reads: &impl Reads, registry: &impl Registry, s: Subject) -> Result<PodExplanation> {
    let read = gather::secrets(reads, &s).await?;
    let mut judged = judge_secrets(&s.namespace, &read);
    let detail = format!(
        "imagePullSecrets [{}] from {}",
        s.pull_secrets.join(", "),
        s.pull_secrets_from
    );
    judged
        .steps
        .insert(0, judge::step("pull-secrets", StepResult::Ok, detail));
    let mut images = Vec::new();
    for (container, image) in &s.containers {
        let access = gather::access(registry, &judged.keyring, image).await;
        images.push(judge::judge_image(&s, &judged, container, image, &access));
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
pub async fn explain_one(reads: &impl Reads, registry: &impl Registry, question: &Question) -> Result<PodExplanation> {
    let subject = match question {
        Question::Pod { namespace, name } => {
            let Some(pod) = reads.pod(namespace, name).await? else {
                bail!("Pod {namespace}/{name} does not exist");
            };
            gather::subject_of_pod(reads, &pod, None).await?
        }
        Question::Image {
            namespace,
            image,
            service_account,
        } => gather::subject_of_image(reads, namespace, image, service_account).await?,
        Question::Stuck => bail!("--stuck is answered by explain_stuck"),
    };
    explain_subject(reads, registry, subject).await
}

/// `explain --stuck`: every stuck Pod explained (only its stuck containers), [`STUCK_CONCURRENCY`]
/// at a time with the registries' answers shared, until [`STUCK_DEADLINE`]: a registry outage
/// with hundreds of stuck Pods ends there with what was found.
pub async fn explain_stuck(reads: &impl Reads, registry: &impl Registry) -> Result<Stuck> {
    let stuck = reads.stuck_pods().await?;
    let deadline = tokio::time::Instant::now() + STUCK_DEADLINE;
    let results: Vec<_> = futures::stream::iter(stuck)
        .map(|(pod, names)| async move {
            // Past the deadline nothing more is started (a timeout would still poll it once).
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            let explained = async {
                let subject = gather::subject_of_pod(reads, &pod, Some(&names)).await?;
                explain_subject(reads, registry, subject).await
            };
            tokio::time::timeout_at(deadline, explained).await.ok()
        })
        .buffered(STUCK_CONCURRENCY)
        .collect()
        .await;
    let mut out = Stuck::default();
    for r in results {
        match r {
            Some(e) => out.pods.push(e?),
            None => out.late += 1,
        }
    }
    Ok(out)
}

/// Answers the question and prints the answer; the exit code: 0 would pull, 1 would not, 2 the
/// question itself is invalid.
pub async fn answer(reads: &impl Reads, registry: &impl Registry, question: &Question, json: bool) -> u8 {
    let answered = if *question == Question::Stuck {
        explain_stuck(reads, registry)
            .await
            .map(|stuck| render::print_stuck(&stuck, json))
    } else {
        explain_one(reads, registry, question)
            .await
            .map(|e| render::print_one(&e, json))
    };
    answered.unwrap_or_else(|e| render::print_invalid(&e, json))
}

#[cfg(test)]
mod tests;
