//! Kept copies whose Pod holders cannot have changed are not read again. After a rename with
//! the inject policy on, every Pod admitted before it names the old copy, so every namespace holds
//! one; reading every Pod and six workload kinds of the cluster on each run until the last of those
//! Pods is gone is what this avoids. A copy kept for Pods alone is recorded in the inventory
//! ([`Held`]: the youngest holder's creation and how many unfinished Pods of its namespace were
//! created by then). No Pod created later can name a retired name, so while that count holds,
//! so do the holders: one list of Pod metadata replaces the reads, and a namespace is read again
//! as soon as one of those Pods has ended. Skipping a read only ever keeps a copy.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::model::{Observed, created_by};

/// Marks the candidates whose recorded holders are all still there as held over, keeps `ages`
/// for the next records, and returns the namespaces whose references must still be read.
pub(super) fn hold_over(
    observed: &mut Observed,
    candidates: &BTreeSet<(String, String)>,
    ages: BTreeMap<String, Vec<i64>>,
) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    for (ns, name) in candidates {
        let unchanged = observed
            .inventory
            .held
            .iter()
            .find(|h| &h.namespace == ns && &h.name == name)
            .is_some_and(|h| created_by(&ages, ns, h.before) == h.pods);
        if unchanged {
            observed.held_over.insert((ns.clone(), name.clone()));
        } else {
            read.insert(ns.clone());
        }
    }
    observed.pod_ages = Some(ages);
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Held, Inventory};

    #[test]
    fn only_copies_whose_older_pods_are_all_still_there_are_held_over() {
        let record = |ns: &str, before, pods| Held {
            namespace: ns.into(),
            name: "old".into(),
            before,
            pods,
        };
        let mut observed = Observed {
            inventory: Inventory {
                held: vec![record("a", 100, 2), record("b", 100, 2), record("c", 100, 1)],
                ..Inventory::default()
            },
            ..Observed::default()
        };
        let candidates: BTreeSet<(String, String)> = ["a", "b", "c", "d"]
            .iter()
            .map(|ns| (ns.to_string(), "old".to_string()))
            .collect();
        let ages = BTreeMap::from([
            // a: both older Pods still there, a newer one came (it cannot name `old`).
            ("a".to_string(), vec![50, 100, 400]),
            // b: one of the two older Pods ended.
            ("b".to_string(), vec![90, 300]),
            // c: its record, but a Pod created at the same second as the holder is new: count 2.
            ("c".to_string(), vec![100, 100]),
        ]);
        let read = hold_over(&mut observed, &candidates, ages);
        assert_eq!(
            read,
            BTreeSet::from(["b".to_string(), "c".to_string(), "d".to_string()])
        );
        assert_eq!(
            observed.held_over,
            BTreeSet::from([("a".to_string(), "old".to_string())])
        );
        assert!(observed.pod_ages.is_some());
    }
}
