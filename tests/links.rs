//! Every relative link in the docs resolves, file and anchor: Markdown links in README.md,
//! docs/, manifests/ and charts/, and the repository paths (`docs/….md#anchor`) that comments in
//! shipped files (Dockerfile, manifests/, charts/) point to. Sections are named by path, never as
//! `README "Some section"` (such names went stale when sections moved into docs/).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// GitHub's heading anchors: lower case, punctuation but `-` and `_` dropped, spaces to `-`;
/// repeats get `-1`, `-2`, ….
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        let slug: String = text
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        out.insert(candidate);
    }
    out
}

/// `](target)` of Markdown links and images, outside code fences and inline code.
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans hold examples, not links.
        let outside: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = outside.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// Repository paths to Markdown files named in comments: `docs/x.md`, `docs/x.md#anchor`,
/// `README.md#anchor`.
fn path_mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".md") {
        let start = text[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "/_-.".contains(c)))
            .map_or(0, |s| s + 1);
        let path = &text[start..i + 3];
        if !(path.starts_with("docs/") || path == "README.md") {
            continue;
        }
        let tail = &text[i + 3..];
        let anchor: String = tail
            .strip_prefix('#')
            .map(|t| {
                t.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect()
            })
            .unwrap_or_default();
        out.push(if anchor.is_empty() {
            path.to_owned()
        } else {
            format!("{path}#{anchor}")
        });
    }
    out
}

/// Whether `target` (relative to `base`, a folder) names an existing file and, when it has one,
/// an existing heading anchor in it. `None` when it resolves; else why not.
fn broken(base: &Path, from: &Path, target: &str) -> Option<String> {
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        from.to_owned()
    } else {
        base.join(path)
    };
    if !file.exists() {
        return Some(format!("no file {}", file.display()));
    }
    if anchor.is_empty() || file.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    (!anchors(&text).contains(anchor)).then(|| format!("no heading #{anchor} in {}", file.display()))
}

#[test]
fn every_relative_link_resolves_to_a_file_and_a_heading() {
    let root = root();
    let mut all = vec![root.join("README.md"), root.join("Dockerfile")];
    for dir in ["docs", "manifests", "charts"] {
        files(&root.join(dir), &mut all);
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &all {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        if file.extension().is_some_and(|e| e == "md") {
            for target in markdown_links(&text) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                if let Some(why) = broken(file.parent().unwrap(), file, &target) {
                    problems.push(format!("{shown}: ({target}): {why}"));
                }
            }
        } else {
            for target in path_mentions(&text) {
                checked += 1;
                if let Some(why) = broken(&root, file, &target) {
                    problems.push(format!("{shown}: {target}: {why}"));
                }
            }
        }
        if !shown.ends_with(".md") && text.contains("README \"") {
            problems.push(format!(
                "{shown}: names a README section by title: give its path instead"
            ));
        }
    }
    assert!(checked > 50, "only {checked} links found: is the scan broken?");
    assert!(
        problems.is_empty(),
        "{} broken link(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rules() {
    let a =
        anchors("# Registry truth (`PULLSECRET_VERIFY`)\n## Exit codes\n## Exit codes\n```\n# not a heading\n```\n");
    assert_eq!(
        a,
        BTreeSet::from([
            "registry-truth-pullsecret_verify".to_string(),
            "exit-codes".to_string(),
            "exit-codes-1".to_string()
        ])
    );
    assert_eq!(markdown_links("see [a](docs/x.md#y) and `[b](no)`"), ["docs/x.md#y"]);
    assert_eq!(
        path_mentions("# see docs/ops.md#rbac, and docs/a.md."),
        ["docs/ops.md#rbac", "docs/a.md"]
    );
}
