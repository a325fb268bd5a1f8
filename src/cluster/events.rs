//! Stage 7, notify: the run's Summary -> `events.k8s.io/v1` Events (which ones: pure; sending
//! them: thin I/O). One Warning Event on the affected object for every problem, and one summary
//! Event per run that changed something or found a problem; none for a run with nothing to do.
//! A condition that lasts is written once, then again at most once per [`REPEAT`] (the same
//! Event's next `series` count): see [`due`].

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::time::{Instant, timeout_at};

use crate::config::Source;
use crate::core::model::Severity;
use crate::core::summary::{Problem, Summary, problem};
use crate::core::{FIELD_MANAGER, INVENTORY_NAME};

/// The most Events one run writes; the last of them says how many were left out.
pub const MAX_EVENTS: usize = 100;
/// Events get their own time after the run, so a run that hit its deadline — when they matter
/// most — still reports through them.
pub const BUDGET: std::time::Duration = std::time::Duration::from_secs(10);
/// The API server's limit on `note` is 1 kB.
const NOTE_BYTES: usize = 1000;

/// One Event to write, regarding a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: String,
    pub note: String,
    /// A lasting condition (a problem, a run that found one and changed nothing): written when it
    /// appears or changes and then at most once per [`REPEAT`]. Otherwise an occurrence (a run
    /// that wrote, an eviction): always its own Event.
    pub condition: bool,
}

/// Where the run's summary Event goes: the (first) source Secret, else the inventory ConfigMap,
/// both in the source namespace.
pub struct Anchor {
    pub namespace: String,
    pub kind: &'static str,
    pub name: String,
}

impl Anchor {
    pub fn of(source: &Source, namespace: &str) -> Anchor {
        let (kind, name) = match source {
            Source::Secrets(m) if !m.is_empty() => ("Secret", m[0].source.clone()),
            _ => ("ConfigMap", INVENTORY_NAME.to_owned()),
        };
        Anchor {
            namespace: namespace.to_owned(),
            kind,
            name,
        }
    }
}

/// An unchanged condition is written again (as the same Event's next `series` count) at most
/// this often while it lasts: a steady state with an unchanged warning writes nothing in between.
pub const REPEAT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A stable identity for an Event: the same object, reason and note give the same name, so a
/// condition that lasts updates one Event instead of adding one a run.
pub fn identity(spec: &EventSpec) -> u64 {
    // FNV-1a: stable across processes and versions (std's hasher is neither).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        &spec.namespace,
        &spec.kind,
        &spec.name,
        spec.type_,
        &spec.reason,
        &spec.note,
    ] {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What to write for a condition's Event, given the existing one (`None`: there is none):
/// its last write in Unix seconds (`series.lastObservedTime`, else `eventTime`) and its count.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    Create,
    /// The same Event's next `series` count.
    Repeat(i32),
    Nothing,
}

/// A condition's Event is created when it appears (or changed: a new identity) and counted again
/// once [`REPEAT`] has passed since its last write; in between, nothing is written.
pub fn due(existing: Option<(i64, i32)>, now: i64) -> Due {
    let repeat = i64::try_from(REPEAT.as_secs()).unwrap_or(i64::MAX);
    match existing {
        None => Due::Create,
        Some((at, count)) if now - at >= repeat => Due::Repeat(count + 1),
        Some(_) => Due::Nothing,
    }
}

/// Writes the run's Events (conditions only when [`due`]); any that could not be written become
/// one warning in the summary.
pub async fn send(client: &Client, summary: &mut Summary, anchor: &Anchor, deadline: Instant) {
    let events = events(summary, anchor);
    let failed = emit(client, &events, deadline).await;
    if failed > 0 {
        let message = format!(
            "{failed} of {} Events could not be written (see the logs)",
            events.len()
        );
        summary.problems.push(problem(
            "",
            "Event",
            "",
            "EventsNotWritten",
            &message,
            Severity::Warning,
        ));
    }
}

/// The Events of a finished run, at most `MAX_EVENTS`. A dry run, or a run that changed nothing
/// and found no problem, has none.
pub fn events(summary: &Summary, anchor: &Anchor) -> Vec<EventSpec> {
    let s = &summary.secrets;
    let a = &summary.service_accounts;
    let changed = s.created + s.updated + s.deleted + a.patched + summary.pods.evicted > 0;
    // Info (an accepted conflict) is in the summary only: no Event, every run.
    let noteworthy: Vec<&Problem> = summary
        .problems
        .iter()
        .filter(|p| p.severity != Severity::Info)
        .collect();
    if summary.dry_run || summary.error.is_some() || (!changed && noteworthy.is_empty()) {
        return vec![];
    }
    let mut out = vec![run_event(summary, anchor, noteworthy.len(), changed)];
    out.extend(eviction_events(summary));
    out.extend(problem_events(&noteworthy, anchor));
    cap_events(out)
}

