//! Composition cases: each folder of `tests/compose/` holds subgraph SDL (`<subgraph>.graphql`,
//! routed at `http://<subgraph>.test/graphql`) and what composing them must give:
//! - `supergraph.graphql`: the expected supergraph, which the router must also be able to load;
//! - or `diagnostics.txt`: the expected errors, one `Display`ed diagnostic per line, in the
//!   composer's order.
//!
//! A folder with a `KNOWN_BUG.md` documents a case the composer gets wrong today. Its expected
//! files say what is *correct*; the runner reports whether the bug still reproduces and does not
//! fail on it, so CI stays green until the fix lands (then delete `KNOWN_BUG.md`).
//!
//! `UPDATE_EXPECT=1 cargo test --test compose` rewrites the expected files of the other cases
//! from the composer's output. Review that diff: the expected files are the specification.

use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tessera::compose::{self, Composed, Severity, SubgraphSource};
use tessera::supergraph::Supergraph;

const SUPERGRAPH: &str = "supergraph.graphql";
const DIAGNOSTICS: &str = "diagnostics.txt";
const KNOWN_BUG: &str = "KNOWN_BUG.md";

/// What one case expects.
enum Expected {
    /// Composition succeeds with exactly this supergraph.
    Supergraph(String),
    /// Composition fails with exactly these errors.
    Diagnostics(String),
}

impl Expected {
    fn file_name(&self) -> &'static str {
        match self {
            Self::Supergraph(_) => SUPERGRAPH,
            Self::Diagnostics(_) => DIAGNOSTICS,
        }
    }

    fn text(&self) -> &str {
        match self {
            Self::Supergraph(text) | Self::Diagnostics(text) => text,
        }
    }
}

/// One folder.
struct Case {
    name: String,
    dir: PathBuf,
    subgraphs: Vec<SubgraphSource>,
    expected: Expected,
    known_bug: bool,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn load_case(dir: &Path) -> Result<Case, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut subgraphs = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(file) = file else { continue };
        let Some(subgraph) = file.strip_suffix(".graphql") else {
            continue;
        };
        if file == SUPERGRAPH {
            continue;
        }
        subgraphs.push(SubgraphSource {
            name: subgraph.to_owned(),
            url: format!("http://{subgraph}.test/graphql"),
            sdl: read(&path),
        });
    }
    if subgraphs.is_empty() {
        return Err(format!("{name}: no subgraph SDL (`<subgraph>.graphql`)"));
    }
    let supergraph = dir.join(SUPERGRAPH);
    let diagnostics = dir.join(DIAGNOSTICS);
    let expected = match (supergraph.exists(), diagnostics.exists()) {
        (true, false) => Expected::Supergraph(read(&supergraph)),
        (false, true) => Expected::Diagnostics(read(&diagnostics)),
        _ => {
            return Err(format!(
                "{name}: needs exactly one of {SUPERGRAPH} or {DIAGNOSTICS}"
            ));
        }
    };
    Ok(Case {
        name,
        known_bug: dir.join(KNOWN_BUG).exists(),
        dir: dir.to_owned(),
        subgraphs,
        expected,
    })
}

/// The composer's answer in the form of the expected file: the supergraph for success cases,
/// the error lines for failure cases. `Err` when it cannot even be compared (a panic, or a
/// success case that failed to compose).
fn actual_text(case: &Case, composed: &Composed) -> Result<String, String> {
    let errors: Vec<String> = composed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    match (&case.expected, &composed.supergraph) {
        (Expected::Supergraph(_), Some(supergraph)) => Ok(supergraph.clone()),
        (Expected::Supergraph(_), None) => Err(format!(
            "expected a supergraph but composition failed:\n{}",
            indent(&errors.join("\n"))
        )),
        (Expected::Diagnostics(_), Some(_)) if errors.is_empty() => Err(
            "expected composition to fail but it produced a supergraph (no error diagnostics)"
                .to_owned(),
        ),
        (Expected::Diagnostics(_), _) => Ok(errors.iter().map(|e| format!("{e}\n")).collect()),
    }
}

