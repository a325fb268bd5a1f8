//! The credential-provider source against real plugin executables: the test plugin
//! (tests/credential-providers/test-plugin, a script speaking the kubelet's exec protocol) for the
//! success path with two providers and two registries, expiry, every failure class (nothing
//! written, the provider and image named, stderr without its credentials), ServiceAccount tokens
//! checked by the plugin with a TokenReview against the real API server; and the real
//! `ecr-credential-provider`, built from k8s.io/cloud-provider-aws, failing cleanly without cloud
//! credentials.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{TestEnv, secret_data};

const PLUGIN_API: &str = "credentialprovider.kubelet.k8s.io/v1";

/// A folder of plugins named `names`, each a link to the test plugin.
pub fn plugin_dir(env: &TestEnv, names: &[&str]) -> PathBuf {
    let dir = env.cp.kubeconfig.with_file_name(format!("plugins-{}", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/credential-providers/test-plugin");
    for name in names {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&plugin, &link).unwrap();
    }
    dir
}

/// One provider entry of a CredentialProviderConfig.
pub fn provider(name: &str, match_images: &[&str], env: &[(&str, &str)], extra: &str) -> String {
    let images: Vec<String> = match_images.iter().map(|m| format!("{m:?}")).collect();
    let mut s = format!(
        "  - name: {name}\n    matchImages: [{}]\n    defaultCacheDuration: 12h\n    apiVersion: {PLUGIN_API}\n    args: [get-credentials]\n",
        images.join(", ")
    );
    if !env.is_empty() {
        s.push_str("    env:\n");
        for (k, v) in env {
            s.push_str(&format!(
                "      - name: {k}\n        value: {}\n",
                serde_json::to_string(v).unwrap()
            ));
        }
    }
    s.push_str(extra);
    s
}

pub fn config_file(dir: &Path, providers: &[String]) -> PathBuf {
    let path = dir.join("credential-providers.yaml");
    let text = format!(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n{}",
        providers.concat()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn auths(secret: &k8s_openapi::api::core::v1::Secret) -> Value {
    serde_json::from_slice::<Value>(&secret_data(secret)).unwrap()["auths"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_two_registries_are_merged_and_distributed_with_their_expiry() {
    let env = TestEnv::new("cpv1").await;
    let (a, b) = (env.name("a"), env.name("b"));
    env.create_namespace(&a, &[], &[]).await;
    env.create_namespace(&b, &[], &[]).await;
    let dir = plugin_dir(&env, &["acme-provider", "beta-provider"]);
    let record = dir.join("record.jsonl");
    let record_s = record.to_str().unwrap();
    let config = config_file(
        &dir,
        &[
            provider(
                "acme-provider",
                &["registry.acme.test"],
                &[
                    (
                        "PLUGIN_AUTH",
                        r#"{"registry.acme.test": {"username": "acme-bot", "password": "fake-acme-password"}}"#,
                    ),
                    ("PLUGIN_CACHE", "6h"),
                    ("PLUGIN_RECORD", record_s),
                ],
                "",
            ),
            provider(
                "beta-provider",
                &["*.beta.test:5000"],
                &[
                    (
                        "PLUGIN_AUTH",
                        r#"{"*.beta.test:5000": {"username": "beta-bot", "password": "fake-beta-password"}}"#,
                    ),
                    ("PLUGIN_RECORD", record_s),
                ],
                "",
            ),
        ],
    );
    let target = env.name("pull");
    let vars = [
        ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.to_str().unwrap()),
        ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir.to_str().unwrap()),
        (
            "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES",
            "registry.acme.test/team/app:1.0, eu.beta.test:5000/app",
        ),
        ("PULLSECRET_SECRET_NAME", target.as_str()),
    ];
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "created"), 3, "a, b and the source namespace");
    for ns in [&a, &b] {
        let secret = env.secret(ns, &target).await.unwrap();
        let auths = auths(&secret);
        assert_eq!(auths["registry.acme.test"]["username"], "acme-bot");
        assert_eq!(
            auths["registry.acme.test"]["auth"],
            "YWNtZS1ib3Q6ZmFrZS1hY21lLXBhc3N3b3Jk"
        );
        assert_eq!(auths["*.beta.test:5000"]["password"], "fake-beta-password");
        assert_eq!(env.pull_secrets(ns, "default").await, vec![target.clone()]);
        let annotations = secret.metadata.annotations.unwrap_or_default();
        assert!(annotations["pullsecret-reconciler/source"].starts_with("credential-provider:"));
    }
    // What each plugin was asked: its image, the protocol version, the config's args; no token.
    let asked: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0]["image"], "registry.acme.test/team/app:1.0");
    assert_eq!(asked[1]["image"], "eu.beta.test:5000/app");
    assert_eq!(asked[0]["apiVersion"], PLUGIN_API);
    assert_eq!(asked[0]["argv"], serde_json::json!(["get-credentials"]));
    assert_eq!(asked[0]["has_token"], false);

    // Expiry per registry: the answer's cacheDuration, else the provider's default.
    let expiry = run.summary()["credential_expiry"].as_array().cloned().unwrap();
    let left = |server: &str| {
        expiry.iter().find(|e| e["server"] == server).unwrap()["expires_in_secs"]
            .as_u64()
            .unwrap()
    };
    assert!(
        (6 * 3600 - 120..=6 * 3600).contains(&left("registry.acme.test")),
        "{expiry:?}"
    );
    assert!(
        (12 * 3600 - 120..=12 * 3600).contains(&left("*.beta.test:5000")),
        "{expiry:?}"
    );
    assert!(run.stdout.contains("expires_at"), "{}", run.stdout);
    assert!(!run.stdout.contains("fake-acme-password") && !run.stderr.contains("fake-acme-password"));

    // Same answers: nothing to write. A credential about to expire is a warning, not a failure.
    let again = env.run(&vars).await;
    assert_eq!((again.code, again.writes()), (0, 0), "{again:?}");
    let soon = config_file(
        &dir,
        &[provider(
            "acme-provider",
            &["registry.acme.test", "*.beta.test:5000"],
            &[
                (
                    "PLUGIN_AUTH",
                    r#"{"registry.acme.test": {"username": "acme-bot", "password": "fake-rotated"}, "*.beta.test:5000": {"username": "b", "password": "fake-b"}}"#,
                ),
                ("PLUGIN_CACHE", "5m"),
            ],
            "",
        )],
    );
    let soon_vars: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .map(|(k, v)| {
            if k.ends_with("_CONFIG") {
                (k, soon.to_str().unwrap())
            } else {
                (k, v)
            }
        })
        .collect();
    let run = env.run(&soon_vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.count("secrets", "updated"), 3);
    let warnings: Vec<Value> = run.problems();
    assert!(
        warnings
            .iter()
            .all(|p| p["reason"] == "CredentialExpiresSoon" && p["severity"] == "warning"),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // The text summary says when each credential expires and warns.
    let text: Vec<(&str, &str)> = soon_vars
        .iter()
        .copied()
        .chain([("PULLSECRET_OUTPUT", "text")])
        .collect();
    let run = env.run(&text).await;
    assert!(
        run.stdout
            .contains("credential:       registry.acme.test from acme-provider: expires "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("CredentialExpiresSoon"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plugin_failure_stops_the_run_before_any_write() {
    let env = TestEnv::new("cpv2").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    let dir = plugin_dir(&env, &["acme-provider"]);
    // A file that is not executable.
    std::fs::write(dir.join("not-executable"), "#!/bin/sh\n").unwrap();
    let target = env.name("pull");
    let auth = r#"{"registry.acme.test": {"username": "acme-bot", "password": "fake-acme-password"}}"#;
    let image = "registry.acme.test/app";
    // (provider name, its matchImages pattern, the test plugin's settings, the expected error)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 9] = [
        ("missing-provider", "registry.acme.test", vec![], "no plugin binary at"),
        (
            "not-executable",
            "registry.acme.test",
            vec![],
            "is not an executable file",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![("PLUGIN_MODE", "fail")],
            "the plugin exited with status 1",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![("PLUGIN_MODE", "sleep")],
            "did not answer within",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![("PLUGIN_MODE", "badjson"), ("PLUGIN_AUTH", auth)],
            "not a valid CredentialProviderResponse",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![("PLUGIN_MODE", "wrongversion"), ("PLUGIN_AUTH", auth)],
            "the answer has apiVersion",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![("PLUGIN_MODE", "empty")],
            "the plugin returned no credential",
        ),
        (
            "acme-provider",
            "registry.acme.test",
            vec![(
                "PLUGIN_AUTH",
                r#"{"other.test": {"username": "u", "password": "fake-other"}}"#,
            )],
            "none of which covers the image",
        ),
        (
            "acme-provider",
            "other.acme.test",
            vec![("PLUGIN_AUTH", auth)],
            "no provider in",
        ),
    ];
    let before = env.snapshot().await;
    for (name, pattern, plugin_env, want) in cases {
        let config = config_file(&dir, &[provider(name, &[pattern], &plugin_env, "")]);
        let vars = [
            ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.to_str().unwrap()),
            ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir.to_str().unwrap()),
            ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", image),
            ("PULLSECRET_SECRET_NAME", target.as_str()),
            // The plugin that sleeps is stopped by the run's deadline.
            ("PULLSECRET_TIMEOUT_SECS", "3"),
        ];
        let run = env.run(&vars).await;
        assert_eq!(run.code, 2, "{name} {plugin_env:?}: {run:?}");
        let error = run.summary()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(want), "{name} {plugin_env:?}: {error}");
        if want != "no provider in" {
            assert!(
                error.contains(&format!("credential provider \"{name}\" for image \"{image}\"")),
                "{error}"
            );
        } else {
            assert!(error.contains(image), "{error}");
        }
        for secret in [
            "fake-acme-password",
            "fake-stderr-password",
            "AKIAFAKEFAKEFAKE1234",
            "fake-other",
            "fake-half",
        ] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{secret} leaked: {run:?}"
            );
        }
        if plugin_env.contains(&("PLUGIN_MODE", "fail")) {
            // Its stderr is shown, without what looks like a credential.
            assert!(
                error.contains("[redacted]") && error.contains("rejected by registry.acme.test"),
                "{error}"
            );
        }
    }
    assert_eq!(env.snapshot().await, before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_attribute_providers_get_a_service_account_token_the_api_server_accepts() {
    let env = TestEnv::new("cpv3").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    let account = "puller";
    env.cp.apply_yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {account}\n  namespace: {}\n  annotations:\n    \
         acme.test/role: pull-only\n    acme.test/team: platform\n    unrelated: x\n",
        env.home
    ));
    let dir = plugin_dir(&env, &["acme-provider"]);
    let record = dir.join("record.jsonl");
    let review = format!(
        "{} {} registry.acme.test",
        env.cp.bin.join("kubectl").display(),
        env.cp.kubeconfig.display()
    );
    let attributes = "    tokenAttributes:\n      serviceAccountTokenAudience: registry.acme.test\n      \
                      requireServiceAccount: true\n      requiredServiceAccountAnnotationKeys: [acme.test/role]\n      \
                      optionalServiceAccountAnnotationKeys: [acme.test/team, acme.test/absent]\n      cacheType: ServiceAccount\n";
    let config = config_file(
        &dir,
        &[provider(
            "acme-provider",
            &["registry.acme.test"],
            &[
                (
                    "PLUGIN_AUTH",
                    r#"{"registry.acme.test": {"username": "acme-bot", "password": "fake-acme-password"}}"#,
                ),
                ("PLUGIN_RECORD", record.to_str().unwrap()),
                ("PLUGIN_REVIEW", &review),
            ],
            attributes,
        )],
    );
    let target = env.name("pull");
    let mut vars = vec![
        ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.to_str().unwrap()),
        ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir.to_str().unwrap()),
        ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", "registry.acme.test/app"),
        ("PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT", account),
        ("PULLSECRET_SECRET_NAME", target.as_str()),
    ];
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    let asked: Value = serde_json::from_str(std::fs::read_to_string(&record).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(asked["has_token"], true);
    assert_eq!(asked["review"]["authenticated"], true, "{asked}");
    assert_eq!(
        asked["review"]["username"],
        format!("system:serviceaccount:{}:{account}", env.home)
    );
    assert_eq!(asked["review"]["audiences"], serde_json::json!(["registry.acme.test"]));
    // The required and the present optional annotations, nothing else.
    assert_eq!(
        asked["annotations"],
        serde_json::json!({"acme.test/role": "pull-only", "acme.test/team": "platform"})
    );
    assert!(env.secret(&env.name("a"), &target).await.is_some());

    // A ServiceAccount without the required annotation: exit 2, named.
    let other = "no-role";
    env.cp.apply_yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {other}\n  namespace: {}\n",
        env.home
    ));
    vars.retain(|(k, _)| !k.ends_with("SERVICE_ACCOUNT"));
    vars.push(("PULLSECRET_CREDENTIAL_PROVIDER_SERVICE_ACCOUNT", other));
    let run = env.run(&vars).await;
    assert_eq!(run.code, 2, "{run:?}");
    let error = run.summary()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("lacks the annotation \"acme.test/role\""), "{error}");
    assert!(error.contains("credential provider \"acme-provider\""), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_ecr_plugin_without_cloud_credentials_fails_the_run_cleanly() {
    let env = TestEnv::new("cpv4").await;
    env.create_namespace(&env.name("a"), &[], &[]).await;
    // The real plugin, built once from k8s.io/cloud-provider-aws (tests/tools).
    let binary = crate::support::tools::tool("ecr-credential-provider");
    let dir = binary.parent().unwrap();
    let config_dir = env.cp.kubeconfig.with_file_name(format!("config-{}", env.id));
    std::fs::create_dir_all(&config_dir).unwrap();
    // As a node would configure it; no AWS credentials anywhere, and the instance metadata
    // service is off so the plugin does not wait for one.
    let config = config_file(
        &config_dir,
        &[provider(
            "ecr-credential-provider",
            &["*.dkr.ecr.*.amazonaws.com"],
            &[
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ],
            "",
        )],
    );
    let before = env.snapshot().await;
    let run = env
        .run(&[
            ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.to_str().unwrap()),
            ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir.to_str().unwrap()),
            (
                "PULLSECRET_CREDENTIAL_PROVIDER_IMAGES",
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com/app:1",
            ),
            ("PULLSECRET_SECRET_NAME", "ecr-pull"),
        ])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    let error = run.summary()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("credential provider \"ecr-credential-provider\" for image \"111122223333.dkr.ecr.eu-west-1.amazonaws.com/app:1\": the plugin exited with status 1"),
        "{error}"
    );
    assert!(
        error.contains("GetAuthorizationToken"),
        "the plugin's own reason is shown: {error}"
    );
    assert_eq!(env.snapshot().await, before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_plugin_are_distributed_and_the_copy_logs_in_to_a_real_registry() {
    // Fake test credentials, accepted by the registry's htpasswd.
    let registry = crate::support::registry::Registry::start("ci-bot", "fake-registry-password");
    let env = TestEnv::new("cpv5").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let dir = plugin_dir(&env, &["registry-provider"]);
    let auth =
        serde_json::json!({ registry.host.as_str(): { "username": "ci-bot", "password": "fake-registry-password" } });
    let config = config_file(
        &dir,
        &[provider(
            "registry-provider",
            &[&registry.host],
            &[("PLUGIN_AUTH", &auth.to_string()), ("PLUGIN_CACHE", "1h")],
            "",
        )],
    );
    let image = format!("{}/team/app:1.0", registry.host);
    let target = env.name("pull");
    let run = env
        .run(&[
            ("PULLSECRET_CREDENTIAL_PROVIDER_CONFIG", config.to_str().unwrap()),
            ("PULLSECRET_CREDENTIAL_PROVIDER_BIN_DIR", dir.to_str().unwrap()),
            ("PULLSECRET_CREDENTIAL_PROVIDER_IMAGES", &image),
            ("PULLSECRET_SECRET_NAME", &target),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");

    // The copy in the namespace, read back from the API server, logs in as docker login does:
    // an authenticated GET /v2/ answered 200. A wrong password is refused: the check is real.
    let copy = env.secret(&ns, &target).await.unwrap();
    assert_eq!(copy.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    let entry = &auths(&copy)[registry.host.as_str()];
    let (user, password) = (entry["username"].as_str().unwrap(), entry["password"].as_str().unwrap());
    assert_eq!(registry.login_status(Some((user, password))), 200);
    assert_eq!(registry.login_status(Some((user, "fake-wrong-password"))), 401);
    assert_eq!(registry.login_status(None), 401);
    assert_eq!(env.pull_secrets(&ns, "default").await, vec![target]);
}
