//! Bad input that needs no cluster: configuration errors stop the real binary before it connects
//! to anything. No control plane is started by this test binary: the kubeconfig points at a port
//! nothing listens on, so a run that tried to read or write would fail differently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use support::{RunResult, fake_dockerconfig, run_binary, run_binary_args};

const PASSWORD: &str = "fake-pw-7Hq2Zx";

/// Forbidden strings: the password, the `auth` value, and the base64 of a whole docker config.
fn secrets_in(out: &str) -> Vec<String> {
    let auth = STANDARD.encode(format!("fake-user:{PASSWORD}"));
    let whole = STANDARD.encode(fake_dockerconfig("fake-user", PASSWORD));
    [PASSWORD.to_string(), auth, whole]
        .into_iter()
        .filter(|s| out.contains(s.as_str()))
        .collect()
}

/// A kubeconfig for a server that does not exist (a closed loopback port).
fn nowhere() -> PathBuf {
    let port = support::kubeconfig::unused_port();
    let dir = std::env::temp_dir().join(format!("psr-cli-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    let kc = format!(
        r#"{{"apiVersion":"v1","kind":"Config","current-context":"x",
"clusters":[{{"name":"x","cluster":{{"server":"https://127.0.0.1:{port}"}}}}],
"users":[{{"name":"x","user":{{"token":"not-a-real-token"}}}}],
"contexts":[{{"name":"x","context":{{"cluster":"x","user":"x","namespace":"default"}}}}]}}"#
    );
    std::fs::write(&path, kc).unwrap();
    path
}

async fn run(vars: &[(&str, &str)]) -> RunResult {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_binary(&nowhere(), &vars).await
}

async fn case(vars: &[(&str, &str)], expect: &str) {
    let run = run(vars).await;
    assert_eq!(run.code, 2, "expected exit 2: {run:?}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains(expect), "message should contain {expect:?}:\n{all}");
    assert!(secrets_in(&all).is_empty(), "a credential was printed: {all}");
    assert!(
        !all.contains("127.0.0.1"),
        "a configuration error must stop before any connection: {all}"
    );
}

macro_rules! bad_input {
    ($($name:ident: [$($k:literal => $v:expr),* $(,)?], $expect:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            case(&[$(($k, $v)),*], $expect).await;
        }
    )*};
}

bad_input! {
    unknown_variable: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_NAMESPACE" => "typo"], "PULLSECRET_NAMESPACE";
    malformed_boolean: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_PRUNE" => "perhaps"], "PULLSECRET_PRUNE: expected one of true, false";
    malformed_number: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_CONCURRENCY" => "lots"], "PULLSECRET_CONCURRENCY: expected a whole number";
    malformed_prune_limit: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_PRUNE_LIMIT" => "ten"], "PULLSECRET_PRUNE_LIMIT: expected a whole number";
    malformed_dry_run: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_DRY_RUN" => "servr"], "PULLSECRET_DRY_RUN: expected one of false, true, server";
    out_of_range_timeout: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_TIMEOUT_SECS" => "0"], "PULLSECRET_TIMEOUT_SECS: 0 is out of range";
    malformed_glob: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_NAMESPACES" => "team_[a]"], "PULLSECRET_NAMESPACES: invalid name or glob";
    two_source_modes: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_REGISTRY_USERNAME" => "fake-user", "PULLSECRET_REGISTRY_PASSWORD" => PASSWORD], "more than one credentials source";
    no_source: [], "no credentials source";
    watch_with_dry_run: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_DRY_RUN" => "true", "PULLSECRET_WATCH" => "4m30s"], "PULLSECRET_WATCH=4m30s cannot be combined with PULLSECRET_DRY_RUN";
    malformed_watch: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_WATCH" => "5 minutes"], "PULLSECRET_WATCH: expected a Go duration";
    inline_invalid_json: ["PULLSECRET_DOCKERCONFIGJSON" => "{\"auths\": {\"r\": {\"auth\": \"ZmFrZS11c2VyOmZha2UtcHctN0hxMlp4\"}"], "PULLSECRET_DOCKERCONFIGJSON: not valid JSON";
    partial_registry_settings: ["PULLSECRET_REGISTRY_SERVER" => "registry.example.invalid", "PULLSECRET_REGISTRY_PASSWORD" => PASSWORD], "PULLSECRET_REGISTRY_USERNAME is required";
    unreadable_file: ["PULLSECRET_DOCKERCONFIGJSON_FILE" => "/nonexistent/config.json"], "PULLSECRET_DOCKERCONFIGJSON_FILE (/nonexistent/config.json): cannot read";
    word_in_another_case: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_VERIFY" => "Warn"], "PULLSECRET_VERIFY: expected one of warn, off, strict, got \"Warn\"";
    word_synonym: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_DRY_RUN" => "1"], "PULLSECRET_DRY_RUN: expected one of false, true, server, got \"1\"";
    invalid_output_format: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_OUTPUT" => "yaml"], "PULLSECRET_OUTPUT: expected one of text, json";
    invalid_secret_name: ["PULLSECRET_SOURCE_SECRETS" => "regcred=Bad_Name"], "PULLSECRET_SOURCE_SECRETS: invalid Secret name";
    service_link_variables: ["PULLSECRET_SOURCE_SECRETS" => "regcred", "PULLSECRET_RECONCILER_SERVICE_HOST" => "10.0.0.1"], "enableServiceLinks: false";
}

