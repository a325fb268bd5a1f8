//! I/O: one run at a time. A run holds the `coordination.k8s.io` Lease `pullsecret-reconciler`
//! in the tool's namespace while it writes, renewed in the background; a Lease whose holder
//! stopped renewing is taken over once it expires. A run that cannot get it within a bounded wait
//! writes nothing and names the holder. Dry runs persist nothing and take no Lease.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::core::FIELD_MANAGER;

pub const LEASE_NAME: &str = "pullsecret-reconciler";
/// A holder that has not renewed for this long is gone (it renews every third of it).
pub const LEASE_SECONDS: i32 = 15;
/// The most a run waits for another run's Lease (at most half the run's deadline): longer than a
/// Lease lasts, so the Lease of a run that died (killed, or cut off from the API server before it
/// could release) expires within the wait and is taken over.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

pub enum Acquired {
    Held(Box<Held>),
    /// Another run holds it: its identity.
    Busy(String),
}

/// The Lease this run holds; renewed until released.
pub struct Held {
    api: Api<Lease>,
    identity: String,
    renewer: JoinHandle<()>,
}

/// This process, as a Lease holder: the host (the Pod's name in a cluster) and the process id.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pullsecret-reconciler".into());
    format!("{host}/{}", std::process::id())
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Judges another holder's Lease the way client-go's leader election does: by how long *this
/// process* has seen the record unchanged, never by the holder's timestamps (another machine's
/// clock, possibly far ahead or behind). A record first seen counts as fresh; one unchanged for
/// its `leaseDurationSeconds` on our monotonic clock has expired. A released Lease (no holder) is
/// free at once.
#[derive(Debug, Default)]
struct Observer {
    /// The record last seen (its resourceVersion: any renewal changes it) and since when.
    seen: Option<(String, tokio::time::Instant)>,
}

impl Observer {
    fn expired(&mut self, lease: &Lease, now: tokio::time::Instant) -> bool {
        let Some(spec) = &lease.spec else { return true };
        if spec.holder_identity.as_deref().unwrap_or_default().is_empty() {
            return true;
        }
        let record = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = u64::try_from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS)).unwrap_or(0);
        match &self.seen {
            Some((seen, since)) if *seen == record => now.duration_since(*since) >= Duration::from_secs(duration),
            _ => {
                self.seen = Some((record, now));
                false
            }
        }
    }
}

fn claim(identity: &str, transitions: i32) -> serde_json::Value {
    let t = now();
    json!({
        "holderIdentity": identity,
        "leaseDurationSeconds": LEASE_SECONDS,
        "acquireTime": t,
        "renewTime": t,
        "leaseTransitions": transitions,
    })
}

/// Takes the Lease, waiting up to `wait` for another holder to finish or expire.
pub async fn acquire(client: &Client, namespace: &str, identity: &str, wait: Duration) -> Result<Acquired> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let until = tokio::time::Instant::now() + wait;
    let context = || format!("taking the Lease {namespace}/{LEASE_NAME} (one run at a time)");
    let mut observer = Observer::default();
    loop {
        let holder = match api.get_opt(LEASE_NAME).await.with_context(context)? {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": { "name": LEASE_NAME, "namespace": namespace },
                    "spec": claim(identity, 0),
                }))
                .context("building the Lease")?;
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                match api.create(&params, &lease).await {
                    Ok(l) => return Ok(Acquired::Held(Box::new(Held::start(api, identity, l)))),
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(e).with_context(context),
                }
            }
            Some(lease) if observer.expired(&lease, tokio::time::Instant::now()) => {
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0) + 1;
                let body = json!({
                    "metadata": { "resourceVersion": lease.metadata.resource_version },
                    "spec": claim(identity, transitions),
                });
                match api.patch(LEASE_NAME, &patch_params(), &Patch::Merge(body)).await {
                    Ok(l) => return Ok(Acquired::Held(Box::new(Held::start(api, identity, l)))),
                    // Someone else took it first: look again.
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(e).with_context(context),
                }
            }
            Some(lease) => lease.spec.and_then(|s| s.holder_identity).unwrap_or_default(),
        };
        if tokio::time::Instant::now() >= until {
            return Ok(Acquired::Busy(holder));
        }
        tracing::info!(holder = %holder, "another run holds the Lease; waiting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// A renewal must succeed within this long of the last one, or the run stops writing: well
/// before the Lease could expire in another run's eyes.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Who holds `lease` now.
fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
}

