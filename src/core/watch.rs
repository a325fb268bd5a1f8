//! The watch window's state (pure, no I/O): watch events, reduced to the model's states, keep a
//! compact copy of what the cluster holds; each change names the namespaces it touched, and the
//! window plans just those with the same planner, additive only: nothing is deleted or unlisted
//! inside a window (prune's reference check belongs to the next run's full pass).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::core::model::{
    Action, Credential, Heal, NamespaceState, Observed, Op, Plan, Pods, Policy, SecretState, ServiceAccountState,
    StuckPod,
};
use crate::core::plan;

type Key = (String, String);

/// One watch event of one kind, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// Added or modified.
    Applied(T),
    Deleted(T),
    /// The watch's whole view of its scope (its first list, or a relist after 410 Gone): what is
    /// not in it is gone.
    Listed(Vec<T>),
}

/// A Pending Pod as the heal watch sees it: stuck on an image pull, or not (any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPod {
    pub namespace: String,
    pub name: String,
    pub stuck: Option<StuckPod>,
}

/// Which ServiceAccounts (or Secrets) one watch covers: one name, or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Named(String),
    All,
}

impl Scope {
    fn covers(&self, name: &str) -> bool {
        match self {
            Scope::Named(n) => n == name,
            Scope::All => true,
        }
    }
}

/// What a watch reports, reduced to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Namespace(Event<NamespaceState>),
    /// Secrets of one managed name, in any namespace.
    Secret(Scope, Event<SecretState>),
    ServiceAccount(Scope, Event<ServiceAccountState>),
    Pod(Event<PendingPod>),
    /// A source Secret changed (rotated, replaced or deleted): the credentials are read again.
    Source,
}

impl Change {
    /// The kind, for the summary's per-kind event counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Namespace(_) => "namespaces",
            Change::Secret(..) => "secrets",
            Change::ServiceAccount(..) => "service_accounts",
            Change::Pod(_) => "pods",
            Change::Source => "source",
        }
    }
}

/// Which namespaces a change asks to plan again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Touched(pub BTreeSet<String>);

