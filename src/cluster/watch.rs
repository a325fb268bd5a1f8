//! I/O: the watch window's watches. One kube `runtime::watcher` per kind and scope (bookmarks
//! on, a closed stream resumed from its last resourceVersion, 410 Gone relisted), each event
//! reduced to the model's states at once and sent, with the time it arrived, to the window.
//! The first view of each watch comes as a streaming list (a watch with initial events), so a
//! window costs watches, not lists; an API server that refuses streaming lists gets one list.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::core::reduce;
use crate::core::watch::{Change, Event, PendingPod, Scope};

/// What one watch reports to the window.
#[derive(Debug)]
pub enum Report {
    /// Boxed: a change carries whole object states, the other reports a few words.
    Change(Box<Change>),
    /// The watch's view was compacted away (410 Gone): it lists again.
    Relist { kind: &'static str },
    /// A failed watch request (kube's watcher retries it with a backoff).
    Failed { kind: &'static str, message: String },
}

/// What the window watches.
#[derive(Debug, Clone)]
pub struct Spec {
    pub namespace_selector: Option<String>,
    /// Managed Secret names, each watched cluster-wide with a name field selector (the RBAC names
    /// them).
    pub secret_names: Vec<String>,
    /// ServiceAccounts: by name (literal names), all, or none.
    pub service_accounts: Vec<Scope>,
    /// Source Secrets: (namespace, names).
    pub sources: Option<(String, Vec<String>)>,
    /// Pending Pods, for healing.
    pub pods: bool,
    /// The server's timeout for one watch request; the watcher then resumes it.
    pub timeout: Duration,
}

pub type Sender = UnboundedSender<(Instant, Report)>;

/// Starts every watch of `spec`; they stop when the returned set is dropped.
pub fn start(client: &Client, spec: &Spec, tx: &Sender) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let timeout = u32::try_from(spec.timeout.as_secs().clamp(10, 290)).unwrap_or(290);
    let base = || watcher::Config::default().timeout(timeout);

    let mut ns_config = base();
    if let Some(sel) = &spec.namespace_selector {
        ns_config = ns_config.labels(sel);
    }
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    set.spawn(pump(
        "namespaces",
        ns_config,
        move |c| watcher::watcher(api.clone(), c).boxed(),
        |m| reduce::namespace(&m.metadata),
        Change::Namespace,
        tx.clone(),
    ));
    for name in &spec.secret_names {
        let api: Api<Secret> = Api::all(client.clone());
        let scope = Scope::Named(name.clone());
        set.spawn(pump(
            "secrets",
            base().fields(&format!("metadata.name={name}")),
            move |c| watcher::watcher(api.clone(), c).boxed(),
            reduce::secret,
            move |e| Change::Secret(scope.clone(), e),
            tx.clone(),
        ));
    }
    for scope in &spec.service_accounts {
        let api: Api<ServiceAccount> = Api::all(client.clone());
        let config = match scope {
            Scope::Named(n) => base().fields(&format!("metadata.name={n}")),
            Scope::All => base(),
        };
        let scope = scope.clone();
        set.spawn(pump(
            "service_accounts",
            config,
            move |c| watcher::watcher(api.clone(), c).boxed(),
            reduce::service_account,
            move |e| Change::ServiceAccount(scope.clone(), e),
            tx.clone(),
        ));
    }
    if let Some((namespace, names)) = &spec.sources {
        for name in names {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            set.spawn(pump(
                "source",
                base().fields(&format!("metadata.name={name}")),
                move |c| watcher::watcher(api.clone(), c).boxed(),
                |_| (),
                |_| Change::Source,
                tx.clone(),
            ));
        }
    }
    if spec.pods {
        let api: Api<Pod> = Api::all(client.clone());
        set.spawn(pump(
            "pods",
            base().fields("status.phase=Pending"),
            move |c| watcher::watcher(api.clone(), c).boxed(),
            pending_pod,
            Change::Pod,
            tx.clone(),
        ));
    }
    set
}

fn pending_pod(p: Pod) -> PendingPod {
    PendingPod {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        stuck: reduce::stuck_pod(p),
    }
}

/// The watcher's retries: quick at first (200 ms, doubling), never more than 4 s apart, so that
/// a watch that cannot be re-established shows as a steady run of failures the window can judge.
struct Retry(Duration);

const FIRST_RETRY: Duration = Duration::from_millis(200);

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(4));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for Retry {
    fn reset(&mut self) {
        self.0 = FIRST_RETRY;
    }
}

/// Whether an error says the API server does not serve streaming lists.
fn streaming_refused(e: &watcher::Error) -> bool {
    let status = match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s)) | watcher::Error::WatchFailed(kube::Error::Api(s)) => {
            s.code
        }
        watcher::Error::WatchError(s) => s.code,
        _ => return false,
    };
    matches!(status, 400 | 422)
}

fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s)) | watcher::Error::WatchFailed(kube::Error::Api(s)) => {
            s.code == 410
        }
        _ => false,
    }
}

/// Runs one watch: its events reduced by `reduce`, wrapped by `wrap` and sent. Every event is
/// reduced as it arrives; a list (first or relist) is gathered as reduced states only.
async fn pump<K, T, S>(
    kind: &'static str,
    config: watcher::Config,
    make: impl Fn(watcher::Config) -> S,
    reduce: impl Fn(K) -> T,
    wrap: impl Fn(Event<T>) -> Change,
    tx: Sender,
) where
    K: Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    S: Stream<Item = Result<WatchEvent<K>, watcher::Error>> + Unpin + Send,
{
    use kube::runtime::WatchStreamExt;
    let mut streaming = true;
    let mut listed_once = false;
    'restart: loop {
        let config = if streaming {
            config.clone().streaming_lists()
        } else {
            config.clone().any_semantic()
        };
        let mut stream = std::pin::pin!(make(config).backoff(Retry(FIRST_RETRY)));
        let mut listing: Option<Vec<T>> = None;
        while let Some(item) = stream.next().await {
            let report = match item {
                Ok(WatchEvent::Init) => {
                    listing = Some(Vec::new());
                    continue;
                }
                Ok(WatchEvent::InitApply(o)) => {
                    listing.get_or_insert_with(Vec::new).push(reduce(o));
                    continue;
                }
                Ok(WatchEvent::InitDone) => {
                    let items = listing.take().unwrap_or_default();
                    if listed_once && tx.send((Instant::now(), Report::Relist { kind })).is_err() {
                        return;
                    }
                    listed_once = true;
                    Report::Change(Box::new(wrap(Event::Listed(items))))
                }
                Ok(WatchEvent::Apply(o)) => Report::Change(Box::new(wrap(Event::Applied(reduce(o))))),
                Ok(WatchEvent::Delete(o)) => Report::Change(Box::new(wrap(Event::Deleted(reduce(o))))),
                Err(e) if streaming && !listed_once && streaming_refused(&e) => {
                    tracing::info!(kind, error = %e, "the API server does not serve streaming lists: listing once instead");
                    streaming = false;
                    continue 'restart;
                }
                Err(e) if is_gone(&e) => {
                    tracing::warn!(
                        kind,
                        "the watch's resourceVersion was compacted (410 Gone): listing again"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "a watch request failed; retrying");
                    Report::Failed {
                        kind,
                        message: e.to_string(),
                    }
                }
            };
            if tx.send((Instant::now(), report)).is_err() {
                return;
            }
        }
        return;
    }
}