/// The one Event on the source about the whole run.
fn run_event(summary: &Summary, anchor: &Anchor, noteworthy: usize, changed: bool) -> EventSpec {
    let s = &summary.secrets;
    let a = &summary.service_accounts;
    EventSpec {
        condition: !changed,
        namespace: anchor.namespace.clone(),
        kind: anchor.kind.into(),
        name: anchor.name.clone(),
        type_: if summary.converged { "Normal" } else { "Warning" },
        reason: if summary.converged {
            "Reconciled"
        } else {
            "NotConverged"
        }
        .into(),
        note: truncate(format!(
            "Secrets: {} created, {} updated, {} deleted, {} kept, {} refused, {} conflicts, {} failed; \
             ServiceAccounts: {} patched, {} failed; Pods: {} evicted; {} problem(s) in {} namespace(s) selected",
            s.created,
            s.updated,
            s.deleted,
            s.kept,
            s.refused,
            s.conflicts,
            s.failed,
            a.patched,
            a.failed,
            summary.pods.evicted,
            noteworthy,
            summary.namespaces.selected
        )),
    }
}

/// Each eviction on its Pod (the Pod is gone soon; the Event stays with the namespace).
fn eviction_events(summary: &Summary) -> Vec<EventSpec> {
    let mut out = Vec::new();
    for e in summary
        .actions
        .iter()
        .filter(|e| e.action == "evict" && e.status == "done")
    {
        out.push(EventSpec {
            namespace: e.namespace.clone(),
            kind: "Pod".into(),
            name: e.name.clone(),
            condition: false,
            type_: "Normal",
            reason: "EvictedToHeal".into(),
            note: "evicted by pullsecret-reconciler: admitted before its ServiceAccount listed the pull Secret; \
                   its controller makes a new Pod, which gets the Secret at admission"
                .into(),
        });
    }
    out
}

/// A Warning on each problem's object; run-level problems are in the run's Event.
fn problem_events(noteworthy: &[&Problem], anchor: &Anchor) -> Vec<EventSpec> {
    let mut out = Vec::new();
    for p in noteworthy {
        // Run-level problems (no object) are in the summary Event; the inventory lives in the
        // source namespace.
        let namespace = match (p.kind.as_str(), p.namespace.is_empty()) {
            ("ConfigMap", true) => anchor.namespace.clone(),
            (_, true) => continue,
            _ => p.namespace.clone(),
        };
        if p.name.is_empty() {
            continue;
        }
        out.push(EventSpec {
            namespace,
            kind: p.kind.clone(),
            name: p.name.clone(),
            type_: "Warning",
            reason: p.reason.clone(),
            note: truncate(p.message.clone()),
            condition: true,
        });
    }
    out
}

/// At most [`MAX_EVENTS`]: the last one then says how many were left out.
fn cap_events(mut out: Vec<EventSpec>) -> Vec<EventSpec> {
    if out.len() > MAX_EVENTS {
        let left_out = out.len() - (MAX_EVENTS - 1);
        out.truncate(MAX_EVENTS - 1);
        out.push(EventSpec {
            type_: "Warning",
            condition: true,
            reason: "EventsLimited".into(),
            note: format!(
                "{left_out} more problem Event(s) of this run were left out (at most {MAX_EVENTS} per run); \
                 the run's summary lists every problem"
            ),
            ..out[0].clone()
        });
    }
    out
}

