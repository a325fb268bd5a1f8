//! pullsecret-reconciler: one stateless run converges registry pull Secrets and ServiceAccount
//! `imagePullSecrets` in every selected namespace: observe -> plan -> apply -> report.
//!
//! Layers, each importing only the ones before it (checked by `tests/architecture.rs`):
//! `core` (pure) -> `sources` -> `apply` -> `cluster` -> `cli` -> `explain` -> `run`.
//! `docs/development/architecture.md` says what each owns.

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod core;
pub mod explain;
pub mod run;
pub mod sources;

pub use cli::config::Config;
pub use core::summary::Summary;
pub use run::{push_metrics, run};
