//! The stages depend on each other in one direction only (see the crate's layout): a test
//! reads every source file and fails on a `crate::` path that points against it.

/// Each top-level module and its place in the chain; a module may use only modules of a lower
/// rank. Shared leaves (errors, bodies, metrics, JSON text, header rules) come first.
const RANKS: [(&str, u8); 17] = [
    ("error", 0),
    ("body", 0),
    ("metrics", 0),
    ("jsontext", 0),
    ("headers", 0),
    ("compose", 1),
    ("supergraph", 2),
    ("request", 3),
    ("plan", 4),
    ("execute", 5),
    ("engine", 6),
    ("live", 7),
    ("reload", 8),
    ("subscribe", 9),
    ("server", 10),
    ("layering", 11),
    ("main", 11),
];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// Every `(file, line, from, to)` where module `from` names module `to` of a rank not below it.
fn violations(src: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Ok(relative) = path.strip_prefix(src) else {
                continue;
            };
            let first = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default();
            let from = first.trim_end_matches(".rs");
            if from == "lib" {
                continue;
            }
            let Some(from_rank) = rank(from) else {
                out.push(format!(
                    "{}: module `{from}` has no rank",
                    relative.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (at, _) in line.match_indices("crate::") {
                    let to: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if to == from || to.is_empty() {
                        continue;
                    }
                    match rank(&to) {
                        Some(to_rank) if to_rank < from_rank => {}
                        _ => out.push(format!(
                            "{}:{}: `{from}` uses `crate::{to}`",
                            relative.display(),
                            number + 1
                        )),
                    }
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_stage_imports_a_later_stage() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the stage order:\n{}",
        found.join("\n")
    );
}

#[test]
fn an_import_against_the_order_is_found() {
    let dir = std::env::temp_dir().join(format!("tessera-layering-{}", std::process::id()));
    let plan = dir.join("plan");
    std::fs::create_dir_all(&plan).expect("a temp dir");
    std::fs::write(
        plan.join("x.rs"),
        "use crate::execute::merge::write_name;\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("execute.rs"),
        "use crate::plan::PlanNode;\n// crate::server\n",
    )
    .expect("write");
    let found = violations(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found, ["plan/x.rs:1: `plan` uses `crate::execute`"]);
}
