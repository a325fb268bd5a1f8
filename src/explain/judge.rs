//! Judging (pure): from what was read and what the registries answered to one verdict per image,
//! the way the kubelet would decide, and the grouping of stuck Pods by cause.

use std::collections::{BTreeMap, BTreeSet};

use oci_client::Reference;
use serde::Serialize;

use super::gather::{Access, Subject};
use super::{Group, ImageVerdict, PodExplanation, SecretRead, Step, StepResult};
use crate::cluster::registry::{self, Reply, Target};
use crate::core::kubelet::{ImageName, Keyring};

/// Why an image would not pull: the step of the kubelet's chain that fails. Serialized (and in
/// the JSON answer) by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Cause {
    NoPullSecrets,
    SecretMissing,
    SecretUnreadable,
    SecretWrongType,
    SecretInvalid,
    ServiceAccountPatchedAfterAdmission,
    NoAuthsEntry,
    Rejected,
    Unreachable,
    #[serde(rename = "TLS")]
    Tls,
    ManifestMissing,
    InvalidImage,
}

impl Cause {
    /// The line for a group of Pods (`what`: "3 Pods in 2 namespaces") failing for this cause
    /// about `subject` (a registry or a Secret).
    pub fn group_line(self, what: &str, subject: &str) -> String {
        match self {
            Cause::NoAuthsEntry => format!("{what} use {subject}, for which no Secret they name has an entry"),
            Cause::NoPullSecrets => format!("{what} pull from {subject} with no imagePullSecrets at all"),
            Cause::SecretMissing => format!("{what} name Secret {subject}, which does not exist in their namespace"),
            Cause::SecretUnreadable => format!("{what} name Secret {subject}, which this identity may not read"),
            Cause::SecretWrongType => {
                format!("{what} name Secret {subject}, which is not kubernetes.io/dockerconfigjson")
            }
            Cause::SecretInvalid => format!("{what} name Secret {subject}, which holds no usable docker config"),
            Cause::ServiceAccountPatchedAfterAdmission => {
                format!("{what} were admitted before their ServiceAccount listed {subject}")
            }
            Cause::Rejected => format!("{what} use {subject}, which rejects the credential"),
            Cause::Unreachable => format!("{what} use {subject}, which is unreachable"),
            Cause::Tls => format!("{what} use {subject}, whose certificate is not trusted"),
            Cause::ManifestMissing => format!("{what} use images that {subject} does not have"),
            Cause::InvalidImage => format!("{what} name {subject}, which is not an image reference"),
        }
    }

    /// A Secret's problem as the verdict and the fix.
    fn secret_verdict(self, secret: &str) -> (String, String) {
        match self {
            Cause::SecretMissing => (
                format!("Secret {secret} does not exist in the Pod's namespace"),
                format!("create {secret} there, or let pullsecret-reconciler copy it (is the namespace selected?)"),
            ),
            Cause::SecretUnreadable => (
                format!("cannot tell: may not read Secret {secret}"),
                format!("run explain with an identity that may read {secret}, or check it by hand"),
            ),
            Cause::SecretWrongType => (
                format!("Secret {secret} is not of type kubernetes.io/dockerconfigjson"),
                format!("recreate {secret} with kubectl create secret docker-registry (type cannot be changed)"),
            ),
            _ => (
                format!("Secret {secret} holds no usable docker config"),
                format!("fix the .dockerconfigjson of {secret}"),
            ),
        }
    }
}

/// The Secrets' steps, the keyring the kubelet would build from the good ones, and each bad
/// one's cause.
pub struct Judged {
    pub steps: Vec<Step>,
    pub keyring: Keyring<Target>,
    pub problems: Vec<(Cause, String)>,
}

pub(super) fn step(step: &'static str, result: StepResult, detail: String) -> Step {
    Step { step, result, detail }
}

