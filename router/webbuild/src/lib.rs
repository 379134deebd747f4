//! Build-script helper for the front ends the binaries serve (GraphiQL in the router, the
//! example's dashboard).
//!
//! [`embed`] installs a front end's npm dependencies from its lockfile (`npm ci`, into
//! `OUT_DIR`, so the source tree stays clean and nothing third-party is committed), runs its
//! `build.mjs` (which bundles it and writes `index.html`), compresses every file with gzip and
//! brotli, and writes `$OUT_DIR/<name>.rs`: a slice expression of the caller's asset type, one
//! entry per file, with its bytes in every encoding `include_bytes!`'d. Nothing is fetched at
//! run time.
//!
//! `TESSERA_SKIP_WEB_BUILD=1` skips all of it (for machines without Node): the slice is empty,
//! and the binary says so where the page would be.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const SKIP_VAR: &str = "TESSERA_SKIP_WEB_BUILD";
const COMPRESS: &str = include_str!("compress.mjs");

/// Bundles the front end in `web_dir` (relative to the calling crate's manifest) and writes
/// `$OUT_DIR/<name>.rs`, a `&[asset_type]` expression; for example, with
/// `asset_type = "crate::server::assets::Asset"`:
///
/// ```text
/// pub static GRAPHIQL: &[Asset] = include!(concat!(env!("OUT_DIR"), "/graphiql.rs"));
/// ```
///
/// The asset type needs the fields `name`, `content_type`, `immutable`, `etag` (`&'static str`
/// or `bool`) and `identity`, `gzip`, `br` (`&'static [u8]`).
///
/// # Panics
///
/// When npm or the bundler fails: a build script reports errors by panicking, and the message
/// says what to run by hand.
pub fn embed(web_dir: &str, name: &str, asset_type: &str) {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let web_dir = manifest_dir.join(web_dir);
    for input in ["package.json", "package-lock.json", "build.mjs", "src"] {
        println!("cargo:rerun-if-changed={}", web_dir.join(input).display());
    }
    println!("cargo:rerun-if-env-changed={SKIP_VAR}");
    let table = out_dir.join(format!("{name}.rs"));
    if std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
        println!(
            "cargo:warning={SKIP_VAR} is set: the {name} front end is not built into this binary"
        );
        write(&table, "&[]");
        return;
    }
    let work = out_dir.join(format!("web-{name}"));
    let dist = work.join("dist");
    if let Err(err) = stage(&web_dir, &work) {
        panic!("staging {} in {}: {err}", web_dir.display(), work.display());
    }
    install(&work);
    run(
        Command::new("node")
            .arg("build.mjs")
            .env("OUT_DIR_WEB", &dist)
            .current_dir(&work),
        &format!("bundling {name} (node build.mjs in {})", work.display()),
    );
    write(&work.join("compress.mjs"), COMPRESS);
    run(
        Command::new("node")
            .arg("compress.mjs")
            .arg(&dist)
            .current_dir(&work),
        &format!("compressing {name}"),
    );
    write(&table, &entries(&dist, asset_type));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run from a build script"))
}

fn write(path: &Path, text: &str) {
    if let Err(err) = std::fs::write(path, text) {
        panic!("writing {}: {err}", path.display());
    }
}

/// Copies the front end's sources into `work`, leaving its `node_modules` in place.
fn stage(web_dir: &Path, work: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(work)?;
    let src = work.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src)?;
    }
    copy_tree(&web_dir.join("src"), &src)?;
    for file in ["package.json", "package-lock.json", "build.mjs"] {
        std::fs::copy(web_dir.join(file), work.join(file))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `npm ci` from the lockfile, unless `node_modules` already holds exactly that lockfile's
/// packages (a stamp beside them records which). Install scripts are not run: the bundler's
/// platform binary comes as an optional dependency.
fn install(work: &Path) {
    let lock = std::fs::read(work.join("package-lock.json")).unwrap_or_default();
    let stamp = work.join("node_modules").join(".tessera-lock");
    if std::fs::read(&stamp).is_ok_and(|installed| installed == lock) {
        return;
    }
    run(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(work),
        &format!(
            "installing the front end's npm packages (npm ci in {})",
            work.display()
        ),
    );
    if let Err(err) = std::fs::write(&stamp, lock) {
        panic!("writing {}: {err}", stamp.display());
    }
}

fn run(command: &mut Command, what: &str) {
    let status = command.status().unwrap_or_else(|err| {
        panic!(
            "{what}: cannot start {:?}: {err}. Node.js 20+ and npm build the web front ends; \
             set {SKIP_VAR}=1 to build without them",
            command.get_program()
        )
    });
    assert!(status.success(), "{what} failed with {status}");
}

/// The slice expression: every bundled file (not its compressed copies), sorted by name.
fn entries(dist: &Path, asset_type: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dist)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dist.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.ends_with(".gz") && !name.ends_with(".br"))
        .collect();
    names.sort();
    assert!(
        names.iter().any(|name| name == "index.html"),
        "the bundle in {} has no index.html",
        dist.display()
    );
    let mut out = String::from("&[\n");
    for name in names {
        let path = dist.join(&name);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        let content_type = content_type(&name)
            .unwrap_or_else(|| panic!("no content type known for {name} (add its extension)"));
        let _ = writeln!(
            out,
            "    {asset_type} {{ name: {name:?}, content_type: {content_type:?}, immutable: {immutable}, \
             etag: \"\\\"{etag:016x}\\\"\", identity: include_bytes!({path:?}), \
             gzip: include_bytes!({gz:?}), br: include_bytes!({br:?}) }},",
            immutable = name != "index.html",
            etag = fnv1a(&bytes),
            path = path.display().to_string(),
            gz = format!("{}.gz", path.display()),
            br = format!("{}.br", path.display()),
        );
    }
    out.push(']');
    out
}

fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => return None,
    })
}

/// A 64-bit FNV-1a hash: the entity tag of a file's contents.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