/// Composes without letting a composer panic take the whole run down.
fn compose_catching(subgraphs: &[SubgraphSource]) -> Result<Composed, String> {
    panic::catch_unwind(AssertUnwindSafe(|| compose::compose(subgraphs))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(non-string panic payload)".to_owned());
        format!("composition panicked: {message}")
    })
}

/// Runs one case; `Err` describes every way it differs from what is expected.
fn check(case: &Case, update: bool) -> Result<(), String> {
    let mut problems = String::new();
    if let Expected::Supergraph(expected) = &case.expected
        && let Err(err) = Supergraph::parse(expected)
    {
        let _ = writeln!(
            problems,
            "the expected {SUPERGRAPH} does not load in the router: {err}"
        );
    }
    let actual =
        match compose_catching(&case.subgraphs).and_then(|composed| actual_text(case, &composed)) {
            Ok(actual) => actual,
            Err(err) => {
                problems.push_str(&err);
                return Err(problems);
            }
        };
    if actual != case.expected.text() {
        if update && !case.known_bug {
            let path = case.dir.join(case.expected.file_name());
            std::fs::write(&path, &actual).map_err(|err| format!("{}: {err}", path.display()))?;
            report(&format!("updated {}", path.display()));
        } else {
            let _ = writeln!(
                problems,
                "{} differs (- expected, + actual):\n{}",
                case.expected.file_name(),
                diff(case.expected.text(), &actual)
            );
        }
    }
    if matches!(case.expected, Expected::Supergraph(_))
        && let Err(err) = Supergraph::parse(&actual)
    {
        let _ = writeln!(
            problems,
            "the composed supergraph does not load in the router: {err}"
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// A line diff with three lines of context around each change; `@@` separates hunks.
fn diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            lines.push((' ', old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', old[i]));
            i += 1;
        } else {
            lines.push(('+', new[j]));
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        lines.push(('~', "(the files differ in their final newline)"));
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let mut out = String::new();
    let mut last_printed: Option<usize> = None;
    for (k, (mark, text)) in lines.iter().enumerate() {
        let near = changed
            .iter()
            .any(|&c| k + CONTEXT >= c && k <= c + CONTEXT);
        if !near {
            continue;
        }
        if last_printed.is_some_and(|p| p + 1 != k) {
            out.push_str("    @@\n");
        }
        let _ = writeln!(out, "    {mark}{text}");
        last_printed = Some(k);
    }
    out
}

/// Writes past the test harness's output capture, so skipped known bugs show in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn every_composition_case_matches_its_expected_files() {
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/compose exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no composition cases found");

    let mut failures = Vec::new();
    let (mut passed, mut known) = (0, 0);
    for dir in &dirs {
        let case = match load_case(dir) {
            Ok(case) => case,
            Err(err) => {
                failures.push(err);
                continue;
            }
        };
        let result = check(&case, update);
        match (case.known_bug, result) {
            (false, Ok(())) => passed += 1,
            (false, Err(problems)) => failures.push(format!("{}:\n{problems}", case.name)),
            (true, Err(problems)) => {
                known += 1;
                report(&format!(
                    "SKIPPED known bug: {} (still reproduces; see {})",
                    case.name,
                    case.dir.join(KNOWN_BUG).display()
                ));
                // Captured by the test harness; shown with `--nocapture`.
                println!("{}:\n{problems}", case.name);
            }
            (true, Ok(())) => {
                known += 1;
                report(&format!(
                    "SKIPPED known bug: {} now PASSES; delete {} to enforce it",
                    case.name,
                    case.dir.join(KNOWN_BUG).display()
                ));
            }
        }
    }
    report(&format!(
        "composition cases: {passed} passed, {known} known bugs skipped, {} failed",
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "{} composition case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
