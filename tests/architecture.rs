//! The house rules of `src/`, read from the code itself (no build of the crate needed):
//! - layers import only downward: core -> sources -> apply -> cluster -> cli -> explain -> run,
//!   judged from every `crate::` path (a `use` line or an inline path);
//! - nothing in `core/` names kube or tokio (it is pure);
//! - no file over 600 lines and no function over 80, tests aside;
//! - no `allow(clippy::too_many_arguments)`.
//!
//! `docs/development/architecture.md` explains the layers.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

const LAYERS: &[&str] = &["core", "sources", "apply", "cluster", "cli", "explain", "run"];
const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/core/plan/mod.rs` -> "core"; `src/run.rs` -> "run"; lib.rs and main.rs are above all.
fn layer_of(relative: &Path) -> Option<usize> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let first = first.strip_suffix(".rs").unwrap_or(first);
    LAYERS.iter().position(|l| *l == first)
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The lines before the first `#[cfg(test)]` module: the code the rules are about.
fn code_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// Every layer named by a `crate::` path in these lines, with the line number.
fn crate_paths(lines: &[&str]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name.is_empty() {
                // `use crate::{a, b}`: every name in the braces.
                let inner = rest.trim_start_matches('{');
                let inner = inner.split('}').next().unwrap_or("");
                for n in inner.split(',') {
                    let n = n.trim().split("::").next().unwrap_or("").to_owned();
                    if !n.is_empty() {
                        out.push((i + 1, n));
                    }
                }
            } else {
                out.push((i + 1, name));
            }
        }
    }
    out
}

/// Each function's name and length in lines (rustfmt layout: the closing brace at the
/// indentation of the `fn`).
fn function_lengths(lines: &[&str]) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        let prefix_ok = words[..at]
            .iter()
            .all(|w| ["pub", "pub(crate)", "pub(super)", "async", "const", "unsafe"].contains(w));
        if !prefix_ok || words.len() <= at + 1 {
            continue;
        }
        // A declaration without a body (a trait's): its signature ends in `;` before any `{`.
        let signature_end = lines[i..]
            .iter()
            .find(|l| l.trim_end().ends_with(';') || l.contains('{'));
        if signature_end.is_some_and(|l| !l.contains('{')) {
            continue;
        }
        let name: String = words[at + 1]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if trimmed.ends_with('}') {
            out.push((i + 1, name, 1));
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            out.push((i + 1, name, end + 1));
        }
    }
    out
}

#[test]
fn layers_import_only_downward_and_code_stays_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 20,
        "found only {} files under {}",
        files.len(),
        src.display()
    );
    let mut broken = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src/");
        let text = std::fs::read_to_string(path).expect("readable");
        let test_file = is_test_file(path);
        let code = if test_file { Vec::new() } else { code_lines(&text) };
        let here = layer_of(relative);
        for (line, name) in crate_paths(&code) {
            let Some(there) = LAYERS.iter().position(|l| *l == name) else {
                broken.push(format!(
                    "{}:{line}: crate::{name} is not a layer (lib.rs re-exports are for users)",
                    relative.display()
                ));
                continue;
            };
            if let Some(here) = here
                && there > here
            {
                broken.push(format!(
                    "{}:{line}: {} imports {name}, a layer above it",
                    relative.display(),
                    LAYERS[here]
                ));
            }
        }
        if here == Some(0) {
            for (i, l) in code.iter().enumerate() {
                let l = l.split("//").next().unwrap_or("");
                if l.contains("kube::") || l.contains("tokio::") || l.contains("tokio;") {
                    broken.push(format!("{}:{}: core names kube or tokio", relative.display(), i + 1));
                }
            }
        }
        if code.len() > MAX_FILE_LINES {
            broken.push(format!(
                "{}: {} lines (at most {MAX_FILE_LINES})",
                relative.display(),
                code.len()
            ));
        }
        for (line, name, length) in function_lengths(&code) {
            if length > MAX_FN_LINES {
                broken.push(format!(
                    "{}:{line}: fn {name} is {length} lines (at most {MAX_FN_LINES})",
                    relative.display()
                ));
            }
        }
        if text.contains("too_many_arguments") {
            broken.push(format!("{}: allows too_many_arguments", relative.display()));
        }
    }
    assert!(broken.is_empty(), "house rules broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rules_see_what_they_judge() {
    let code = [
        "use crate::cli::config::Config;",
        "use crate::core::{glob, names};",
        "    let x = crate::run::go(); // crate::explain",
    ];
    let found: Vec<String> = crate_paths(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(found, ["cli", "core", "run"]);
    let f = [
        "fn a() {",
        "    x",
        "}",
        "    fn d(",
        "        x: u8,",
        "    ) -> u8;",
        "    pub async fn b(x: u8) -> u8 {",
        "        x",
        "    }",
        "fn c() {}",
    ];
    let lengths: Vec<(String, usize)> = function_lengths(&f).into_iter().map(|(_, n, l)| (n, l)).collect();
    assert_eq!(lengths, [("a".to_owned(), 3), ("b".to_owned(), 3), ("c".to_owned(), 1)]);
}