/// One named Secret: its step, and its entries added to the keyring or its cause.
fn judge_secret(namespace: &str, name: &str, read: &SecretRead, judged: &mut Judged) -> Step {
    let (result, detail) = match read {
        SecretRead::Missing => {
            judged.problems.push((Cause::SecretMissing, name.to_owned()));
            (
                StepResult::Failed,
                format!("Secret {name} does not exist in namespace {namespace}"),
            )
        }
        SecretRead::Forbidden => {
            judged.problems.push((Cause::SecretUnreadable, name.to_owned()));
            (
                StepResult::Unknown,
                format!("may not read Secret {name} (this identity reads only the managed pull-secret names)"),
            )
        }
        SecretRead::Found(secret) => match crate::sources::from_secret(secret, &format!("Secret {namespace}/{name}")) {
            Err(e) => {
                let wrong_type = !matches!(
                    secret.type_.as_deref(),
                    Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg")
                );
                let cause = if wrong_type {
                    Cause::SecretWrongType
                } else {
                    Cause::SecretInvalid
                };
                judged.problems.push((cause, name.to_owned()));
                (StepResult::Failed, format!("{e:#}"))
            }
            Ok(bytes) => {
                let credential = crate::core::model::Credential {
                    target: name.to_owned(),
                    origin: name.to_owned(),
                    source_secret: None,
                    data: bytes,
                };
                let targets = registry::targets(std::slice::from_ref(&credential));
                let keys: Vec<String> = targets.iter().map(|t| t.server.clone()).collect();
                // Each entry's source is its Secret's name (the credential's origin).
                for t in targets {
                    let server = t.server.clone();
                    judged.keyring.add(&server, t);
                }
                let ty = secret.type_.as_deref().unwrap_or_default();
                (
                    StepResult::Ok,
                    format!("Secret {name}: {ty}, auths for {}", keys.join(", ")),
                )
            }
        },
    };
    step("secret", result, detail)
}

/// The Secrets as the kubelet would use them (in the Pod's order).
pub fn judge_secrets(namespace: &str, secrets: &[(String, SecretRead)]) -> Judged {
    let mut judged = Judged {
        steps: Vec::new(),
        keyring: Keyring::new(),
        problems: Vec::new(),
    };
    for (name, read) in secrets {
        let s = judge_secret(namespace, name, read, &mut judged);
        judged.steps.push(s);
    }
    judged
}