fn truncate(mut note: String) -> String {
    if note.len() > NOTE_BYTES {
        let mut cut = NOTE_BYTES - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    note
}

/// A condition's Event: read the one of the same identity and write only what [`due`] says.
async fn write_condition(api: &Api<Event>, name: &str, event: &Event, now: Timestamp) -> kube::Result<()> {
    let existing = api.get_opt(name).await?.map(|e| {
        let series = e.series.as_ref();
        let last = series
            .map(|s| s.last_observed_time.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .map_or(0, |t| t.as_second());
        (last, series.map_or(1, |s| s.count))
    });
    match due(existing, now.as_second()) {
        Due::Nothing => Ok(()),
        // Another run created it since our read: that one is this occurrence.
        Due::Create => match api.create(&PostParams::default(), event).await {
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            r => r.map(drop),
        },
        Due::Repeat(count) => {
            let body = json!({ "series": { "count": count, "lastObservedTime": now.to_string() } });
            api.patch(name, &PatchParams::default(), &Patch::Merge(body))
                .await
                .map(drop)
        }
    }
}

/// Writes the Events, one at a time, within the run deadline. Returns how many could not be
/// written: a failure is logged, never a reason to change the run's exit code.
async fn emit(client: &Client, specs: &[EventSpec], deadline: Instant) -> usize {
    // The kubelet-style instance name: this Pod (HOSTNAME in a Pod is its name), else "local".
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let instance: String = format!("{FIELD_MANAGER}-{host}").chars().take(128).collect();
    let mut failed = 0;
    for (i, spec) in specs.iter().enumerate() {
        let api: Api<Event> = Api::namespaced(client.clone(), &spec.namespace);
        let now = Timestamp::now();
        // A condition is named after its identity (a repeat is the same Event); an occurrence
        // like the kubelet's Events: the object's name and a unique hex suffix.
        let name = if spec.condition {
            format!("{}.{:016x}", spec.name, identity(spec))
        } else {
            format!("{}.{:x}", spec.name, now.as_nanosecond() + i as i128)
        };
        let event: Result<Event, _> = serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": spec.namespace },
            "eventTime": now.to_string(),
            "reportingController": FIELD_MANAGER,
            "reportingInstance": instance,
            "action": "Reconcile",
            "reason": spec.reason,
            "type": spec.type_,
            "note": spec.note,
            "regarding": { "apiVersion": "v1", "kind": spec.kind, "namespace": spec.namespace, "name": spec.name },
        }));
        let sent = match event {
            Ok(e) if spec.condition => match timeout_at(deadline, write_condition(&api, &name, &e, now)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the Events' time budget passed".into()),
            },
            Ok(e) => match timeout_at(deadline, api.create(&PostParams::default(), &e)).await {
                Ok(r) => r.map(drop).map_err(|e| e.to_string()),
                Err(_) => Err("the Events' time budget passed".into()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = sent {
            failed += 1;
            tracing::warn!(namespace = %spec.namespace, reason = %spec.reason, error = %why, "Event not written");
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::summary::Problem;

    fn anchor() -> Anchor {
        Anchor {
            namespace: "home".into(),
            kind: "Secret",
            name: "regcred".into(),
        }
    }

    fn problem(ns: &str, name: &str, reason: &str) -> Problem {
        Problem {
            namespace: ns.into(),
            kind: "Secret".into(),
            name: name.into(),
            reason: reason.into(),
            message: "m".repeat(2000),
            severity: Severity::Error,
        }
    }

    #[test]
    fn a_run_with_nothing_to_do_writes_no_event() {
        let quiet = Summary {
            converged: true,
            ..Summary::default()
        };
        assert!(events(&quiet, &anchor()).is_empty());
    }

    #[test]
    fn a_changing_run_gets_one_summary_event_on_the_source() {
        let mut s = Summary {
            converged: true,
            ..Summary::default()
        };
        s.secrets.created = 3;
        let e = events(&s, &anchor());
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].namespace.as_str(), e[0].name.as_str()), ("home", "regcred"));
        assert_eq!((e[0].type_, e[0].reason.as_str()), ("Normal", "Reconciled"));
        assert!(e[0].note.contains("3 created"));
        s.dry_run = true;
        assert!(events(&s, &anchor()).is_empty(), "a dry run writes nothing");
    }

    #[test]
    fn every_problem_gets_a_warning_on_its_object_and_the_total_is_capped() {
        let mut s = Summary {
            problems: vec![
                problem("a", "regcred", "NotOwned"),
                problem("", "", "PruneLimitExceeded"),
            ],
            ..Summary::default()
        };
        let e = events(&s, &anchor());
        assert_eq!(e.len(), 2, "the run-level problem is in the summary Event");
        assert_eq!(
            (e[1].namespace.as_str(), e[1].reason.as_str(), e[1].type_),
            ("a", "NotOwned", "Warning")
        );
        assert_eq!(e[0].reason, "NotConverged");
        assert!(e[1].note.len() <= NOTE_BYTES, "notes are cut to the API server's limit");

        s.problems = (0..250)
            .map(|i| problem(&format!("ns-{i}"), "regcred", "StillReferenced"))
            .collect();
        let e = events(&s, &anchor());
        assert_eq!(e.len(), MAX_EVENTS);
        let last = e.last().unwrap();
        assert_eq!(last.reason, "EventsLimited");
        assert!(last.note.starts_with("152 more"), "{}", last.note);
    }

    #[test]
    fn an_unchanged_condition_is_written_once_per_interval_and_a_new_one_at_once() {
        let spec = |note: &str| EventSpec {
            namespace: "b".into(),
            kind: "Secret".into(),
            name: "regcred".into(),
            type_: "Warning",
            reason: "WrongType".into(),
            note: note.into(),
            condition: true,
        };
        assert_eq!(due(None, 1000), Due::Create, "new: written");
        assert_eq!(
            due(Some((1000, 1)), 1000 + 3599),
            Due::Nothing,
            "within the interval: nothing"
        );
        assert_eq!(due(Some((1000, 1)), 1000 + 3600), Due::Repeat(2), "once per interval");
        assert_eq!(due(Some((1000, 7)), 9000), Due::Repeat(8));
        assert_ne!(
            identity(&spec("x")),
            identity(&spec("y")),
            "a changed condition: a new Event"
        );
        assert_eq!(identity(&spec("x")), identity(&spec("x")), "stable");
    }

    #[test]
    fn a_run_that_wrote_is_an_occurrence_and_one_that_only_found_problems_a_condition() {
        let mut s = Summary {
            problems: vec![problem("a", "regcred", "NotOwned")],
            ..Summary::default()
        };
        let quiet = events(&s, &anchor());
        assert!(quiet.iter().all(|e| e.condition), "{quiet:?}");
        s.secrets.created = 1;
        let wrote = events(&s, &anchor());
        assert!(!wrote[0].condition, "the run's own Event when it wrote");
        assert!(wrote[1..].iter().all(|e| e.condition));
    }
}
