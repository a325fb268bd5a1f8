//! Running the real reconciler binary with a clean environment, and reading its JSON summary.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The reconciler binary: Cargo's for integration tests, the release build for the benchmark.
pub fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_pullsecret-reconciler") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/pullsecret-reconciler"),
    }
}

/// The outcome of one reconciler process.
#[derive(Debug)]
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    /// The JSON summary (every helper run uses `PULLSECRET_OUTPUT=json`).
    pub fn summary(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn count(&self, group: &str, key: &str) -> u64 {
        self.summary()[group][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {group}.{key} in {}", self.stdout))
    }

    pub fn writes(&self) -> u64 {
        self.count("api_requests", "writes")
    }

    pub fn problems(&self) -> Vec<Value> {
        self.summary()["problems"].as_array().cloned().unwrap_or_default()
    }
}

/// The binary with a clean environment: only PATH, HOME, KUBECONFIG and `vars`.
pub fn command(kubeconfig: &Path, vars: &[(String, String)], args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .args(args);
    for (k, v) in vars {
        if !v.is_empty() || k.starts_with("PULLSECRET_") {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Runs the binary with a clean environment: only PATH, HOME, KUBECONFIG and `vars`.
pub async fn run_binary(kubeconfig: &Path, vars: &[(String, String)]) -> RunResult {
    run_binary_args(kubeconfig, vars, &[]).await
}

pub async fn run_binary_args(kubeconfig: &Path, vars: &[(String, String)], args: &[&str]) -> RunResult {
    let mut cmd = command(kubeconfig, vars, args);
    let out = cmd.output().await.unwrap();
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The standard output of a command that must have succeeded; else fails naming `what` with both
/// outputs.
pub fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
