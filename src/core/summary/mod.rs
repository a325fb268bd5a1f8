//! Stage 6, report (pure): Plan + Outcomes -> [`Summary`], rendered as text or JSON, and the exit code.

mod text;

use serde::Serialize;

pub use crate::core::model::ApiRequests;
use crate::core::model::{DryRun, Failure, Kind, Op, Outcome, Plan, Severity, Status};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// `off`, `client` (nothing sent) or `server` (every write sent with dryRun=All).
    pub dry_run_mode: &'static str,
    /// True when every selected namespace holds the desired state (exit code 0).
    pub converged: bool,
    pub namespaces: Namespaces,
    pub secrets: Secrets,
    pub service_accounts: ServiceAccounts,
    /// Healing (PULLSECRET_HEAL_PODS=evict); absent when no Pod was stuck for our reason.
    #[serde(skip_serializing_if = "PodsHealed::is_empty")]
    pub pods: PodsHealed,
    pub api_requests: ApiRequests,
    pub duration_ms: u64,
    pub problems: Vec<Problem>,
    /// One entry per write, and per kept or refused delete; in a dry run, what would happen. At
    /// most [`ACTIONS_LISTED`]; failed and skipped ones are listed before any successful one is.
    pub actions: Vec<ActionReport>,
    /// How many actions were left out of `actions` by the cap (every count stays exact).
    pub actions_omitted: usize,
    /// Set when the run stopped before writing anything (exit code 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When short-lived credentials (from credential-provider plugins) expire, per registry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credential_expiry: Vec<ExpiryReport>,
    /// With PULLSECRET_VERIFY: each source registry's login check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<crate::core::registry::RegistryCheck>,
    /// With PULLSECRET_WATCH: the window after the full pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::core::watch::WatchReport>,
}

/// One registry's credential lifetime, from the plugin's `cacheDuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryReport {
    pub server: String,
    pub provider: String,
    /// RFC 3339; absent when the plugin gave no lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// The most actions a summary lists: a rotation over 50,000 ServiceAccounts would otherwise print
/// (and hold) one object per write. The counts stay exact and `actions_omitted` says how many
/// were left out.
pub const ACTIONS_LISTED: usize = 1_000;

