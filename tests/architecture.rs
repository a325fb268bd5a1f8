//! The house rules of `src/`, read from the code itself (no build of the crate needed):
//! - each layer imports only the layers [`LAYERS`] says it may (a DAG), judged from every
//!   `crate::` path, read with Rust's own grammar (`syn`): `use` trees over several lines, inline
//!   paths, and paths inside macro calls; code under `#[cfg(test)]` aside;
//! - nothing in `core/` names kube or tokio (it is pure);
//! - no file over 600 lines and no function over 80, tests aside;
//! - no `allow(clippy::too_many_arguments)`;
//! - no import circle between modules (a file, or a folder's files, is one module).
//!
//! `docs/development/architecture.md` explains the layers.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The layers, each with the layers it may import: the DAG `docs/development/architecture.md`
/// draws. `lib.rs` and `main.rs` are above them all.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("config", &["core"]),
    ("sources", &["core", "config"]),
    ("apply", &["core"]),
    ("cluster", &["core", "config", "apply"]),
    ("explain", &["core", "sources", "cluster"]),
    ("run", &["core", "config", "sources", "apply", "cluster"]),
    ("cli", &["core", "config", "explain"]),
];
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
    LAYERS.iter().position(|(l, _)| *l == first)
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

/// Every layer named by a `crate::` path in this file's code, with the line number (once per
/// line and layer).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (line, path) in full_paths(text) {
        let layer = path.split("::").next().unwrap_or_default().to_owned();
        if !out.contains(&(line, layer.clone())) {
            out.push((line, layer));
        }
    }
    out
}

/// A file's module: `core/plan/prune.rs` -> `core::plan`, `sources/mod.rs` -> `sources`,
/// `run.rs` -> `run`; lib.rs and main.rs are none.
fn module_of(relative: &Path) -> Option<String> {
    let parts: Vec<&str> = relative.iter().filter_map(|p| p.to_str()).collect();
    let strip = |p: &str| p.strip_suffix(".rs").unwrap_or(p).to_owned();
    match parts.as_slice() {
        ["lib.rs" | "main.rs"] => None,
        [one] => Some(strip(one)),
        [layer, "mod.rs"] => Some((*layer).to_owned()),
        [layer, module, ..] => Some(format!("{layer}::{}", strip(module))),
        [] => None,
    }
}

/// Every `crate::` path in a file's code, whole, with its line number: `crate::core::{glob,
/// names}` gives `core::glob` and `core::names` (however rustfmt spreads the group over lines),
/// `crate::{cli, run}` gives `cli` and `run`, `crate::run::go()` gives `run::go`, and so do paths
/// in macro calls. Items under `#[cfg(test)]` are skipped.
fn full_paths(text: &str) -> Vec<(usize, String)> {
    use syn::visit::Visit;

    struct Paths(Vec<(usize, String)>);

    fn is_test(attrs: &[syn::Attribute]) -> bool {
        attrs
            .iter()
            .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string() == "test"))
    }

    /// A `use` tree under `prefix` (the path after `crate::` so far).
    fn tree(t: &syn::UseTree, prefix: &str, out: &mut Vec<(usize, String)>) {
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}::{name}")
            }
        };
        match t {
            syn::UseTree::Path(p) => tree(&p.tree, &join(&p.ident.to_string()), out),
            syn::UseTree::Name(n) if n.ident == "self" => out.push((n.ident.span().start().line, prefix.to_owned())),
            syn::UseTree::Name(n) => out.push((n.ident.span().start().line, join(&n.ident.to_string()))),
            syn::UseTree::Rename(r) => out.push((r.ident.span().start().line, join(&r.ident.to_string()))),
            syn::UseTree::Glob(g) => out.push((g.star_token.spans[0].start().line, prefix.to_owned())),
            syn::UseTree::Group(g) => g.items.iter().for_each(|i| tree(i, prefix, out)),
        }
    }

    /// `crate :: a :: b` in a macro's tokens (they are not parsed as Rust).
    fn tokens(stream: proc_macro2::TokenStream, out: &mut Vec<(usize, String)>) {
        let flat: Vec<proc_macro2::TokenTree> = stream.into_iter().collect();
        for (i, t) in flat.iter().enumerate() {
            match t {
                proc_macro2::TokenTree::Group(g) => tokens(g.stream(), out),
                proc_macro2::TokenTree::Ident(id) if id == "crate" => {
                    let mut segments = Vec::new();
                    let mut j = i + 1;
                    while let (
                        Some(proc_macro2::TokenTree::Punct(a)),
                        Some(proc_macro2::TokenTree::Punct(b)),
                        Some(proc_macro2::TokenTree::Ident(name)),
                    ) = (flat.get(j), flat.get(j + 1), flat.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(name.to_string());
                        j += 3;
                    }
                    if !segments.is_empty() {
                        out.push((id.span().start().line, segments.join("::")));
                    }
                }
                _ => {}
            }
        }
    }

    impl<'a> Visit<'a> for Paths {
        fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
            if let syn::UseTree::Path(p) = &u.tree
                && p.ident == "crate"
                && !is_test(&u.attrs)
            {
                tree(&p.tree, "", &mut self.0);
            }
        }
        fn visit_path(&mut self, p: &'a syn::Path) {
            let mut segments = p.segments.iter();
            if segments.next().is_some_and(|s| s.ident == "crate") {
                let rest: Vec<String> = segments.map(|s| s.ident.to_string()).collect();
                if !rest.is_empty() {
                    self.0.push((p.segments[0].ident.span().start().line, rest.join("::")));
                }
            }
            syn::visit::visit_path(self, p);
        }
        fn visit_macro(&mut self, m: &'a syn::Macro) {
            tokens(m.tokens.clone(), &mut self.0);
            syn::visit::visit_macro(self, m);
        }
        fn visit_item(&mut self, i: &'a syn::Item) {
            let attrs = match i {
                syn::Item::Mod(m) => &m.attrs,
                syn::Item::Fn(f) => &f.attrs,
                syn::Item::Impl(x) => &x.attrs,
                syn::Item::Use(u) => &u.attrs,
                _ => return syn::visit::visit_item(self, i),
            };
            if !is_test(attrs) {
                syn::visit::visit_item(self, i);
            }
        }
    }

    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("not Rust: {e}"));
    let mut paths = Paths(Vec::new());
    paths.visit_file(&file);
    paths.0.sort();
    paths.0.dedup();
    paths.0
}

