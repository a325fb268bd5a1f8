//! Printing an answer: text for a person, or one JSON object for a script.

use super::{PodExplanation, STUCK_DEADLINE, StepResult, Stuck, group};

/// Text for a person.
pub fn render_text(e: &PodExplanation) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let what = match &e.pod {
        Some(p) => format!("Pod {}/{p}", e.namespace),
        None => format!("A new Pod in {} with ServiceAccount {}", e.namespace, e.service_account),
    };
    let state = if e.would_pull { "would pull" } else { "would NOT pull" };
    let _ = writeln!(t, "{what}: {state}");
    for i in &e.images {
        let _ = writeln!(t, "  container {} image {}", i.container, i.image);
        for s in &i.steps {
            let mark = match s.result {
                StepResult::Ok => "ok  ",
                StepResult::Failed => "FAIL",
                StepResult::Unknown => "??  ",
            };
            let _ = writeln!(t, "    {mark} {:<12} {}", s.step, s.detail);
        }
        if !i.would_pull {
            let _ = writeln!(t, "    verdict: {}", i.verdict);
            let _ = writeln!(t, "    fix:     {}", i.fix);
        }
    }
    t
}

/// Prints one Pod's answer; the exit code.
pub fn print_one(e: &PodExplanation, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        print!("{}", render_text(e));
    }
    u8::from(!e.would_pull)
}

/// Prints `--stuck`'s groups (and says on stderr how many Pods the deadline left out); the exit
/// code.
pub fn print_stuck(stuck: &Stuck, json: bool) -> u8 {
    let pods = &stuck.pods;
    let groups = group(pods);
    if json {
        let out =
            serde_json::json!({ "stuck_pods": pods.len(), "not_examined": stuck.late, "groups": groups, "pods": pods });
        println!("{out}");
    } else if pods.is_empty() && stuck.late == 0 {
        println!("No Pod waits in ImagePullBackOff or ErrImagePull.");
    } else {
        for g in &groups {
            println!("{}\n  fix: {}\n  pods: {}", g.summary, g.fix, g.pods.join(", "));
        }
    }
    if stuck.late > 0 {
        eprintln!(
            "explain --stuck: {} stuck Pod(s) not examined within {}s (registries slow or unreachable); \
             ask about one with `explain POD -n NAMESPACE`",
            stuck.late,
            STUCK_DEADLINE.as_secs()
        );
    }
    u8::from(stuck.late > 0 || pods.iter().any(|p| !p.would_pull))
}

/// Says why the question cannot be answered; exit code 2.
pub fn print_invalid(e: &anyhow::Error, json: bool) -> u8 {
    eprintln!("error: {e:#}");
    if json {
        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
    }
    2
}
