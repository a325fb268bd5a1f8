//! PULLSECRET_VERIFY against a real registry (CNCF Distribution, TLS from a test CA, htpasswd):
//! a correct credential is `ok` and the run converges; a wrong password is `rejected`, the run
//! exits 2 and nothing changes anywhere; an unreachable registry and a certificate the run does
//! not trust warn under `warn` and stop the run under `strict`.

use serde_json::Value;

use crate::support::TestEnv;
use crate::support::registry::Registry;

fn registry_config(host: &str, user: &str, password: &str) -> String {
    serde_json::json!({ "auths": { host: { "username": user, "password": password } } }).to_string()
}

fn registries(run: &crate::support::RunResult) -> Vec<Value> {
    run.summary()["registries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_credential_verifies_and_a_wrong_one_is_never_copied() {
    let registry = Registry::start("ci-bot", "fake-right-password");
    let env = TestEnv::new("vf1").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let target = env.name("pull");
    let ca = registry.ca.to_str().unwrap().to_owned();

    // Right: ok, HTTP 200, and the copy is written.
    let right = registry_config(&registry.host, "ci-bot", "fake-right-password");
    let vars = [
        ("PULLSECRET_DOCKERCONFIGJSON", right.as_str()),
        ("PULLSECRET_SECRET_NAME", target.as_str()),
        ("PULLSECRET_VERIFY", "strict"),
        ("PULLSECRET_REGISTRY_CA_FILE", ca.as_str()),
    ];
    let run = env.run(&vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    let checks = registries(&run);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["server"], registry.host.as_str());
    assert_eq!(checks[0]["source"], "env:PULLSECRET_DOCKERCONFIGJSON");
    assert_eq!(checks[0]["result"], "ok");
    assert_eq!(checks[0]["status"], 200);
    assert!(checks[0]["latency_ms"].is_u64());
    assert!(env.secret(&ns, &target).await.is_some());

    // Wrong password, even under warn: rejected, exit 2, nothing anywhere changes.
    let before = env.snapshot().await;
    let wrong = registry_config(&registry.host, "ci-bot", "fake-typo-password");
    let vars = [
        ("PULLSECRET_DOCKERCONFIGJSON", wrong.as_str()),
        ("PULLSECRET_SECRET_NAME", target.as_str()),
        ("PULLSECRET_VERIFY", "warn"),
        ("PULLSECRET_REGISTRY_CA_FILE", ca.as_str()),
    ];
    let run = env.run(&vars).await;
    assert_eq!(run.code, 2, "{run:?}");
    let checks = registries(&run);
    assert_eq!(checks[0]["result"], "rejected", "{checks:?}");
    assert_eq!(checks[0]["status"], 401);
    let error = run.summary()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(&format!(
            "registry {} (env:PULLSECRET_DOCKERCONFIGJSON) is rejected",
            registry.host
        )),
        "{error}"
    );
    assert!(!run.stdout.contains("fake-typo-password") && !run.stderr.contains("fake-typo-password"));
    assert_eq!(run.writes(), 0, "{run:?}");
    assert_eq!(env.snapshot().await, before, "nothing changed");

    // The same from a source Secret: the Secret is named as the source.
    let src = env.name("regcred");
    env.put_dockerconfig(&env.home, &src, wrong.as_bytes(), &[]).await;
    let run = env
        .run(&[
            ("PULLSECRET_SOURCE_SECRETS", src.as_str()),
            ("PULLSECRET_VERIFY", "warn"),
            ("PULLSECRET_REGISTRY_CA_FILE", ca.as_str()),
        ])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(registries(&run)[0]["source"], format!("secret:{}/{src}", env.home));
    assert!(env.secret(&ns, &src).await.is_none(), "never copied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_untrusted_registries_warn_or_stop_by_mode() {
    let registry = Registry::start("ci-bot", "fake-right-password");
    let env = TestEnv::new("vf2").await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[], &[]).await;
    let target = env.name("pull");
    let closed = format!("127.0.0.1:{}", crate::support::kubeconfig::unused_port());
    let cases = [
        // (auths host, CA file given, expected result, problem reason)
        (closed.clone(), true, "unreachable", "RegistryUnreachable"),
        (registry.host.clone(), false, "tls", "RegistryTLS"),
    ];
    for (host, with_ca, result, reason) in cases {
        let config = registry_config(&host, "ci-bot", "fake-right-password");
        let ca = registry.ca.to_str().unwrap();
        let mut vars = vec![
            ("PULLSECRET_DOCKERCONFIGJSON", config.as_str()),
            ("PULLSECRET_SECRET_NAME", target.as_str()),
            ("PULLSECRET_VERIFY", "strict"),
        ];
        if with_ca {
            vars.push(("PULLSECRET_REGISTRY_CA_FILE", ca));
        }
        // strict: stopped, nothing written.
        let before = env.snapshot().await;
        let run = env.run(&vars).await;
        assert_eq!(run.code, 2, "{result}: {run:?}");
        assert_eq!(registries(&run)[0]["result"], result, "{run:?}");
        assert!(
            run.summary()["error"]
                .as_str()
                .unwrap()
                .contains("PULLSECRET_VERIFY=strict")
        );
        assert_eq!(env.snapshot().await, before, "{result}: nothing written under strict");

        // warn, the default (the variable unset): converges; the registry is named in an info
        // problem (no Event, the exit code unchanged) and one warning log line.
        vars.retain(|(k, _)| *k != "PULLSECRET_VERIFY");
        vars.push(("PULLSECRET_VERIFY", ""));
        let run = env.run(&vars).await;
        assert_eq!(run.code, 0, "{result}: {run:?}");
        assert_eq!(registries(&run)[0]["result"], result);
        let problems = run.problems();
        assert!(
            problems
                .iter()
                .any(|p| p["reason"] == reason && p["severity"] == "info" && p["name"] == host.as_str()),
            "{problems:?}"
        );
        assert_eq!(run.stderr.matches("registry checked").count(), 1, "{}", run.stderr);
        assert!(env.secret(&ns, &target).await.is_some());
        env.delete_secret(&ns, &target).await;
    }
}
