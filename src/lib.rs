//! pullsecret-reconciler: one stateless run converges registry pull Secrets and ServiceAccount
//! `imagePullSecrets` in every selected namespace: observe -> plan -> apply -> report.
//!
//! Layers, a DAG checked by `tests/architecture.rs`: `core` (pure) under everything; `config`
//! (the settings); `sources` and `cluster` (I/O, beside each other) with `apply` (the runner);
//! `explain` and `run` over those; `cli` (argv) on top. `docs/development/architecture.md` draws it
//! and says what each owns.

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod core;
pub mod explain;
pub mod run;
pub mod sources;

pub use config::Config;
pub use core::summary::Summary;
pub use run::{push_metrics, run};
