//! The finished run's [`Summary`] as Prometheus exposition text (by the Prometheus project's Rust
//! client): every metric a gauge describing the last run, so each push replaces the previous
//! run's values; `last_success_timestamp_seconds` is left out of a run that did not converge, so
//! the Pushgateway keeps the time of the last run that did. Pushing it is `cluster::pushgateway`.

use prometheus_client::encoding::text::encode as encode_text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::core::model::Severity;
use crate::core::summary::Summary;

/// Metric name prefix.
pub const PREFIX: &str = "pullsecret_reconciler";

type Labels = Vec<(&'static str, &'static str)>;
/// A labelled gauge: name, help, label name, and a value per label value.
type FamilyValues = (&'static str, &'static str, &'static str, Vec<(&'static str, usize)>);

/// The exposition text of one finished run. `now` is the Unix time the run ended, in seconds.
pub fn encode(summary: &Summary, now: f64) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    let float = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(value);
        registry.register(name, help, g);
    };
    float(
        &mut registry,
        "last_run_timestamp_seconds",
        "Unix time the last run ended, whatever its outcome",
        now,
    );
    if summary.exit_code() == 0 {
        float(
            &mut registry,
            "last_success_timestamp_seconds",
            "Unix time the last converged run ended (exit code 0); alert when it grows old",
            now,
        );
    }
    float(
        &mut registry,
        "duration_seconds",
        "Wall-clock duration of the last run",
        summary.duration_ms as f64 / 1000.0,
    );
    let int = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let g = Gauge::<i64>::default();
        g.set(value);
        registry.register(name, help, g);
    };
    int(
        &mut registry,
        "exit_code",
        "Exit code of the last run: 0 converged, 1 not converged, 2 nothing written",
        i64::from(summary.exit_code()),
    );
    int(
        &mut registry,
        "converged",
        "1 when the last run converged, else 0",
        i64::from(summary.converged && summary.error.is_none()),
    );
    for (name, help, label, values) in families(summary) {
        let family = Family::<Labels, Gauge>::default();
        for (value, count) in values {
            family
                .get_or_create(&vec![(label, value)])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        registry.register(name, help, family);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode_text(&mut text, &registry);
    text
}

/// The labelled gauges: each count of the summary under its group.
fn families(summary: &Summary) -> [FamilyValues; 6] {
    let n = &summary.namespaces;
    let s = &summary.secrets;
    let sa = &summary.service_accounts;
    let api = &summary.api_requests;
    let problems = |severity: Severity| summary.problems.iter().filter(|p| p.severity == severity).count();
    let pods = &summary.pods;
    [
        (
            "namespaces",
            "Namespaces the last run saw, by state",
            "state",
            vec![
                ("seen", n.seen),
                ("selected", n.selected),
                ("excluded", n.excluded),
                ("terminating", n.terminating),
            ],
        ),
        (
            "secrets",
            "Pull Secret copies by what the last run did with them",
            "outcome",
            vec![
                ("created", s.created),
                ("updated", s.updated),
                ("adopted", s.adopted),
                ("unchanged", s.unchanged),
                ("deleted", s.deleted),
                ("kept", s.kept),
                ("refused", s.refused),
                ("conflicts", s.conflicts),
                ("conflicts_accepted", s.conflicts_accepted),
                ("failed", s.failed),
            ],
        ),
        (
            "service_accounts",
            "ServiceAccounts by what the last run did with them",
            "outcome",
            vec![
                ("patched", sa.patched),
                ("unchanged", sa.unchanged),
                ("missing", sa.missing),
                ("failed", sa.failed),
                ("retried", sa.retried),
            ],
        ),
        (
            "stuck_pods",
            "Pods stuck on an image pull because they were admitted before their ServiceAccount listed a \
             managed name, by what the last run did (PULLSECRET_HEAL_PODS)",
            "outcome",
            vec![
                ("evicted", pods.evicted),
                ("refused", pods.refused),
                ("not_healable", pods.not_healable),
            ],
        ),
        (
            "api_requests",
            "Kubernetes API requests the last run made",
            "kind",
            vec![("reads", api.reads as usize), ("writes", api.writes as usize)],
        ),
        (
            "problems",
            "Problems the last run reported, by severity",
            "severity",
            vec![
                ("error", problems(Severity::Error)),
                ("warning", problems(Severity::Warning)),
                ("info", problems(Severity::Info)),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::DryRun;

    fn converged() -> Summary {
        let mut s = Summary::from_run(&crate::core::model::Plan::default(), &[], DryRun::Off);
        s.namespaces.seen = 12;
        s.namespaces.selected = 9;
        s.secrets.created = 3;
        s.api_requests.reads = 7;
        s.duration_ms = 1500;
        s
    }

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn a_converged_run_reports_its_success_time_and_counts() {
        let text = encode(&converged(), 1_764_000_000.5);
        assert_eq!(
            line(&text, "pullsecret_reconciler_last_run_timestamp_seconds "),
            Some("pullsecret_reconciler_last_run_timestamp_seconds 1764000000.5")
        );
        assert!(
            line(
                &text,
                "pullsecret_reconciler_last_success_timestamp_seconds 1764000000.5"
            )
            .is_some()
        );
        assert!(line(&text, "pullsecret_reconciler_exit_code 0").is_some(), "{text}");
        assert!(line(&text, "pullsecret_reconciler_converged 1").is_some());
        assert!(line(&text, "pullsecret_reconciler_duration_seconds 1.5").is_some());
        assert!(line(&text, "pullsecret_reconciler_secrets{outcome=\"created\"} 3").is_some());
        assert!(line(&text, "pullsecret_reconciler_namespaces{state=\"selected\"} 9").is_some());
        assert!(line(&text, "pullsecret_reconciler_api_requests{kind=\"reads\"} 7").is_some());
        // Gauges only: the Pushgateway's text parser takes them as they are (no _total suffixes).
        assert!(
            text.lines()
                .filter(|l| l.starts_with("# TYPE"))
                .all(|l| l.ends_with(" gauge")),
            "{text}"
        );
    }

    #[test]
    fn a_run_that_did_not_converge_leaves_the_success_time_out() {
        let mut s = converged();
        s.converged = false;
        let text = encode(&s, 10.0);
        assert!(!text.contains("last_success_timestamp_seconds"), "{text}");
        assert!(line(&text, "pullsecret_reconciler_exit_code 1").is_some());
        let aborted = Summary::aborted(DryRun::Off, &anyhow::anyhow!("source unreadable"));
        let text = encode(&aborted, 10.0);
        assert!(!text.contains("last_success_timestamp_seconds"), "{text}");
        assert!(line(&text, "pullsecret_reconciler_exit_code 2").is_some());
        assert!(line(&text, "pullsecret_reconciler_converged 0").is_some());
        assert!(line(&text, "pullsecret_reconciler_last_run_timestamp_seconds 10").is_some());
    }
}
