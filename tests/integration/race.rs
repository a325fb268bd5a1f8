//! A rename while Pods are being created: four writers create Pods (no list of their own, so
//! the API server copies the ServiceAccount's list into each at admission) across the test's
//! namespaces for the whole of a rename run. Some are admitted with the old name; none may be
//! left naming a Secret that does not exist, and once they are gone a later run prunes the old
//! copies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::TestEnv;

const NAMESPACES: usize = 120;
const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_under_continuous_pod_creation_strands_no_pod() {
    let env = Arc::new(TestEnv::new("rr1").await);
    let src = env.name("source");
    env.create_source(&src, "fake-user", "fake-password").await;
    let (old, new) = (env.name("old"), env.name("new"));
    let mut namespaces: Vec<String> = (0..NAMESPACES).map(|i| env.name(&format!("n{i:03}"))).collect();
    let mut set = JoinSet::new();
    for chunk in namespaces.chunks(NAMESPACES / 8) {
        let (env, chunk) = (env.clone(), chunk.to_vec());
        set.spawn(async move {
            for ns in chunk {
                env.create_namespace(&ns, &[], &[]).await;
            }
        });
    }
    set.join_all().await;
    let first = env.run(&[("PULLSECRET_SOURCE_SECRETS", &format!("{src}={old}"))]).await;
    assert_eq!(first.code, 0, "{first:?}");
    namespaces.push(env.home.clone());

    // The writers: each creates Pods round the namespaces until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        let (env, stop, created, namespaces) = (env.clone(), stop.clone(), created.clone(), namespaces.clone());
        writers.spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                let ns = &namespaces[i % namespaces.len()];
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": { "generateName": format!("w{w}-"), "labels": { "race": "rr1" } },
                    "spec": { "containers": [{ "name": "app", "image": "registry.example.invalid/app:1" }] }
                }))
                .unwrap();
                if Api::<Pod>::namespaced(env.client.clone(), ns)
                    .create(&PostParams::default(), &pod)
                    .await
                    .is_ok()
                {
                    created.fetch_add(1, Ordering::SeqCst);
                }
                i += WRITERS;
            }
        });
    }
    // Pods are being admitted before the run starts, throughout it, and after it.
    while created.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rename = [("PULLSECRET_SOURCE_SECRETS", format!("{src}={new}"))];
    let rename: Vec<(&str, &str)> = rename.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = env.run(&rename).await;
    let after_run = created.load(Ordering::SeqCst);
    while created.load(Ordering::SeqCst) < after_run + 20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writers.join_all().await;
    assert_eq!(run.code, 0, "{run:?}");

    // No Pod names a Secret that does not exist.
    let pods: Vec<Pod> = Api::<Pod>::all(env.client.clone())
        .list(&ListParams::default().labels("race=rr1"))
        .await
        .unwrap()
        .items;
    let mut with_old = 0;
    for p in &pods {
        let ns = p.metadata.namespace.clone().unwrap();
        for r in p.spec.as_ref().unwrap().image_pull_secrets.iter().flatten() {
            with_old += usize::from(r.name == old);
            assert!(
                env.secret(&ns, &r.name).await.is_some(),
                "Pod {ns}/{} names {}, which no longer exists",
                p.metadata.name.as_deref().unwrap_or_default(),
                r.name
            );
        }
    }
    eprintln!(
        "race: {} Pods created by {WRITERS} writers during a rename at {} namespaces, {with_old} admitted with the old \
         name; none names a missing Secret",
        pods.len(),
        namespaces.len()
    );

    // Once those Pods are gone, a later run prunes every old copy.
    for ns in &namespaces {
        let api: Api<Pod> = Api::namespaced(env.client.clone(), ns);
        api.delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels("race=rr1"),
        )
        .await
        .unwrap();
    }
    let next = env.run(&rename).await;
    assert_eq!(next.code, 0, "{next:?}");
    for ns in &namespaces {
        assert!(env.secret(ns, &old).await.is_none(), "{ns}: old copy pruned");
        assert!(env.secret(ns, &new).await.is_some(), "{ns}");
    }
}