/// Keeps the Lease: an update every third of its duration, guarded by the resourceVersion last
/// seen. A conflict means someone else wrote it: still ours, renew from the fresh version; another
/// holder, or no successful renewal for [`RENEW_DEADLINE`], stops every write at once.
async fn renew(api: Api<Lease>, me: String, mut resource_version: Option<String>) {
    let every = Duration::from_secs(u64::try_from(LEASE_SECONDS / 3).unwrap_or(5));
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let body = json!({
            "metadata": { "resourceVersion": resource_version },
            "spec": { "holderIdentity": me, "renewTime": now() },
        });
        match api.patch(LEASE_NAME, &patch_params(), &Patch::Merge(body)).await {
            Ok(l) => {
                resource_version = l.metadata.resource_version;
                renewed = tokio::time::Instant::now();
            }
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(LEASE_NAME).await {
                Ok(Some(l)) if holder(&l) == Some(me.as_str()) => resource_version = l.metadata.resource_version,
                Ok(l) => {
                    let other = l.as_ref().and_then(holder).unwrap_or("nobody").to_owned();
                    tracing::error!(holder = %other, "the Lease was taken over: no write starts any more");
                    crate::apply::stop_for(crate::apply::Stop::LeaseLost);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "reading the Lease after a conflict failed"),
            },
            Err(e) => tracing::warn!(error = %e, "renewing the Lease failed"),
        }
        if renewed.elapsed() >= RENEW_DEADLINE {
            tracing::error!(
                seconds = RENEW_DEADLINE.as_secs(),
                "the Lease could not be renewed in time: no write starts any more"
            );
            crate::apply::stop_for(crate::apply::Stop::LeaseLost);
            return;
        }
    }
}

impl Held {
    fn start(api: Api<Lease>, identity: &str, lease: Lease) -> Held {
        let renewer = tokio::spawn(renew(api.clone(), identity.to_owned(), lease.metadata.resource_version));
        Held {
            api,
            identity: identity.to_owned(),
            renewer,
        }
    }

    /// Gives the Lease up, so the next run need not wait for it to expire. Only while it is
    /// still ours: a Lease taken over meanwhile is left to its new holder.
    pub async fn release(self) {
        self.renewer.abort();
        let current = match self.api.get_opt(LEASE_NAME).await {
            Ok(Some(l)) => l,
            _ => return,
        };
        let ours = current.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.identity.as_str());
        if !ours {
            return;
        }
        let body = json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "holderIdentity": null, "renewTime": now() },
        });
        if let Err(e) = self.api.patch(LEASE_NAME, &patch_params(), &Patch::Merge(body)).await {
            tracing::warn!(error = %e, "releasing the Lease failed; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Lease as another holder wrote it: `renewed_ago` by *its* clock (negative: ahead of ours).
    fn lease(holder: Option<&str>, renewed_ago: i64, resource_version: &str) -> Lease {
        let t = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago);
        serde_json::from_value(json!({
            "metadata": { "name": LEASE_NAME, "resourceVersion": resource_version },
            "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(t) },
        }))
        .unwrap()
    }

    #[test]
    fn expiry_is_judged_by_how_long_we_saw_the_record_unchanged_not_by_its_timestamps() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs;
        // A holder whose clock is an hour behind, renewing: fresh every time it changes.
        let mut o = Observer::default();
        for (i, rv) in ["1", "2", "3", "4"].iter().enumerate() {
            let at = t0 + s(10 * i as u64);
            assert!(!o.expired(&lease(Some("behind/1"), 3600, rv), at), "renewing: held");
        }
        // A holder whose clock is an hour ahead, gone: expires 15 s after we first saw it.
        let mut o = Observer::default();
        let ahead = lease(Some("ahead/1"), -3600, "9");
        assert!(!o.expired(&ahead, t0), "first seen counts as fresh");
        assert!(!o.expired(&ahead, t0 + s(14)));
        assert!(o.expired(&ahead, t0 + s(15)), "unchanged for its duration");
        // A crashed run's record, however old its timestamp, also waits one duration.
        let mut o = Observer::default();
        assert!(!o.expired(&lease(Some("crashed/1"), 120, "5"), t0));
        assert!(o.expired(&lease(Some("crashed/1"), 120, "5"), t0 + s(15)));
        // Released, or never written: free at once.
        assert!(Observer::default().expired(&lease(None, 1, "6"), t0));
        assert!(Observer::default().expired(&Lease::default(), t0));
    }

    #[test]
    fn no_request_outlives_the_lease() {
        // A write started just before the renewal deadline is abandoned before the Lease could
        // expire in another run's eyes.
        assert!(RENEW_DEADLINE + crate::cluster::client::REQUEST_TIMEOUT <= Duration::from_secs(LEASE_SECONDS as u64));
    }
}
