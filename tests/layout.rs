//! The source layout the design asks for: the library's modules form a one-way pipeline (no two
//! of them import each other, directly or around a loop), and only the binary's own files know
//! clap or anyhow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The binary's files: everything else under src/ is the library.
const BINARY: &[&str] = &["main.rs", "cli.rs", "cmd", "exit.rs", "logging.rs", "sink"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`stream/task.rs` → `stream`), and whether it is
/// one of the binary's.
fn module_of(path: &Path) -> (String, bool) {
    let rel = path.strip_prefix(src()).expect("under src/");
    let first = rel
        .components()
        .next()
        .expect("a path component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let binary = BINARY.contains(&first.as_str());
    (first.trim_end_matches(".rs").to_owned(), binary)
}

/// The code of a file without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("reading a source file");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn library_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|(m, binary)| !binary && m != "lib")
        .map(|(m, _)| m)
        .collect();
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let (module, binary) = module_of(file);
        if binary || module == "lib" {
            continue;
        }
        let code = code(file);
        let entry = imports.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != module && modules.contains(&name) {
                entry.insert(name);
            }
        }
    }
    imports
}

#[test]
fn library_modules_import_each_other_one_way_only() {
    let imports = library_imports();
    assert!(imports.len() > 10, "found the modules: {imports:?}");
    // Depth-first search for a cycle.
    fn visit<'a>(
        m: &'a str,
        imports: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|p| *p == m) {
            panic!("import cycle: {} -> {m}", path[start..].join(" -> "));
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for next in imports.get(m).into_iter().flatten() {
            visit(next, imports, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in imports.keys() {
        visit(m, &imports, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_pipeline_runs_one_way() {
    let imports = library_imports();
    // Each stage may use the earlier ones, never a later one.
    let order = ["discovery", "plan", "registry", "watcher"];
    for (i, earlier) in order.iter().enumerate() {
        for later in &order[i + 1..] {
            assert!(
                !imports.get(*earlier).is_some_and(|m| m.contains(*later)),
                "{earlier} imports {later}: {imports:?}"
            );
        }
    }
    for pure in ["plan", "matcher", "tiers", "workload", "event"] {
        let uses = &imports[pure];
        assert!(
            !uses.contains("client") && !uses.contains("stream") && !uses.contains("registry"),
            "{pure} is pure but uses {uses:?}"
        );
    }
}

#[test]
fn only_the_binary_knows_clap_and_anyhow() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let (_, binary) = module_of(&file);
        if binary {
            continue;
        }
        let code = code(&file);
        for word in ["clap", "anyhow"] {
            assert!(
                !code.contains(word),
                "{} uses {word}, which only the binary may",
                file.display()
            );
        }
    }
}
