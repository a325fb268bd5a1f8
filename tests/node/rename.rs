//! A rename and a rotation under running workloads, with the kubelet's credential checks for
//! cached images on (KEP-2535, on by default from v1.35): container restarts on the cached
//! image, a scale-up and a rollout restart never fail a pull, before, during or after the old
//! copies are pruned; a rotated password updates the copies in place and keeps Pods pulling.

use k8s_openapi::api::core::v1::Pod;

use crate::support::TestEnv;
use crate::support::node::{self, PRIVILEGED};
use crate::support::registry::Registry;

fn kubectl(env: &TestEnv, args: &[&str]) {
    let out = env.cp.kubectl().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the app container of `pod` and waits until the kubelet has it running again.
async fn crash_and_restart(env: &TestEnv, ns: &str, pod: &Pod) {
    let name = pod.metadata.name.clone().unwrap();
    let before = node::container_status(pod, "app").unwrap().restart_count;
    env.cp.kill_container(pod, "app");
    let api: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), ns);
    node::wait_for(&format!("{ns}/{name} to restart"), 120, || async {
        let p = api.get(&name).await.unwrap();
        let c = node::container_status(&p, "app").cloned().unwrap();
        let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
        match node::pull(&p) {
            node::Pull::Failed(m) => panic!("{ns}/{name} failed its pull on restart: {m}"),
            _ if c.restart_count > before && running => Ok(()),
            other => Err(format!("restarts {} {other:?}", c.restart_count)),
        }
    })
    .await;
}

async fn no_failed_pulls(env: &TestEnv, ns: &str, when: &str) {
    let failures = node::pull_failures(&env.client, ns).await;
    assert!(failures.is_empty(), "{when}: the kubelet failed pulls: {failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_under_running_workloads_never_fails_a_pull() {
    let cp = node::shared();
    let env = TestEnv::on(cp, "rn").await;
    let registry = Registry::start("ci-bot", "fake-rename-password");
    cp.trust(&registry);
    let image = registry.push_app("team/app", "1");
    // Names of this test's own: another test's run would prune copies of a shared name.
    env.put_dockerconfig(&env.home, "rn-regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[PRIVILEGED], &[]).await;
    let old = [("PULLSECRET_SOURCE_SECRETS", "rn-regcred")];
    let renamed = [("PULLSECRET_SOURCE_SECRETS", "rn-regcred=rn-regcred-v2")];
    env.converge_twice(&env.kubeconfig.clone(), &old).await;
    cp.apply_yaml(&node::deployment(&ns, "web", &image, 1).to_string());
    let pods = node::wait_running(&env.client, &ns, "app=web", 1).await;
    assert_eq!(node::pod_pull_secrets(&pods[0]), ["rn-regcred"]);

    // The rename: the new copy and the ServiceAccount entry; the old copy is kept while the
    // running Pod names it.
    let run = env.run(&renamed).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        env.secret(&ns, "rn-regcred").await.is_some(),
        "kept while a Pod names it"
    );
    assert_eq!(env.pull_secrets(&ns, "default").await, ["rn-regcred-v2"]);
    // A crash restarts the container on the cached image: the kubelet re-checks its credential.
    crash_and_restart(&env, &ns, &pods[0]).await;
    // A scale-up: the new Pod names regcred-v2 and uses the cached image.
    kubectl(&env, &["-n", &ns, "scale", "deployment/web", "--replicas=2"]);
    let pods = node::wait_running(&env.client, &ns, "app=web", 2).await;
    assert!(pods.iter().any(|p| node::pod_pull_secrets(p) == ["rn-regcred-v2"]));
    // A rollout restart: every Pod now names regcred-v2.
    kubectl(&env, &["-n", &ns, "rollout", "restart", "deployment/web"]);
    let pods = node::wait_for("the rollout to finish", 180, || async {
        let pods = node::pods(&env.client, &ns, "app=web").await;
        let done = pods.len() == 2
            && pods.iter().all(|p| {
                node::pod_pull_secrets(p) == ["rn-regcred-v2"]
                    && p.metadata.deletion_timestamp.is_none()
                    && node::pull(p) == node::Pull::Pulled
            });
        if done {
            Ok(pods)
        } else {
            Err(format!("{} pods", pods.len()))
        }
    })
    .await;
    no_failed_pulls(&env, &ns, "during the rename").await;

    // Nothing names the old copy any more: the next run prunes it, and Pods keep pulling.
    let run = env.run(&renamed).await;
    assert_eq!((run.code, run.count("secrets", "deleted")), (0, 1), "{run:?}");
    assert!(env.secret(&ns, "rn-regcred").await.is_none());
    crash_and_restart(&env, &ns, &pods[0]).await;
    kubectl(&env, &["-n", &ns, "scale", "deployment/web", "--replicas=3"]);
    node::wait_running(&env.client, &ns, "app=web", 3).await;
    no_failed_pulls(&env, &ns, "after the prune").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_updates_the_copies_in_place_and_pods_keep_pulling() {
    let cp = node::shared();
    let env = TestEnv::on(cp, "rt").await;
    let mut registry = Registry::start("ci-bot", "fake-old-password");
    cp.trust(&registry);
    let image = registry.push_app("team/app", "1");
    env.put_dockerconfig(&env.home, "rt-regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
    let ns = env.name("a");
    env.create_namespace(&ns, &[PRIVILEGED], &[]).await;
    let vars = [("PULLSECRET_SOURCE_SECRETS", "rt-regcred")];
    env.converge_twice(&env.kubeconfig.clone(), &vars).await;
    cp.apply_yaml(&node::deployment(&ns, "web", &image, 1).to_string());
    let pods = node::wait_running(&env.client, &ns, "app=web", 1).await;
    let uid = env.secret(&ns, "rt-regcred").await.unwrap().metadata.uid;

    // The registry takes the new password only; the source Secret follows; one run updates.
    registry.set_password("fake-new-password");
    assert_eq!(registry.login_status(Some(("ci-bot", "fake-old-password"))), 401);
    env.put_dockerconfig(&env.home, "rt-regcred", registry.dockerconfig().as_bytes(), &[])
        .await;
    let run = env.run(&vars).await;
    assert_eq!((run.code, run.count("secrets", "updated")), (0, 1), "{run:?}");
    let copy = env.secret(&ns, "rt-regcred").await.unwrap();
    assert_eq!(copy.metadata.uid, uid, "updated in place, never recreated");

    crash_and_restart(&env, &ns, &pods[0]).await;
    kubectl(&env, &["-n", &ns, "scale", "deployment/web", "--replicas=2"]);
    node::wait_running(&env.client, &ns, "app=web", 2).await;
    // A new image: the kubelet must pull it with the new password.
    let image2 = registry.push_app("team/app", "2");
    kubectl(
        &env,
        &["-n", &ns, "set", "image", "deployment/web", &format!("app={image2}")],
    );
    let pods = node::wait_for("the new image to run", 180, || async {
        let pods = node::pods(&env.client, &ns, "app=web").await;
        let spec_image = |p: &Pod| p.spec.as_ref().unwrap().containers[0].image.clone();
        let done = pods.len() == 2
            && pods
                .iter()
                .all(|p| spec_image(p).as_deref() == Some(image2.as_str()) && node::pull(p) == node::Pull::Pulled);
        if done {
            Ok(pods)
        } else {
            Err(format!("{} pods", pods.len()))
        }
    })
    .await;
    node::assert_pulled(&env.client, &pods).await;
    no_failed_pulls(&env, &ns, "across the rotation").await;
}