/// The module a path lands in: the longest known module it starts with.
fn module_named(path: &str, modules: &std::collections::BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len().min(2))
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// A circle in `edges`, if any, as the modules along it.
fn find_circle(edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let code_files: Vec<(String, String)> = files
        .iter()
        .filter(|p| !is_test_file(p))
        .filter_map(|p| {
            let module = module_of(p.strip_prefix(&src).ok()?)?;
            Some((module, std::fs::read_to_string(p).ok()?))
        })
        .collect();
    let modules: std::collections::BTreeSet<String> = code_files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (module, text) in &code_files {
        for (_, path) in full_paths(text) {
            if let Some(to) = module_named(&path, &modules)
                && to != *module
            {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    assert!(edges.len() > 10, "too few imports found: {edges:?}");
    if let Some(circle) = find_circle(&edges) {
        panic!("modules import each other in a circle: {}", circle.join(" -> "));
    }
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
fn layers_import_only_what_the_dag_allows_and_code_stays_small() {
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
        let paths = if test_file { Vec::new() } else { crate_paths(&text) };
        for (line, name) in paths {
            if !LAYERS.iter().any(|(l, _)| *l == name) {
                broken.push(format!(
                    "{}:{line}: crate::{name} is not a layer (lib.rs re-exports are for users)",
                    relative.display()
                ));
                continue;
            }
            if let Some(here) = here
                && LAYERS[here].0 != name
                && !LAYERS[here].1.contains(&name.as_str())
            {
                broken.push(format!(
                    "{}:{line}: {} imports {name}, which it may not (it may use: {:?})",
                    relative.display(),
                    LAYERS[here].0,
                    LAYERS[here].1
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
    let modules: std::collections::BTreeSet<String> =
        ["core", "core::glob", "core::names", "sources", "sources::provider"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let paths: Vec<String> = full_paths(
        "use crate::core::{glob, names::check};\nfn f() { let x = crate::sources::provider::load(); crate::sources::Source::X }",
    )
    .into_iter()
    .map(|(_, p)| p)
    .collect();
    assert_eq!(
        paths,
        [
            "core::glob",
            "core::names::check",
            "sources::Source::X",
            "sources::provider::load",
        ]
    );
    let landed: Vec<Option<String>> = paths.iter().map(|p| module_named(p, &modules)).collect();
    assert_eq!(
        landed,
        [
            Some("core::glob".into()),
            Some("core::names".into()),
            Some("sources".into()),
            Some("sources::provider".into()),
        ]
    );
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_circle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_circle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // rustfmt's multi-line groups, a macro's tokens, a comment, and test code.
    let code = "use crate::config::Config;\n\
                use crate::{\n    apply,\n    sources::Source,\n};\n\
                fn g() {\n    let x = crate::run::go(); // crate::explain\n    tracing::info!(x = %crate::cli::name());\n}\n\
                #[cfg(test)]\nmod tests {\n    use crate::cluster::x;\n}\n";
    let found: Vec<(usize, String)> = crate_paths(code);
    assert_eq!(
        found,
        [
            (1, "config".into()),
            (3, "apply".into()),
            (4, "sources".into()),
            (7, "run".into()),
            (8, "cli".into())
        ]
    );
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
