//! Hot reload: the router composes from a `supergraph.yaml`, notices a changed schema file,
//! recomposes and swaps the supergraph in while requests run; a broken schema keeps the last
//! good supergraph in service and shows on `/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_tests::{SubgraphOptions, post_graphql, spawn_subgraph, wait_until};

const POLL: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_changed_schema_file_is_recomposed_and_swapped_in_without_failing_requests()
-> anyhow::Result<()> {
    let products = spawn_subgraph::<tessera_products::Products>(&SubgraphOptions {
        seed: true,
        ..SubgraphOptions::default()
    })
    .await?;
    let full_sdl = tessera_kit::sdl::<tessera_products::Products>().await;
    // The first version of the schema file lacks `Product.description`.
    let without_description = remove_field(&full_sdl, "description: String!");
    assert_ne!(without_description, full_sdl, "the test removes a field");
    let dir = tessera_tests::TempDir::create("reload")?;
    let schema = dir.path().join("products.graphql");
    std::fs::write(&schema, &without_description)?;
    let config = dir.path().join("supergraph.yaml");
    std::fs::write(
        &config,
        format!(
            "federation_version: =2.5.0\nsubgraphs:\n  products:\n    routing_url: {}\n    schema:\n      file: ./products.graphql\n",
            products.graphql_url()
        ),
    )?;

    let (live, watcher) = tessera::reload::start(
        config.clone(),
        tessera::engine::EngineConfig::default(),
        POLL,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let app = tessera::server::app_live(live, &tessera::server::ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = tessera::server::serve(listener, app, std::future::pending(), 2).await;
    });
    let url = format!("http://{addr}/graphql");

    let described = "{ products(first: 1) { nodes { upc description } } }";
    let before = post_graphql(&url, described, json!({})).await?;
    assert_eq!(
        before["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_VALIDATION_FAILED"),
        "description is not in the first supergraph: {before}"
    );

    // Requests run the whole time; none may fail across the swaps.
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let load = {
        let (url, failures, served) = (url.clone(), failures.clone(), served.clone());
        tokio::spawn(async move {
            loop {
                match post_graphql(
                    &url,
                    "{ products(first: 2) { nodes { upc name } } }",
                    json!({}),
                )
                .await
                {
                    Ok(body)
                        if body.get("errors").is_none()
                            && body["data"]["products"]["nodes"].is_array() =>
                    {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    std::fs::write(&schema, &full_sdl)?;
    let changed = Instant::now();
    wait_until(
        "the new field is queryable",
        Duration::from_secs(10),
        || async {
            post_graphql(&url, described, json!({}))
                .await
                .is_ok_and(|body| body["data"]["products"]["nodes"][0]["description"].is_string())
        },
    )
    .await?;
    let took = changed.elapsed();
    eprintln!(
        "hot reload: new field queryable {took:?} after the schema file changed (poll every {POLL:?})"
    );
    assert!(took < POLL * 10, "recomposed after {took:?}");

    // Break the schema: the last good supergraph keeps serving, and /health says why.
    std::fs::write(&schema, "type Query {\n  broken(: Int\n}\n")?;
    let health = format!("http://{addr}/health");
    wait_until(
        "health reports the composition errors",
        Duration::from_secs(10),
        || async {
            let Ok(response) = reqwest::get(&health).await else {
                return false;
            };
            response.json::<Value>().await.is_ok_and(|body| {
                body["status"] == "degraded"
                    && body["composition_errors"]
                        .as_array()
                        .is_some_and(|e| !e.is_empty())
            })
        },
    )
    .await?;
    let still = post_graphql(&url, described, json!({})).await?;
    assert!(
        still["data"]["products"]["nodes"][0]["description"].is_string(),
        "{still}"
    );

    load.abort();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during the swaps"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
    watcher.abort();
    server.abort();
    products.shutdown().await;
    Ok(())
}

/// `sdl` without the field declared by the line starting with `declaration`, and without the
/// description block just above it.
fn remove_field(sdl: &str, declaration: &str) -> String {
    let mut lines: Vec<&str> = sdl.lines().collect();
    if let Some(at) = lines
        .iter()
        .position(|l| l.trim_start().starts_with(declaration))
    {
        let mut start = at;
        if at > 0 && lines[at - 1].trim() == "\"\"\"" {
            start = lines[..at - 1]
                .iter()
                .rposition(|l| l.trim() == "\"\"\"")
                .unwrap_or(at);
        }
        lines.drain(start..=at);
    }
    lines.join("\n")
}

/// `/health`'s status: `ok` or `degraded`.
async fn health_status(url: &str) -> String {
    let Ok(response) = reqwest::get(url).await else {
        return String::new();
    };
    response
        .json::<Value>()
        .await
        .map(|body| body["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn health_recovers_when_an_unreadable_source_reads_again_unchanged() -> anyhow::Result<()> {
    let sdl = tessera_kit::sdl::<tessera_products::Products>().await;
    let dir = tessera_tests::TempDir::create("reload-health")?;
    let schema = dir.path().join("products.graphql");
    std::fs::write(&schema, &sdl)?;
    let config = dir.path().join("supergraph.yaml");
    std::fs::write(
        &config,
        "federation_version: =2.5.0\nsubgraphs:\n  products:\n    routing_url: http://127.0.0.1:9/graphql\n    schema:\n      file: ./products.graphql\n",
    )?;
    let (live, watcher) = tessera::reload::start(
        config.clone(),
        tessera::engine::EngineConfig::default(),
        POLL,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let app = tessera::server::app_live(live, &tessera::server::ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let health = format!("http://{}/health", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = tessera::server::serve(listener, app, std::future::pending(), 1).await;
    });
    // The source goes away for a while (a subgraph restarting, a file being replaced)…
    std::fs::remove_file(&schema)?;
    wait_until("health is degraded", Duration::from_secs(10), || async {
        health_status(&health).await == "degraded"
    })
    .await?;
    // …and comes back exactly as it was: nothing to recompose, and nothing wrong any more.
    std::fs::write(&schema, &sdl)?;
    wait_until("health is ok again", Duration::from_secs(10), || async {
        health_status(&health).await == "ok"
    })
    .await?;
    watcher.abort();
    server.abort();
    Ok(())
}
