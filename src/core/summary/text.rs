//! The text summary (`PULLSECRET_OUTPUT=text`): the same facts as the JSON, for a person.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Summary;

/// Lines of planned actions the text summary of a dry run shows before "… and N more".
const TEXT_ACTION_LINES: usize = 30;
/// Namespaces named on one such line before "… and N more".
const TEXT_NAMESPACES_PER_LINE: usize = 8;

impl Summary {
    /// The summary for a person: the outcome, the counts, then registries, credentials, the
    /// planned actions of a dry run and the problems.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let state = match self.exit_code() {
            0 => "converged",
            1 => "NOT converged",
            _ => "stopped, nothing written",
        };
        let dry = match self.dry_run_mode {
            "client" => " (dry run: nothing sent; counts are what would happen)",
            "server" => " (server-side dry run: writes checked by the API server, nothing persisted)",
            _ => "",
        };
        let _ = writeln!(t, "pullsecret-reconciler: {state}{dry} in {} ms", self.duration_ms);
        self.counts_text(&mut t);
        self.sources_text(&mut t);
        if self.dry_run && !self.actions.is_empty() {
            let _ = writeln!(t, "  actions:");
            t.push_str(&self.actions_text());
        }
        self.problems_text(&mut t);
        t
    }

    fn counts_text(&self, t: &mut String) {
        let n = &self.namespaces;
        let _ = writeln!(
            *t,
            "  namespaces:       {} seen, {} selected, {} excluded, {} terminating",
            n.seen, n.selected, n.excluded, n.terminating
        );
        let c = &self.secrets;
        let _ = writeln!(
            *t,
            "  secrets:          {} created, {} updated ({} adopted), {} unchanged, {} deleted, {} kept, {} refused, \
             {} conflicts{}, {} failed",
            c.created,
            c.updated,
            c.adopted,
            c.unchanged,
            c.deleted,
            c.kept,
            c.refused,
            c.conflicts,
            if c.conflicts_accepted > 0 {
                format!(" ({} more accepted by their owners)", c.conflicts_accepted)
            } else {
                String::new()
            },
            c.failed
        );
        let a = &self.service_accounts;
        let _ = writeln!(
            *t,
            "  service accounts: {} patched, {} unchanged, {} missing, {} failed",
            a.patched, a.unchanged, a.missing, a.failed
        );
        let p = &self.pods;
        if !p.is_empty() {
            let _ = writeln!(
                t,
                "  stuck pods:       {} evicted, {} refused, {} not healable",
                p.evicted, p.refused, p.not_healable
            );
        }
        let _ = writeln!(
            *t,
            "  api requests:     {} reads, {} writes",
            self.api_requests.reads, self.api_requests.writes
        );
    }

    /// Registry checks and credential lifetimes.
    fn sources_text(&self, t: &mut String) {
        for r in &self.registries {
            let status = r.status.map(|s| format!(" HTTP {s},")).unwrap_or_default();
            let _ = writeln!(
                t,
                "  registry:         {} ({}): {},{status} {} ms",
                r.server, r.source, r.result, r.latency_ms
            );
        }
        for e in &self.credential_expiry {
            let when = match (&e.expires_at, e.expires_in_secs) {
                (Some(at), Some(left)) => format!("expires {at} (in {}h{:02}m)", left / 3600, left % 3600 / 60),
                _ => "lifetime not given by the plugin".to_owned(),
            };
            let _ = writeln!(t, "  credential:       {} from {}: {when}", e.server, e.provider);
        }
    }

    fn problems_text(&self, t: &mut String) {
        if !self.problems.is_empty() {
            let _ = writeln!(t, "  problems:");
            for p in &self.problems {
                let at = match (p.namespace.is_empty(), p.name.is_empty()) {
                    (true, true) => p.kind.clone(),
                    (true, false) => format!("{} {}", p.kind, p.name),
                    _ => format!("{} {}/{}", p.kind, p.namespace, p.name),
                };
                let _ = writeln!(t, "    - {}: {at}: {}: {}", p.severity, p.reason, p.message);
            }
        }
    }

    /// The actions grouped by what is done to which name, one line a group, capped.
    fn actions_text(&self) -> String {
        let mut groups: BTreeMap<(&str, &str, String, String), Vec<&str>> = BTreeMap::new();
        for a in &self.actions {
            let mut what = a.name.clone();
            if !a.added.is_empty() {
                what.push_str(&format!(" +[{}]", a.added.join(",")));
            }
            if !a.removed.is_empty() {
                what.push_str(&format!(" -[{}]", a.removed.join(",")));
            }
            let why = a.reason.clone().unwrap_or_default();
            groups
                .entry((a.action, a.kind, what, why))
                .or_default()
                .push(&a.namespace);
        }
        let mut t = String::new();
        for (i, ((action, kind, what, why), namespaces)) in groups.iter().enumerate() {
            if i == TEXT_ACTION_LINES {
                let _ = writeln!(
                    t,
                    "    … and {} more lines (PULLSECRET_OUTPUT=json lists every action)",
                    groups.len() - i
                );
                break;
            }
            let shown: Vec<&str> = namespaces.iter().take(TEXT_NAMESPACES_PER_LINE).copied().collect();
            let more = namespaces.len().saturating_sub(TEXT_NAMESPACES_PER_LINE);
            let more = if more > 0 {
                format!(" … and {more} more")
            } else {
                String::new()
            };
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            let place = if shown.iter().all(|n| n.is_empty()) {
                String::new()
            } else {
                format!(" in {} namespace(s): {}{more}", namespaces.len(), shown.join(", "))
            };
            let _ = writeln!(t, "    {action} {kind} {what}{why}{place}");
        }
        if self.actions_omitted > 0 {
            let _ = writeln!(t, "    ({} more actions counted, not listed)", self.actions_omitted);
        }
        t
    }
}