pub(super) fn reference_of(name: &ImageName) -> Reference {
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

fn fail(v: &mut ImageVerdict, cause: Cause, subject: &str, verdict: String, fix: String) {
    v.cause = Some(cause);
    v.subject = subject.to_owned();
    v.verdict = verdict;
    v.fix = fix;
}

/// The chain for one image: the Pod's and Secrets' steps, then what the registry answered.
pub fn judge_image(subject: &Subject, judged: &Judged, container: &str, image: &str, access: &Access) -> ImageVerdict {
    let mut v = ImageVerdict {
        container: container.to_owned(),
        image: image.to_owned(),
        would_pull: false,
        steps: judged.steps.clone(),
        cause: None,
        subject: String::new(),
        verdict: String::new(),
        fix: String::new(),
    };
    match access {
        Access::Invalid => {
            let why = format!("{image:?} is not an image reference");
            v.steps.push(step("match", StepResult::Failed, why.clone()));
            fail(
                &mut v,
                Cause::InvalidImage,
                image,
                why,
                "fix the image field of the container".into(),
            );
        }
        Access::Anonymous { name, manifest } => judge_anonymous(&mut v, subject, judged, name, manifest),
        Access::Credentials {
            name,
            entries,
            logins,
            manifest,
        } => judge_with_credentials(&mut v, name, entries, logins, manifest.as_ref()),
    }
    v
}

/// No `auths` entry matched: the kubelet pulls anonymously, so a public image still pulls.
fn judge_anonymous(
    v: &mut ImageVerdict,
    subject: &Subject,
    judged: &Judged,
    name: &ImageName,
    manifest: &registry::ManifestResult,
) {
    let registry = name.domain.as_str();
    let reference = reference_of(name);
    let detail = format!(
        "no auths entry matches {registry} (kubelet matching on {})",
        name.repository()
    );
    v.steps.push(step("match", StepResult::Failed, detail));
    match manifest {
        Ok(digest) => {
            v.steps.push(step(
                "manifest",
                StepResult::Ok,
                format!("anonymous pull: {reference} is {digest}"),
            ));
            v.would_pull = true;
            return;
        }
        Err((Reply::Missing, message)) => v.steps.push(step("manifest", StepResult::Failed, message.clone())),
        Err((_, message)) => v
            .steps
            .push(step("login", StepResult::Failed, format!("anonymous: {message}"))),
    }
    let patched = &subject.patched;
    if !patched.is_empty() {
        let verdict = format!(
            "the Pod was admitted before its ServiceAccount listed {}; Pods keep the imagePullSecrets they were created with",
            patched.join(", ")
        );
        let fix = "delete the Pod (or kubectl rollout restart its workload): new Pods get the ServiceAccount's imagePullSecrets";
        fail(
            v,
            Cause::ServiceAccountPatchedAfterAdmission,
            &patched.join(","),
            verdict,
            fix.into(),
        );
    } else if let Some((cause, secret)) = judged.problems.first() {
        let (verdict, fix) = cause.secret_verdict(secret);
        fail(v, *cause, secret, verdict, fix);
    } else if subject.pull_secrets.is_empty() {
        let verdict = format!("no imagePullSecrets, and {registry} does not serve {reference} anonymously");
        let fix = "add the pull Secret to the Pod's ServiceAccount (PULLSECRET_SERVICE_ACCOUNTS) and recreate the Pod";
        fail(v, Cause::NoPullSecrets, registry, verdict, fix.into());
    } else {
        let verdict = format!(
            "no Secret in imagePullSecrets ({}) has an auths entry for {registry}",
            subject.pull_secrets.join(", ")
        );
        let fix = format!("add {registry} to the source's auths (its key must match the image by the kubelet's rules)");
        fail(v, Cause::NoAuthsEntry, registry, verdict, fix);
    }
}

/// Entries matched: the kubelet tries each credential in turn; the first the registry accepts
/// wins, and its manifest check decides.
fn judge_with_credentials(
    v: &mut ImageVerdict,
    name: &ImageName,
    entries: &[Target],
    logins: &[registry::Verdict],
    manifest: Option<&registry::ManifestResult>,
) {
    let described: Vec<String> = entries
        .iter()
        .map(|e| format!("{:?} of Secret {}", e.server, e.source))
        .collect();
    v.steps.push(step(
        "match",
        StepResult::Ok,
        format!("auths entry {}", described.join(", then ")),
    ));
    let accepted = logins.iter().position(|l| l.0 == Reply::Ok);
    let (Some(at), Some(manifest)) = (accepted, manifest) else {
        judge_rejected_login(v, name, entries, logins.first());
        return;
    };
    let entry = &entries[at];
    let login = &logins[at];
    let detail = format!("{} (Secret {}, pull scope on {})", login.2, entry.source, name.path);
    v.steps.push(step("login", StepResult::Ok, detail));
    let registry = name.domain.as_str();
    match manifest {
        Ok(digest) => {
            v.steps.push(step(
                "manifest",
                StepResult::Ok,
                format!("{} is {digest}", reference_of(name)),
            ));
            v.would_pull = true;
        }
        Err((result, message)) => {
            v.steps.push(step("manifest", StepResult::Failed, message.clone()));
            let (cause, fix) = if *result == Reply::Missing {
                (
                    Cause::ManifestMissing,
                    "check the image name and tag (or push it)".to_owned(),
                )
            } else {
                let fix = format!(
                    "give the credential in Secret {} pull access to {}",
                    entry.source, name.path
                );
                (Cause::Rejected, fix)
            };
            fail(v, cause, registry, message.clone(), fix);
        }
    }
}

/// No credential was accepted: the first refusal is the verdict.
fn judge_rejected_login(v: &mut ImageVerdict, name: &ImageName, entries: &[Target], first: Option<&registry::Verdict>) {
    let registry = name.domain.as_str();
    let (result, status, message) = first.cloned().unwrap_or((Reply::Unreachable, None, String::new()));
    v.steps.push(step("login", StepResult::Failed, message));
    let source = entries.first().map(|e| e.source.as_str()).unwrap_or_default();
    let (cause, fix) = match result {
        Reply::Rejected => (
            Cause::Rejected,
            format!(
                "rotate the credential in the source of {source} (PULLSECRET_VERIFY=strict keeps a wrong one from being copied)"
            ),
        ),
        Reply::Tls => (
            Cause::Tls,
            format!(
                "make {registry}'s certificate trusted by the nodes (and PULLSECRET_REGISTRY_CA_FILE for this check)"
            ),
        ),
        _ => (
            Cause::Unreachable,
            format!("check that {registry} is reachable from the nodes (DNS, firewall, proxy)"),
        ),
    };
    let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    let verdict = format!(
        "{registry} does not accept the credential for pulling {}: {result}{status}",
        name.path
    );
    fail(v, cause, registry, verdict, fix);
}

/// Groups the explained stuck Pods by (cause, subject), largest group first.
pub fn group(explanations: &[PodExplanation]) -> Vec<Group> {
    // (cause, subject) -> (fix, pods, namespaces)
    type Members = (String, BTreeSet<String>, BTreeSet<String>);
    let mut groups: BTreeMap<(Cause, String), Members> = BTreeMap::new();
    for e in explanations {
        for i in e.images.iter().filter(|i| !i.would_pull) {
            let Some(cause) = i.cause else { continue };
            let entry = groups
                .entry((cause, i.subject.clone()))
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
            Group {
                cause,
                summary: cause.group_line(&what, &subject),
                subject,
                fix,
                pods: pods.into_iter().collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.pods.len().cmp(&a.pods.len()).then_with(|| a.summary.cmp(&b.summary)));
    out
}