/// What the window knows of the cluster: the full pass's observed state, kept current by the
/// watches. Only the compact states, never whole objects.
#[derive(Debug, Clone, Default)]
pub struct Store {
    namespaces: BTreeMap<String, NamespaceState>,
    secrets: BTreeMap<Key, SecretState>,
    service_accounts: BTreeMap<Key, ServiceAccountState>,
    stuck: BTreeMap<Key, StuckPod>,
    /// The rest of the full pass's observation (inventory, unlistable names, how listed).
    base: Observed,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

/// Replaces the entries of `map` that `in_scope` selects with `items`; the namespaces of every
/// entry added, changed or removed.
fn replace<T: PartialEq>(
    map: &mut BTreeMap<Key, T>,
    items: Vec<(Key, T)>,
    in_scope: impl Fn(&Key) -> bool,
) -> BTreeSet<String> {
    let mut touched = BTreeSet::new();
    let mut fresh: BTreeMap<Key, T> = items.into_iter().collect();
    map.retain(|k, v| {
        if !in_scope(k) {
            return true;
        }
        match fresh.remove(k) {
            Some(new) => {
                if new != *v {
                    touched.insert(k.0.clone());
                    *v = new;
                }
                true
            }
            None => {
                touched.insert(k.0.clone());
                false
            }
        }
    });
    for (k, v) in fresh {
        touched.insert(k.0.clone());
        map.insert(k, v);
    }
    touched
}

/// The entries of `map` in `namespaces`.
fn within<T: Clone>(map: &BTreeMap<Key, T>, namespaces: &BTreeSet<String>) -> Vec<T> {
    map.iter()
        .filter(|(k, _)| namespaces.contains(&k.0))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Inserts or replaces; the namespace when something changed.
fn upsert<T: PartialEq>(map: &mut BTreeMap<Key, T>, k: Key, v: T) -> Option<String> {
    if map.get(&k) == Some(&v) {
        return None;
    }
    let ns = k.0.clone();
    map.insert(k, v);
    Some(ns)
}

impl Store {
    /// The window's starting point: what the full pass observed.
    pub fn new(observed: Observed) -> Store {
        let mut base = observed;
        let namespaces = std::mem::take(&mut base.namespaces)
            .into_iter()
            .map(|n| (n.name.clone(), n))
            .collect();
        let secrets = std::mem::take(&mut base.secrets)
            .into_iter()
            .map(|s| (key(&s.namespace, &s.name), s))
            .collect();
        let service_accounts = std::mem::take(&mut base.service_accounts)
            .into_iter()
            .map(|s| (key(&s.namespace, &s.name), s))
            .collect();
        let stuck = std::mem::take(&mut base.stuck)
            .into_iter()
            .map(|p| (key(&p.namespace, &p.name), p))
            .collect();
        base.pods = Pods::NotRead;
        Store {
            namespaces,
            secrets,
            service_accounts,
            stuck,
            base,
        }
    }

    /// Every namespace the window knows.
    pub fn namespace_names(&self) -> BTreeSet<String> {
        self.namespaces.keys().cloned().collect()
    }

    /// Applies one change; the namespaces to plan again. A namespace or ServiceAccount that goes
    /// away touches nothing (nothing is pruned inside a window); a copy that goes away does
    /// (it is restored if still wanted).
    pub fn apply(&mut self, change: Change) -> Touched {
        let mut touched = BTreeSet::new();
        match change {
            Change::Namespace(Event::Applied(n)) => {
                let k = n.name.clone();
                if self.namespaces.get(&k) != Some(&n) {
                    touched.insert(k.clone());
                    self.namespaces.insert(k, n);
                }
            }
            Change::Namespace(Event::Deleted(n)) => {
                self.namespaces.remove(&n.name);
            }
            Change::Namespace(Event::Listed(all)) => {
                let fresh: BTreeMap<String, NamespaceState> = all.into_iter().map(|n| (n.name.clone(), n)).collect();
                for (k, n) in &fresh {
                    if self.namespaces.get(k) != Some(n) {
                        touched.insert(k.clone());
                    }
                }
                self.namespaces = fresh;
            }
            Change::Secret(_, Event::Applied(s)) => {
                touched.extend(upsert(&mut self.secrets, key(&s.namespace, &s.name), s))
            }
            Change::Secret(_, Event::Deleted(s)) => {
                if self.secrets.remove(&key(&s.namespace, &s.name)).is_some() {
                    touched.insert(s.namespace);
                }
            }
            Change::Secret(scope, Event::Listed(all)) => {
                let items = all.into_iter().map(|s| (key(&s.namespace, &s.name), s)).collect();
                touched = replace(&mut self.secrets, items, |k| scope.covers(&k.1));
            }
            Change::ServiceAccount(_, Event::Applied(sa)) => {
                touched.extend(upsert(&mut self.service_accounts, key(&sa.namespace, &sa.name), sa))
            }
            Change::ServiceAccount(_, Event::Deleted(sa)) => {
                self.service_accounts.remove(&key(&sa.namespace, &sa.name));
            }
            Change::ServiceAccount(scope, Event::Listed(all)) => {
                let items = all.into_iter().map(|s| (key(&s.namespace, &s.name), s)).collect();
                touched = replace(&mut self.service_accounts, items, |k| scope.covers(&k.1));
            }
            Change::Pod(Event::Applied(p)) => match p.stuck {
                Some(stuck) => touched.extend(upsert(&mut self.stuck, key(&p.namespace, &p.name), stuck)),
                None => {
                    self.stuck.remove(&key(&p.namespace, &p.name));
                }
            },
            Change::Pod(Event::Deleted(p)) => {
                self.stuck.remove(&key(&p.namespace, &p.name));
            }
            Change::Pod(Event::Listed(all)) => {
                let items = all
                    .into_iter()
                    .filter_map(|p| p.stuck.map(|s| (key(&p.namespace, &p.name), s)))
                    .collect();
                touched = replace(&mut self.stuck, items, |_| true);
            }
            // The caller reads the credentials again and decides.
            Change::Source => {}
        }
        Touched(touched)
    }

    /// Records a write this window made, before its watch event arrives: the next plan must not
    /// make it again.
    pub fn wrote(&mut self, action: &Action, credentials: &[Credential]) {
        match &action.op {
            Op::CreateSecret { credential } | Op::UpdateSecret { credential, .. } => {
                let Some(c) = credentials.get(*credential) else { return };
                let k = key(&action.namespace, &action.name);
                let previous = self.secrets.get(&k);
                let written = SecretState {
                    namespace: action.namespace.clone(),
                    name: action.name.clone(),
                    // Unknown until the watch says; an update before then is unguarded by it.
                    resource_version: previous.map(|s| s.resource_version.clone()).unwrap_or_default(),
                    uid: previous.map(|s| s.uid.clone()).unwrap_or_default(),
                    type_: crate::core::DOCKERCONFIGJSON_TYPE.to_owned(),
                    ours: true,
                    patcher: false,
                    conflict_accepted: false,
                    keep: previous.is_some_and(|s| s.keep),
                    installation: Some(self.base.installation.clone()).filter(|i| !i.is_empty()),
                    source_annotation: Some(c.origin.clone()),
                    data: Some(c.data.clone()),
                    managers: vec![],
                };
                self.secrets.insert(k, written);
            }
            Op::PatchServiceAccount { list, recorded, .. } => {
                if let Some(sa) = self.service_accounts.get_mut(&key(&action.namespace, &action.name)) {
                    sa.pull_secrets = list.clone();
                    sa.recorded = recorded.clone();
                }
            }
            Op::EditInventory { names, .. } => {
                self.base.inventory.names = names.clone();
                self.base.inventory.resource_version = None;
            }
            Op::Evict { .. } => {
                self.stuck.remove(&key(&action.namespace, &action.name));
            }
            _ => {}
        }
    }

    /// The names the inventory holds (those the full pass recorded included).
    pub fn inventory_names(&self) -> &[String] {
        &self.base.inventory.names
    }

    /// The observed state of `namespaces` only, for a plan of just those.
    pub fn observed_in(&self, namespaces: &BTreeSet<String>) -> Observed {
        let mut o = self.base.clone();
        o.namespaces = namespaces
            .iter()
            .filter_map(|n| self.namespaces.get(n).cloned())
            .collect();
        o.secrets = within(&self.secrets, namespaces);
        o.service_accounts = within(&self.service_accounts, namespaces);
        o.stuck = within(&self.stuck, namespaces);
        o
    }
}

/// The window's plan for `namespaces`: the run's policy without prune (deletes and unlisting wait
/// for the next full pass), healing within what is left of the run's eviction budget.
pub fn plan_window(
    policy: &Policy,
    credentials: &[Credential],
    store: &Store,
    namespaces: &BTreeSet<String>,
    evictions_left: Option<usize>,
) -> Plan {
    let mut policy = policy.clone();
    policy.prune = false;
    match evictions_left {
        Some(0) => policy.heal = Heal::Off,
        Some(n) => policy.heal_limit = n,
        None => {}
    }
    plan::plan(&policy, credentials, &store.observed_in(namespaces))
}

/// How many times the window may write one object before it stops answering it: something else
/// keeps undoing our write (a GitOps tool applying a list without our entry, a controller
/// rewriting the copy), and answering each time would make the two fight.
pub const WRITES_PER_OBJECT: usize = 3;

/// Writes per object in this window, and the objects left alone for the rest of it.
#[derive(Debug, Default)]
pub struct Contest {
    writes: BTreeMap<(&'static str, String, String), usize>,
    /// Namespaces not planned again in this window, with the object that was contested.
    pub left_alone: BTreeMap<String, (&'static str, String)>,
}

impl Contest {
    /// Counts a done write; true when the object has now been written too often.
    pub fn count(&mut self, action: &Action) -> bool {
        let n = self
            .writes
            .entry((action.kind.as_str(), action.namespace.clone(), action.name.clone()))
            .or_default();
        *n += 1;
        if *n >= WRITES_PER_OBJECT && !action.namespace.is_empty() {
            self.left_alone
                .entry(action.namespace.clone())
                .or_insert((action.kind.as_str(), action.name.clone()));
            return true;
        }
        false
    }
}

/// The window in the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    pub window_ms: u64,
    /// Events seen per kind (`namespaces`, `secrets`, `service_accounts`, `pods`, `source`).
    pub events: BTreeMap<&'static str, u64>,
    /// Plans made and applied in the window (a burst of events is one reaction).
    pub reactions: u64,
    /// Lists made again because a watch's resourceVersion was compacted (410 Gone).
    pub relists: u64,
    /// Event received -> write acknowledged, over every write the window made.
    pub latency_ms: Latency,
    /// `window`, `signal`, `lease` or `error`.
    pub ended_by: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub max: u64,
}

impl Latency {
    /// The median (lower) and the maximum; zeros for no samples.
    pub fn of(samples: &[u64]) -> Latency {
        let mut s = samples.to_vec();
        s.sort_unstable();
        match s.len() {
            0 => Latency::default(),
            n => Latency {
                p50: s[(n - 1) / 2],
                max: s[n - 1],
            },
        }
    }
}

#[cfg(test)]
mod tests;
