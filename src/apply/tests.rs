//! The runner over a scripted fake [`Cluster`]: no HTTP, no cluster.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::*;
use crate::core::model::{Edit, Kind};

/// Answers scripted per call key ("write-sa a/default"); anything unscripted succeeds.
#[derive(Default)]
struct Fake {
    script: Mutex<BTreeMap<String, VecDeque<Scripted>>>,
    calls: Mutex<Vec<String>>,
    service_accounts: Mutex<BTreeMap<String, ServiceAccountState>>,
    inventory: Mutex<Option<Inventory>>,
    /// Every write takes this long (virtual time).
    delay: Duration,
}

#[derive(Clone)]
enum Scripted {
    Status(u16),
    /// 429 with the cause `DisruptionBudget`: a PodDisruptionBudget's refusal.
    Budget,
    /// 429 without it (API priority and fairness), with this `Retry-After` in seconds.
    Throttled(u64),
    Panic,
}

impl Fake {
    fn on(&self, call: &str, answers: &[Scripted]) {
        self.script
            .lock()
            .unwrap()
            .entry(call.to_owned())
            .or_default()
            .extend(answers.iter().cloned());
    }

    async fn answer(&self, call: String) -> ApiResult<()> {
        self.calls.lock().unwrap().push(call.clone());
        tokio::time::sleep(self.delay).await;
        let next = self.script.lock().unwrap().get_mut(&call).and_then(VecDeque::pop_front);
        match next {
            None => Ok(()),
            Some(Scripted::Panic) => panic!("scripted panic for {call}"),
            Some(Scripted::Status(code)) => Err(ApiError {
                status: Some(code),
                failure: Failure::new(&format!("Status{code}"), format!("scripted {code}")),
                retry_after: None,
            }),
            Some(Scripted::Budget) => Err(ApiError {
                status: Some(429),
                failure: Failure::new(
                    "DisruptionBudget",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                ),
                retry_after: None,
            }),
            Some(Scripted::Throttled(secs)) => Err(ApiError {
                status: Some(429),
                failure: Failure::new("TooManyRequests", "Too many requests, please try again later."),
                retry_after: Some(Duration::from_secs(secs)),
            }),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Cluster for Fake {
    async fn apply_secret(&self, ns: &str, name: &str, _: &Credential, _: Option<&str>) -> ApiResult<()> {
        self.answer(format!("apply-secret {ns}/{name}")).await
    }
    async fn delete_secret(&self, ns: &str, name: &str, _: &str, _: &str) -> ApiResult<()> {
        self.answer(format!("delete-secret {ns}/{name}")).await
    }
    async fn read_service_account(&self, ns: &str, name: &str) -> ApiResult<Option<ServiceAccountState>> {
        self.calls.lock().unwrap().push(format!("read-sa {ns}/{name}"));
        Ok(self
            .service_accounts
            .lock()
            .unwrap()
            .get(&format!("{ns}/{name}"))
            .cloned())
    }
    async fn write_service_account(
        &self,
        ns: &str,
        name: &str,
        _: &str,
        list: &[String],
        _: &[String],
    ) -> ApiResult<()> {
        self.answer(format!("write-sa {ns}/{name} [{}]", list.join(","))).await
    }
    async fn evict_pod(&self, ns: &str, name: &str, _: &str) -> ApiResult<()> {
        self.answer(format!("evict {ns}/{name}")).await
    }
    async fn read_inventory(&self) -> ApiResult<Option<Inventory>> {
        self.calls.lock().unwrap().push("read-inventory".into());
        Ok(self.inventory.lock().unwrap().clone())
    }
    async fn write_inventory(&self, names: &[String], rv: Option<&str>) -> ApiResult<()> {
        self.answer(format!(
            "write-inventory [{}] rv={}",
            names.join(","),
            rv.unwrap_or("none")
        ))
        .await
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn action(kind: Kind, ns: &str, name: &str, op: Op, after: &[usize]) -> Action {
    Action {
        kind,
        namespace: ns.into(),
        name: name.into(),
        op,
        after: after.to_vec(),
    }
}

fn create(ns: &str, name: &str, after: &[usize]) -> Action {
    action(Kind::Secret, ns, name, Op::CreateSecret { credential: 0 }, after)
}

fn delete(ns: &str, name: &str, after: &[usize]) -> Action {
    let op = Op::DeleteSecret {
        resource_version: "1".into(),
        uid: "u".into(),
    };
    action(Kind::Secret, ns, name, op, after)
}

fn patch(ns: &str, add: &[&str], remove: &[&str], list: &[&str], after: &[usize]) -> Action {
    let op = Op::PatchServiceAccount {
        resource_version: "5".into(),
        edit: Edit {
            add: s(add),
            remove: s(remove),
            claim: vec![],
        },
        list: s(list),
        recorded: s(add),
    };
    action(Kind::ServiceAccount, ns, "default", op, after)
}

fn credentials() -> Arc<[Credential]> {
    vec![Credential {
        target: "new".into(),
        origin: "test".into(),
        source_secret: None,
        data: b"{}".to_vec(),
    }]
    .into()
}

fn limits(concurrency: usize, secs: u64) -> Limits {
    Limits {
        concurrency,
        deadline: Instant::now() + Duration::from_secs(secs),
    }
}

async fn run(fake: Fake, actions: Vec<Action>, limits: Limits) -> (Vec<Outcome>, Arc<Fake>) {
    let fake = Arc::new(fake);
    let out = execute(fake.clone(), actions.clone(), credentials(), limits).await;
    assert_eq!(out.len(), actions.len(), "one outcome per action");
    for (o, a) in out.iter().zip(&actions) {
        assert_eq!(&o.action, a, "each outcome carries its action");
    }
    (out, fake)
}

fn reason(o: &Outcome) -> &str {
    &o.status.failure().unwrap_or_else(|| panic!("no failure: {o:?}")).reason
}

#[tokio::test(start_paused = true)]
async fn a_failed_prerequisite_skips_its_dependants_with_the_right_reason() {
    let fake = Fake::default();
    fake.on("apply-secret a/new", &[Scripted::Status(403)]);
    let actions = vec![
        create("a", "new", &[]),
        patch("a", &["new"], &["old"], &["new"], &[0]),
        delete("a", "old", &[1]),
        create("b", "new", &[]),
    ];
    let (out, fake) = run(fake, actions, limits(4, 60)).await;
    assert!(matches!(out[0].status, Status::Failed(_)));
    assert!(matches!(out[1].status, Status::Skipped(_)));
    assert_eq!(reason(&out[1]), "SecretNotWritten");
    assert!(out[1].status.failure().unwrap().message.contains("Secret a/new"));
    assert_eq!(reason(&out[2]), "StillReferenced");
    assert_eq!(out[3].status, Status::Done { retries: 0 }, "unrelated writes go on");
    assert_eq!(fake.calls(), s(&["apply-secret a/new", "apply-secret b/new"]));
}

#[tokio::test(start_paused = true)]
async fn a_stale_service_account_is_re_read_and_the_edit_re_applied() {
    let fake = Fake::default();
    fake.on("write-sa a/default [x,new]", &[Scripted::Status(409)]);
    fake.service_accounts.lock().unwrap().insert(
        "a/default".into(),
        ServiceAccountState {
            namespace: "a".into(),
            name: "default".into(),
            resource_version: "6".into(),
            pull_secrets: s(&["x", "theirs-meanwhile"]),
            recorded: vec![],
            list_appliers: vec![],
        },
    );
    let (out, fake) = run(fake, vec![patch("a", &["new"], &[], &["x", "new"], &[])], limits(1, 60)).await;
    assert_eq!(out[0].status, Status::Done { retries: 1 });
    assert_eq!(
        fake.calls(),
        s(&[
            "write-sa a/default [x,new]",
            "read-sa a/default",
            "write-sa a/default [x,theirs-meanwhile,new]"
        ]),
        "the other writer's entry survives"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_account_deleted_meanwhile_counts_as_gone_not_failed() {
    let fake = Fake::default();
    fake.on("write-sa a/default [new]", &[Scripted::Status(404)]);
    let actions = vec![patch("a", &["new"], &["old"], &["new"], &[]), delete("a", "old", &[0])];
    let (out, _) = run(fake, actions, limits(1, 60)).await;
    assert_eq!(out[0].status, Status::Gone);
    assert_eq!(
        out[1].status,
        Status::Done { retries: 0 },
        "a gone ServiceAccount names nothing"
    );
    // And one that vanished before the re-read after a conflict.
    let fake = Fake::default();
    fake.on("write-sa a/default [new]", &[Scripted::Status(409)]);
    let (out, _) = run(fake, vec![patch("a", &["new"], &[], &["new"], &[])], limits(1, 60)).await;
    assert_eq!(out[0].status, Status::Gone);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_the_rest_with_a_clear_reason() {
    let fake = Fake {
        delay: Duration::from_secs(4),
        ..Fake::default()
    };
    let actions: Vec<Action> = (0..5).map(|i| create(&format!("n{i}"), "new", &[])).collect();
    let (out, fake) = run(fake, actions, limits(1, 10)).await;
    let done = out.iter().filter(|o| o.status == Status::Done { retries: 0 }).count();
    assert_eq!(done, 2, "{out:?}");
    for o in &out[2..] {
        assert_eq!(reason(o), "DeadlineExceeded");
        assert!(o.status.failure().unwrap().message.contains("PULLSECRET_TIMEOUT_SECS"));
    }
    assert_eq!(
        fake.calls().len(),
        3,
        "the third was cut off mid-way, the rest never started"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_write_is_reported_as_such() {
    let fake = Fake::default();
    fake.on("apply-secret a/new", &[Scripted::Panic]);
    let actions = vec![
        create("a", "new", &[]),
        create("b", "new", &[]),
        patch("a", &["new"], &[], &["new"], &[0]),
    ];
    let (out, _) = run(fake, actions, limits(2, 60)).await;
    assert_eq!(reason(&out[0]), "Panicked");
    assert_eq!(out[1].status, Status::Done { retries: 0 });
    assert_eq!(reason(&out[2]), "SecretNotWritten");
}

#[tokio::test(start_paused = true)]
async fn concurrent_inventory_writers_merge_instead_of_overwriting() {
    let fake = Fake::default();
    // Another run recorded "theirs" after we read the inventory.
    fake.on("write-inventory [mine] rv=1", &[Scripted::Status(409)]);
    *fake.inventory.lock().unwrap() = Some(Inventory {
        held: vec![],
        names: s(&["theirs"]),
        resource_version: Some("2".into()),
    });
    let op = Op::EditInventory {
        resource_version: Some("1".into()),
        add: s(&["mine"]),
        remove: vec![],
        names: s(&["mine"]),
    };
    let (out, fake) = run(fake, vec![action(Kind::ConfigMap, "", "inv", op, &[])], limits(1, 60)).await;
    assert_eq!(out[0].status, Status::Done { retries: 1 });
    assert_eq!(
        fake.calls(),
        s(&[
            "write-inventory [mine] rv=1",
            "read-inventory",
            "write-inventory [mine,theirs] rv=2"
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_waves_follow_dependencies() {
    let fake = Fake {
        delay: Duration::from_millis(100),
        ..Fake::default()
    };
    let mut actions: Vec<Action> = (0..6).map(|i| create(&format!("n{i}"), "new", &[])).collect();
    actions.push(delete("n0", "old", &[0, 5]));
    let (out, fake) = run(fake, actions, limits(2, 60)).await;
    assert!(out.iter().all(|o| o.status == Status::Done { retries: 0 }));
    assert_eq!(
        fake.calls().last().unwrap(),
        "delete-secret n0/old",
        "the dependant runs last"
    );
}

#[test]
fn a_dry_run_sends_nothing_and_reports_every_action() {
    assert_eq!(unsent(vec![create("a", "new", &[])])[0].status, Status::NotSent);
}

fn evict(ns: &str, name: &str, after: &[usize]) -> Action {
    let op = Op::Evict {
        uid: format!("uid-{name}"),
        controller: "ReplicaSet/web".into(),
    };
    action(Kind::Pod, ns, name, op, after)
}

#[tokio::test(start_paused = true)]
async fn an_eviction_a_budget_refuses_is_reported_once_and_never_retried() {
    let fake = Fake::default();
    fake.on("evict a/web-1", &[Scripted::Budget]);
    fake.on("evict a/web-2", &[Scripted::Status(404)]);
    let actions = vec![
        create("a", "new", &[]),
        evict("a", "web-1", &[0]),
        evict("a", "web-2", &[0]),
        evict("a", "web-3", &[0]),
    ];
    let (out, fake) = run(fake, actions, limits(4, 60)).await;
    assert_eq!(reason(&out[1]), "DisruptionBudget");
    assert_eq!(out[2].status, Status::Gone, "already gone: nothing to heal");
    assert_eq!(out[3].status, Status::Done { retries: 0 });
    let evictions = fake.calls().iter().filter(|c| c.starts_with("evict a/web-1")).count();
    assert_eq!(evictions, 1, "a refusal is an answer, not a reason to try again");
}

/// A Pending Pod consumes no budget: a 429 without the budget's cause is throttling, tried again
/// after the server's Retry-After; one that stays throttled is reported as such, not as a budget.
#[tokio::test(start_paused = true)]
async fn a_throttled_eviction_is_tried_again_after_retry_after() {
    let fake = Fake::default();
    fake.on("evict a/web-1", &[Scripted::Throttled(2), Scripted::Throttled(3)]);
    fake.on("evict a/web-2", &vec![Scripted::Throttled(1); 5]);
    let started = tokio::time::Instant::now();
    let (out, fake) = run(
        fake,
        vec![evict("a", "web-1", &[]), evict("a", "web-2", &[])],
        limits(1, 60),
    )
    .await;
    assert_eq!(out[0].status, Status::Done { retries: 0 });
    assert_eq!(reason(&out[1]), "Throttled");
    let calls = |pod: &str| fake.calls().iter().filter(|c| c.ends_with(pod)).count();
    assert_eq!((calls("web-1"), calls("web-2")), (3, 5));
    assert!(
        started.elapsed() >= Duration::from_secs(2 + 3 + 4),
        "waited as the server asked"
    );
}

#[tokio::test(start_paused = true)]
async fn no_eviction_without_the_secret_it_waits_for() {
    let fake = Fake::default();
    fake.on("apply-secret a/new", &[Scripted::Status(403)]);
    let (out, fake) = run(
        fake,
        vec![create("a", "new", &[]), evict("a", "web-1", &[0])],
        limits(2, 60),
    )
    .await;
    assert_eq!(reason(&out[1]), "SecretNotWritten");
    assert!(!fake.calls().iter().any(|c| c.starts_with("evict")));
}
