//! Imports point one way: no cycle between the top-level modules of a crate's `src/`
//! (issue 15). A module's dependencies are the top-level modules its files name through
//! `crate::…` (also in `use crate::{a, b::c}` groups) or through `super::`/`self::` paths
//! that climb to another top-level module; comments and string literals are skipped, so a
//! doc link (`[`crate::repair`]`) is not a dependency. `src/lib.rs`, `src/main.rs` and
//! `src/bin/` are crate roots, not modules.
//!
//! The admin's layering is asserted; the runtime's graph is printed (`cargo nextest run -p
//! miroir-admin --test module_layers --no-capture`) for whoever layers it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Rust source → the tokens that matter for paths, without comments, strings or chars.
fn tokens(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&b, i + 1);
            out.push(Tok::Other);
        } else if (c == 'r' || c == 'b') && raw_string_start(&b, i).is_some() {
            let (hashes, body) = raw_string_start(&b, i).expect("checked");
            i = skip_raw_string(&b, body, hashes);
            out.push(Tok::Other);
        } else if c == 'b' && next == Some('"') {
            i = skip_string(&b, i + 2);
            out.push(Tok::Other);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c == ':' && next == Some(':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            out.push(match c {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// Index after the closing quote of a string whose body starts at `i`.
fn skip_string(b: &[char], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"`, `r#"`, `br##"` …: the number of `#` and where the body starts.
fn raw_string_start(b: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b[j] == 'b' {
        j += 1;
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier such as `for` or `bar`.
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

fn skip_raw_string(b: &[char], mut i: usize, hashes: usize) -> usize {
    while i < b.len() {
        if b[i] == '"' && (1..=hashes).all(|k| b.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// The module path of a file under `src` (`x.rs`, `x/mod.rs` → `[x]`; `x/y.rs` → `[x, y]`);
/// `None` for crate roots.
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().map(String::as_str) == Some("bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// The top-level modules a file's paths lead to (other than its own).
fn file_deps(src: &str, path: &[String]) -> BTreeSet<String> {
    let toks = tokens(src);
    let mut deps = BTreeSet::new();
    // Inline modules (`mod tests { … }`): the module path at each brace depth.
    let mut current: Vec<String> = path.to_vec();
    let mut opened: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(m) if m == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    current.push(name.clone());
                    opened.push(true);
                    i += 3;
                    continue;
                }
            }
            Tok::Open => opened.push(false),
            // Every `}` pops its brace; one that closed an inline module leaves it.
            Tok::Close if opened.pop() == Some(true) => {
                current.pop();
            }
            Tok::Ident(start)
                if matches!(start.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1) == Some(&Tok::PathSep)
                    && (i == 0 || toks[i - 1] != Tok::PathSep) =>
            {
                let mut base: Vec<String> = match start.as_str() {
                    "crate" => Vec::new(),
                    "self" => current.clone(),
                    _ => current[..current.len().saturating_sub(1)].to_vec(),
                };
                let mut j = i + 2;
                while toks.get(j) == Some(&Tok::Ident("super".into()))
                    && toks.get(j + 1) == Some(&Tok::PathSep)
                {
                    base.pop();
                    j += 2;
                }
                let mut targets = Vec::new();
                if let Some(top) = base.first() {
                    targets.push(top.clone());
                } else {
                    match toks.get(j) {
                        Some(Tok::Ident(name)) => targets.push(name.clone()),
                        Some(Tok::Open) => {
                            // A `use` group: the first segment of each item at depth 1.
                            let mut depth = 0;
                            let mut expect_item = true;
                            while let Some(t) = toks.get(j) {
                                match t {
                                    Tok::Open => {
                                        depth += 1;
                                        expect_item = depth == 1;
                                    }
                                    Tok::Close => {
                                        depth -= 1;
                                        if depth == 0 {
                                            j += 1; // past the group's `}`
                                            break;
                                        }
                                    }
                                    Tok::Comma if depth == 1 => expect_item = true,
                                    Tok::Ident(name) if expect_item && depth == 1 => {
                                        // `self` in `crate::{self, …}` is the root itself.
                                        if name != "self" {
                                            targets.push(name.clone());
                                        }
                                        expect_item = false;
                                    }
                                    _ => {}
                                }
                                j += 1;
                            }
                        }
                        _ => {}
                    }
                }
                deps.extend(targets);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(own) = path.first() {
        deps.remove(own);
    }
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = entry.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the other top-level modules it imports, for the crate at `src`.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    let mut found = Vec::new();
    for f in &files {
        let Some(path) = module_path(src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).expect("readable source");
        found.push((path[0].clone(), file_deps(&text, &path)));
    }
    let modules: BTreeSet<String> = found.iter().map(|(m, _)| m.clone()).collect();
    for (m, deps) in found {
        // Only modules count (`crate::RunError` names an item of the crate root).
        graph
            .entry(m)
            .or_default()
            .extend(deps.into_iter().filter(|d| modules.contains(d)));
    }
    graph
}

/// The import cycles: strongly connected components of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on_stack.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

fn describe(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            format!("  {m} → {}", deps.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn crate_src(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
        .join("src")
}

#[test]
fn admin_modules_import_in_one_direction() {
    let graph = module_graph(&crate_src("admin"));
    println!("admin modules:\n{}", describe(&graph));
    assert!(graph.contains_key("state") && graph.contains_key("broadcast"));
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between admin modules: {found:?}\n{}",
        describe(&graph)
    );
    // `state` is the bottom layer: what the handlers, loops and broadcasts build on.
    let above = [
        "broadcast",
        "health",
        "keys",
        "metrics",
        "operator_api",
        "reads",
        "repair",
        "routes",
        "server",
        "tasks",
    ];
    let bad: Vec<&String> = graph["state"]
        .iter()
        .filter(|d| above.contains(&d.as_str()))
        .collect();
    assert!(bad.is_empty(), "state imports {bad:?}");
}

/// Not asserted (the runtime is layered separately); prints what the check finds.
#[test]
fn runtime_modules_point_one_way() {
    let graph = module_graph(&crate_src("runtime"));
    println!("runtime modules:\n{}", describe(&graph));
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles in runtime/src: {found:?}");
    // The transport could be its own crate: nothing in `http/` reaches above it.
    let http = graph.get("http").cloned().unwrap_or_default();
    assert!(http.is_empty(), "runtime/src/http imports {http:?}");
}

#[test]
fn paths_are_resolved_like_rustc() {
    let src = r##"
        //! [`crate::doc_only`]
        use crate::{alpha::{A, B}, beta, self as _};
        use super::gamma::G;
        fn f() { let _ = "crate::in_string"; let _ = r#"crate::raw"#; let c = '"'; crate::delta::f(); }
        mod tests { use super::*; use super::super::own_sibling; use super::super::super::epsilon; }
        /* crate::block_comment */
        fn g<'a>(x: &'a str) -> &'a str { self::inner::h(); x }
    "##;
    let deps = file_deps(src, &["own".to_string(), "child".to_string()]);
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    assert_eq!(deps, ["alpha", "beta", "delta", "epsilon"]);
    let g: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}
