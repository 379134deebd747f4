//! The checked-in `schema/<subgraph>.graphql` files are exactly what the subgraphs serve from
//! `_service { sdl }`, subscriptions included.

use std::path::Path;

use anyhow::Context as _;

/// The repository's `schema/` directory.
const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema");

/// How to bring the files up to date.
const REGENERATE: &str = "cargo run --bin tessera-example -- --export-schema schema";

/// The subgraphs with a `Subscription` root.
const WITH_SUBSCRIPTIONS: [&str; 4] = ["accounts", "inventory", "reviews", "orders"];

#[tokio::test]
async fn checked_in_schema_files_match_what_every_subgraph_serves() -> anyhow::Result<()> {
    let schemas = tessera_example::schemas().await;
    anyhow::ensure!(
        schemas.len() == tessera_example::SUBGRAPHS.len(),
        "expected {} schemas, got {}",
        tessera_example::SUBGRAPHS.len(),
        schemas.len()
    );
    let mut stale = Vec::new();
    for (name, sdl) in &schemas {
        anyhow::ensure!(!sdl.is_empty(), "subgraph {name} served an empty SDL");
        let path = Path::new(SCHEMA_DIR).join(format!("{name}.graphql"));
        let file = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (missing? regenerate the files with `{REGENERATE}`)",
                path.display()
            )
        })?;
        if file != *sdl {
            stale.push(format!("{name} ({})", first_difference(&file, sdl)));
        }
    }
    anyhow::ensure!(
        stale.is_empty(),
        "schema files out of date: {}; regenerate them with `{REGENERATE}`",
        stale.join(", ")
    );
    Ok(())
}

#[tokio::test]
async fn subscriptions_are_part_of_the_federated_sdl() -> anyhow::Result<()> {
    let schemas = tessera_example::schemas().await;
    for name in WITH_SUBSCRIPTIONS {
        let (_, sdl) = schemas
            .iter()
            .find(|(n, _)| *n == name)
            .with_context(|| format!("no schema for subgraph {name}"))?;
        anyhow::ensure!(
            sdl.contains("type Subscription"),
            "the SDL of {name} has no `type Subscription`; subscriptions must be exported in \
             `_service {{ sdl }}` (enable_subscription_in_federation)"
        );
    }
    Ok(())
}

/// Where `file` and `served` first part ways, as `line N: file has "…", served "…"`.
fn first_difference(file: &str, served: &str) -> String {
    let mut file_lines = file.lines();
    let mut served_lines = served.lines();
    let mut line = 1;
    loop {
        match (file_lines.next(), served_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (None, None) => return "differ only in line endings or a trailing newline".to_owned(),
            (a, b) => {
                return format!(
                    "line {line}: file has {:?}, served {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                );
            }
        }
    }
}

#[tokio::test]
async fn checked_in_supergraph_is_what_supergraph_yaml_composes_to() -> anyhow::Result<()> {
    let config = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../supergraph.yaml"));
    let composed = tessera_example::compose_example(Some(config), [127, 0, 0, 1].into())
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let path = Path::new(SCHEMA_DIR).join("supergraph.graphql");
    let file =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        file == composed,
        "schema/supergraph.graphql is out of date ({}); regenerate it with \
         `cargo run --bin tessera -- compose supergraph.yaml -o schema/supergraph.graphql`",
        first_difference(&file, &composed)
    );
    // The composed supergraph is one the router runs.
    tessera::supergraph::Supergraph::parse(&composed)?;
    Ok(())
}
