//! End-to-end tests on a real one-node cluster (tests/controlplane/up.sh --node): etcd,
//! kube-apiserver, kube-scheduler, kube-controller-manager, containerd + runc and a kubelet,
//! all on loopback, with a real Distribution registry holding private images. Every test judges
//! by what the kubelet did: Pod status, container states and the kubelet's own Events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod explain;
mod heal;
mod inject;
mod rename;
mod seed;
mod window;
