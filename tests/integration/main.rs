//! Integration tests against the project's real local control plane (etcd, kube-apiserver,
//! kube-controller-manager), started once for this binary by tests/controlplane/up.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod badinput;
mod chart;
mod controlplane;
mod events;
mod explain;
mod faults;
mod fence;
mod installations;
mod lease;
mod lifecycle;
mod metrics;
mod paging;
mod parity;
mod providers;
mod prune;
mod race;
mod reconcile;
mod shipping;
mod signals;
mod verify;
mod watch;