/// A credential expiring sooner than this is a warning: twice the shipped 5-minute schedule, so
/// at least one more scheduled run can refresh it first.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(2 * 5 * 60);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Namespaces {
    pub seen: usize,
    pub selected: usize,
    pub excluded: usize,
    pub terminating: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Secrets {
    pub created: usize,
    /// Includes `adopted`.
    pub updated: usize,
    pub adopted: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// No longer wanted, but still named by a ServiceAccount or an unfinished Pod.
    pub kept: usize,
    /// Not deleted because a prune guard refused it this run.
    pub refused: usize,
    pub conflicts: usize,
    /// Same-name Secrets their owners marked `pullsecret-reconciler/conflict: accept`.
    pub conflicts_accepted: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServiceAccounts {
    pub patched: usize,
    pub unchanged: usize,
    pub missing: usize,
    pub failed: usize,
    /// Writes repeated because another client changed the ServiceAccount meanwhile.
    pub retried: usize,
    /// How ServiceAccounts were read: `named` (one list per configured name), `all` (a glob, or
    /// a run that checked references before deleting) or `none`.
    pub listed: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PodsHealed {
    /// Evicted (dry run: would be): their controllers make Pods that get the name at admission.
    pub evicted: usize,
    /// Not evicted: a PodDisruptionBudget refused, or past PULLSECRET_HEAL_LIMIT.
    pub refused: usize,
    /// Stuck for our reason but not healable (no controller, or a template that sets the list).
    pub not_healable: usize,
}

impl PodsHealed {
    fn is_empty(&self) -> bool {
        *self == PodsHealed::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    /// `error` makes the run non-converged; `warning` does not.
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// create, update, adopt, delete, patch, kept, refused, evict.
    pub action: &'static str,
    /// planned (dry run), done, failed, skipped, gone.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Summary {
    /// Builds the summary of a run that got as far as a plan. In a client-side dry run every
    /// outcome is `NotSent` and every planned action counts as what would happen.
    pub fn from_run(plan: &Plan, outcomes: &[Outcome], dry_run: DryRun) -> Summary {
        let mut s = Summary {
            dry_run: dry_run != DryRun::Off,
            dry_run_mode: dry_run.as_str(),
            ..Summary::default()
        };
        let n = plan.namespaces;
        s.namespaces = Namespaces {
            seen: n.seen,
            selected: n.selected,
            excluded: n.excluded,
            terminating: n.terminating,
        };
        for o in outcomes {
            s.count(o);
        }
        for f in &plan.findings {
            s.pods.not_healable += usize::from(crate::core::plan::NOT_HEALABLE.contains(&f.reason));
            s.problems
                .push(problem(&f.namespace, f.kind, &f.name, f.reason, &f.message, f.severity));
        }
        s.converged = !s.problems.iter().any(|p| p.severity == Severity::Error);
        s
    }

    fn count(&mut self, o: &Outcome) {
        let a = &o.action;
        let kind = a.kind.as_str();
        if let Op::Conflict { reason, message } = &a.op {
            self.secrets.conflicts += 1;
            self.problems
                .push(problem(&a.namespace, kind, &a.name, reason, message, Severity::Error));
            return;
        }
        if let Op::AcceptedConflict { reason, message } = &a.op {
            self.secrets.conflicts_accepted += 1;
            self.problems
                .push(problem(&a.namespace, kind, &a.name, reason, message, Severity::Info));
            return;
        }
        if let Some(f) = o.status.failure() {
            match a.kind {
                Kind::Secret => self.secrets.failed += 1,
                Kind::ServiceAccount => self.service_accounts.failed += 1,
                Kind::Pod => self.pods.refused += 1,
                Kind::ConfigMap => {}
            }
            self.problems.push(failure(&a.namespace, kind, &a.name, f));
        } else if o.status == Status::Gone {
            // A Pod gone before its eviction needs no healing; a ServiceAccount gone is missing.
            self.service_accounts.missing += usize::from(a.kind == Kind::ServiceAccount);
        } else {
            match &a.op {
                Op::CreateSecret { .. } => self.secrets.created += 1,
                Op::UpdateSecret { adopt, .. } => {
                    self.secrets.updated += 1;
                    self.secrets.adopted += usize::from(*adopt);
                }
                Op::DeleteSecret { .. } => self.secrets.deleted += 1,
                Op::Unchanged if a.kind == Kind::Secret => self.secrets.unchanged += 1,
                Op::Unchanged => self.service_accounts.unchanged += 1,
                Op::PatchServiceAccount { .. } => self.service_accounts.patched += 1,
                Op::Missing => self.service_accounts.missing += 1,
                Op::Kept { reason, message } => {
                    self.secrets.kept += 1;
                    // A hold by hand is the operator's decision: info, not a warning (no Event).
                    let severity = if *reason == "KeepAnnotation" {
                        Severity::Info
                    } else {
                        Severity::Warning
                    };
                    self.problems
                        .push(problem(&a.namespace, kind, &a.name, reason, message, severity));
                }
                Op::Refused { .. } if a.kind == Kind::Secret => self.secrets.refused += 1,
                Op::Refused { reason, message, .. } if a.kind == Kind::Pod => {
                    self.pods.refused += 1;
                    self.problems
                        .push(problem(&a.namespace, kind, &a.name, reason, message, Severity::Warning));
                }
                Op::Evict { .. } => self.pods.evicted += 1,
                _ => {}
            }
        }
        if let Status::Done { retries } = o.status {
            self.service_accounts.retried += retries * usize::from(a.kind == Kind::ServiceAccount);
        }
        if let Some(r) = action_report(o, self.dry_run_mode == DryRun::Client.as_str()) {
            self.list_action(r);
        }
    }

    /// Lists `r` within [`ACTIONS_LISTED`], in the order the actions came. Past the cap a failed
    /// or skipped action takes the place of the last successful one listed (what went wrong is
    /// what a reader needs); anything else is only counted in `actions_omitted`.
    fn list_action(&mut self, r: ActionReport) {
        if self.actions.len() < ACTIONS_LISTED {
            self.actions.push(r);
            return;
        }
        self.actions_omitted += 1;
        let went_wrong = |a: &ActionReport| matches!(a.status, "failed" | "skipped");
        if went_wrong(&r)
            && let Some(i) = self.actions.iter().rposition(|a| !went_wrong(a))
        {
            self.actions.remove(i);
            self.actions.push(r);
        }
    }

    /// A run that found the Lease `name` in `namespace` held by `holder` after waiting `waited`:
    /// nothing written, not converged (exit 1).
    pub fn lease_held(
        dry_run: DryRun,
        namespace: &str,
        name: &str,
        holder: &str,
        waited: std::time::Duration,
    ) -> Summary {
        let mut s = Summary::from_run(&Plan::default(), &[], dry_run);
        let message = format!(
            "another run holds the Lease {namespace}/{name} ({holder}); waited {}s and wrote nothing. Overlapping \
             runs (a CronJob, a manual Job, a CI step) take turns; run again later",
            waited.as_secs()
        );
        s.problems.push(problem(
            namespace,
            "Lease",
            name,
            "LeaseHeld",
            &message,
            Severity::Error,
        ));
        s.converged = false;
        s
    }

    /// Adds what a watch window did: its writes (counted and listed like the full pass's), its
    /// conflicts not reported yet, and `problems` of its own. A failure the full pass reported
    /// for an object the window then wrote successfully is no longer a problem: convergence is
    /// judged as the window ends.
    pub fn add_window(
        &mut self,
        outcomes: &[Outcome],
        problems: Vec<Problem>,
        report: crate::core::watch::WatchReport,
    ) {
        for o in outcomes {
            let a = &o.action;
            if matches!(o.status, Status::Done { .. }) {
                self.problems.retain(|p| {
                    !(p.severity == Severity::Error
                        && p.kind == a.kind.as_str()
                        && p.namespace == a.namespace
                        && p.name == a.name)
                });
            }
            let new_conflict = match &a.op {
                Op::Conflict { reason, .. } | Op::AcceptedConflict { reason, .. } => !self
                    .problems
                    .iter()
                    .any(|p| p.namespace == a.namespace && p.name == a.name && p.reason == *reason),
                _ => false,
            };
            if a.op.is_write() || new_conflict {
                self.count(o);
            }
        }
        self.problems.extend(problems);
        self.converged = !self.problems.iter().any(|p| p.severity == Severity::Error);
        self.watch = Some(report);
    }

    /// Marks a run that lost its Lease to another run mid-way: it stopped writing at once; not
    /// converged (exit 1).
    pub fn lease_lost(&mut self, namespace: &str, name: &str) {
        let message = format!(
            "the Lease {namespace}/{name} was taken over or could not be renewed in time: this run stopped writing \
             at once; the run holding it now goes on"
        );
        self.problems.push(problem(
            namespace,
            "Lease",
            name,
            "LeaseLost",
            &message,
            Severity::Error,
        ));
        self.converged = false;
    }

    /// Marks a run that was asked to stop (SIGTERM): not converged, whatever it got done.
    pub fn stopped(&mut self) {
        if self.problems.iter().any(|p| p.reason == "Stopped") {
            return;
        }
        self.problems.push(problem(
            "",
            "Run",
            "",
            "Stopped",
            "the run was asked to stop (SIGTERM or SIGINT): writes not yet started were not made; the next run \
             makes them",
            Severity::Error,
        ));
        self.converged = false;
    }

    /// The summary of a run that a stop request (a signal, a lost Lease) ended before it wrote
    /// anything: not converged (exit 1, not 2: nothing is wrong with the settings or the source).
    pub fn interrupted(dry_run: DryRun, message: &str) -> Summary {
        Summary {
            dry_run: dry_run != DryRun::Off,
            dry_run_mode: dry_run.as_str(),
            problems: vec![problem("", "Run", "", "Stopped", message, Severity::Error)],
            service_accounts: ServiceAccounts {
                listed: "none",
                ..ServiceAccounts::default()
            },
            ..Summary::default()
        }
    }

    /// The summary of a run that stopped before writing anything.
    pub fn aborted(dry_run: DryRun, error: &anyhow::Error) -> Summary {
        let message = format!("{error:#}");
        Summary {
            dry_run: dry_run != DryRun::Off,
            dry_run_mode: dry_run.as_str(),
            problems: vec![problem("", "Run", "", "NothingWritten", &message, Severity::Error)],
            error: Some(message),
            service_accounts: ServiceAccounts {
                listed: "none",
                ..ServiceAccounts::default()
            },
            ..Summary::default()
        }
    }

    /// 0 converged, 1 finished but not converged, 2 stopped before writing.
    pub fn exit_code(&self) -> u8 {
        match (self.error.is_some(), self.converged) {
            (true, _) => 2,
            (false, true) => 0,
            (false, false) => 1,
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of plain strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Adds the credentials' lifetimes (seconds since the epoch) as of `now`, with a warning for
    /// each that expires within [`EXPIRY_WARNING`].
    pub fn add_expiries(&mut self, expiries: &[crate::core::model::Expiry], now: u64) {
        for e in expiries {
            let left = e.expires_at.map(|at| at.saturating_sub(now));
            let expires_at = e.expires_at.and_then(|at| {
                k8s_openapi::jiff::Timestamp::from_second(i64::try_from(at).ok()?)
                    .ok()
                    .map(|t| t.to_string())
            });
            if let Some(left) = left.filter(|l| *l < EXPIRY_WARNING.as_secs()) {
                let message = format!(
                    "the credential for {} from provider {:?} expires in {left}s, sooner than twice the \
                     5-minute schedule: schedule runs well inside its lifetime",
                    e.server, e.provider
                );
                self.problems.push(problem(
                    "",
                    "Registry",
                    &e.server,
                    "CredentialExpiresSoon",
                    &message,
                    Severity::Warning,
                ));
            }
            self.credential_expiry.push(ExpiryReport {
                server: e.server.clone(),
                provider: e.provider.clone(),
                expires_at,
                expires_in_secs: left,
            });
        }
    }

    /// Adds the registry checks of a run that went on; those not `ok` (possible only under
    /// `warn`) are info: a registry the tool's Pod cannot reach (egress blocked) is the normal
    /// case for many clusters and must cost no Event and no exit code, every run.
    pub fn add_registries(&mut self, checks: Vec<crate::core::registry::RegistryCheck>) {
        for c in checks.iter().filter(|c| c.result != crate::core::registry::Reply::Ok) {
            let reason = if c.result == crate::core::registry::Reply::Tls {
                "RegistryTLS"
            } else {
                "RegistryUnreachable"
            };
            let message = format!("{} (from {}): {}", c.result, c.source, c.message);
            self.problems
                .push(problem("", "Registry", &c.server, reason, &message, Severity::Info));
        }
        self.registries = checks;
    }
}

fn action_report(o: &Outcome, nothing_sent: bool) -> Option<ActionReport> {
    let a = &o.action;
    let (action, added, removed) = match &a.op {
        Op::CreateSecret { .. } => ("create", vec![], vec![]),
        Op::UpdateSecret { adopt: true, .. } => ("adopt", vec![], vec![]),
        Op::UpdateSecret { .. } => ("update", vec![], vec![]),
        Op::DeleteSecret { .. } => ("delete", vec![], vec![]),
        Op::PatchServiceAccount { edit, .. } => ("patch", edit.add.clone(), edit.remove.clone()),
        Op::EditInventory {
            resource_version: None,
            add,
            remove,
            ..
        } => ("create", add.clone(), remove.clone()),
        Op::EditInventory { add, remove, .. } => ("update", add.clone(), remove.clone()),
        Op::Kept { .. } => ("kept", vec![], vec![]),
        Op::Refused { names, .. } => ("refused", vec![], names.clone()),
        Op::Evict { .. } => ("evict", vec![], vec![]),
        Op::Unchanged | Op::Missing | Op::Conflict { .. } | Op::AcceptedConflict { .. } => return None,
    };
    let (status, failure) = match &o.status {
        Status::NotSent => ("planned", None),
        Status::Done { .. } => ("done", None),
        Status::Gone => ("gone", None),
        Status::Failed(f) => ("failed", Some(f)),
        Status::Skipped(f) => ("skipped", Some(f)),
    };
    let (reason, message) = match (&a.op, failure) {
        (Op::Kept { reason, message } | Op::Refused { reason, message, .. }, _) => {
            (Some(reason.to_string()), Some(message.clone()))
        }
        (_, Some(f)) => (Some(f.reason.clone()), Some(f.message.clone())),
        _ => (None, None),
    };
    Some(ActionReport {
        kind: a.kind.as_str(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        action,
        // A decision that needs no write (kept, refused) is as done as the run is.
        status: if a.op.is_write() || nothing_sent {
            status
        } else {
            "done"
        },
        added,
        removed,
        reason,
        message,
    })
}

pub(crate) fn problem(
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
    severity: Severity,
) -> Problem {
    Problem {
        namespace: namespace.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        severity,
    }
}

fn failure(namespace: &str, kind: &str, name: &str, f: &Failure) -> Problem {
    problem(namespace, kind, name, &f.reason, &f.message, Severity::Error)
}

#[cfg(test)]
mod tests;