#[tokio::test]
async fn missing_kubeconfig() {
    let vars = vec![(
        "PULLSECRET_DOCKERCONFIGJSON".to_string(),
        String::from_utf8(fake_dockerconfig("fake-user", PASSWORD)).unwrap(),
    )];
    let run = run_binary(std::path::Path::new("/nonexistent/kubeconfig"), &vars).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("no usable Kubernetes configuration"),
        "{}",
        run.stderr
    );
    assert!(secrets_in(&format!("{}{}", run.stdout, run.stderr)).is_empty());
}

#[tokio::test]
async fn json_output_is_one_object_even_for_a_configuration_error() {
    let run = run(&[
        ("PULLSECRET_PRUNE", "perhaps"),
        ("PULLSECRET_SOURCE_SECRETS", "x"),
        ("PULLSECRET_OUTPUT", "json"),
    ])
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    let s = run.summary();
    assert!(s["error"].as_str().unwrap().contains("PULLSECRET_PRUNE"), "{s}");
    assert_eq!(s["problems"][0]["reason"], "NothingWritten");
}

#[tokio::test]
async fn help_lists_every_variable_with_its_default() {
    let kc = nowhere();
    let help = run_binary_args(&kc, &[], &["--help"]).await;
    assert_eq!(help.code, 0);
    for (name, default, _) in pullsecret_reconciler::config::help::VARIABLES {
        assert!(
            help.stdout.contains(&format!("PULLSECRET_{name}")),
            "--help misses PULLSECRET_{name}"
        );
        if !default.is_empty() {
            assert!(
                help.stdout.contains(&format!("default: {default}")),
                "--help misses the default of {name}"
            );
        }
    }
    assert!(help.stdout.contains("PULLSECRET_PRUNE_LIMIT"));
    let version = run_binary_args(&kc, &[], &["--version"]).await;
    assert_eq!(
        (version.code, version.stdout.trim()),
        (0, concat!("pullsecret-reconciler ", env!("CARGO_PKG_VERSION")))
    );
    let bad = run_binary_args(&kc, &[], &["--dryrun"]).await;
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("unexpected argument '--dryrun'"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--dry-run"),
        "clap suggests the flag: {}",
        bad.stderr
    );
}

#[tokio::test]
async fn explain_questions_that_are_invalid_exit_2_before_connecting() {
    let kubeconfig = nowhere();
    for (args, want) in [
        (vec!["explain"], "give exactly one of POD, --image REF or --stuck"),
        (vec!["explain", "web", "--stuck"], "give exactly one of"),
        (vec!["explain", "--stuck", "-n", "x"], "do not apply"),
        (
            vec!["explain", "web", "-o", "yaml"],
            "invalid value 'yaml' for '--output <OUTPUT>'",
        ),
        (vec!["explain", "Bad_Name", "-n", "x"], "invalid Pod name"),
    ] {
        let run = run_binary_args(&kubeconfig, &[], &args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    // A valid question against a cluster that is not there: also 2 (the question cannot be
    // answered), never a verdict.
    let run = run_binary_args(&kubeconfig, &[], &["explain", "web", "-n", "shop"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let help = run_binary_args(&kubeconfig, &[], &["explain", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("explain --stuck"), "{}", help.stdout);
}
