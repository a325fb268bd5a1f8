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

fn expired(lease: &Lease) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    holder.is_empty() || renewed.0.as_second() + duration < k8s_openapi::jiff::Timestamp::now().as_second()
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
            Some(lease) if expired(&lease) => {
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

    fn lease(holder: Option<&str>, renewed_ago: i64) -> Lease {
        let t = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago);
        serde_json::from_value(json!({
            "metadata": { "name": LEASE_NAME },
            "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(t) },
        }))
        .unwrap()
    }

    #[test]
    fn a_lease_is_free_when_unheld_or_not_renewed_in_time() {
        assert!(!expired(&lease(Some("run-a/1"), 5)), "held and fresh");
        assert!(expired(&lease(Some("run-a/1"), 16)), "its holder stopped renewing");
        assert!(expired(&lease(None, 1)), "released");
        assert!(expired(&Lease::default()), "no spec");
    }
}
