//! Test support, split by job: the real local control plane (`controlplane`), kubeconfig edits
//! through kube's own `Kubeconfig` type (`kubeconfig`), per-test fixtures on the shared cluster
//! (`fixtures`), running the real binary (`runner`), and a fault-injecting proxy (`proxy`).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod controlplane;
pub mod fixtures;
pub mod kubeconfig;
pub mod node;
pub mod proxy;
pub mod pushgateway;
pub mod registry;
pub mod runner;
pub mod tools;

pub use controlplane::{ControlPlane, client_for};
pub use fixtures::{TEST_LABEL, TestEnv, fake_dockerconfig, is_ours, pull_secret_names, secret_data};
pub use runner::{RunResult, binary, ok, run_binary, run_binary_args};
