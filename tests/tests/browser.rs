//! GraphiQL and the shop's dashboard in headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/js/browser`), against the router and the five subgraphs.
//!
//! The pages may reach nothing but the router: every request to another host fails the run,
//! as do CSP violations and uncaught page errors. Each test saves screenshots under
//! `target/browser/` and, on failure, prints the browser's console.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_tests::{NodeScript, Shop, ShopOptions};

const TIMEOUT: Duration = Duration::from_secs(90);

/// `target/browser/`, where screenshots go.
fn screenshots() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Reads the script's JSON lines to its last one (`{"ok": …}`), placing an order through the
/// router every 300 ms once `order_when` is seen (the page cannot make the events itself).
/// Fails with everything the script printed (its errors and the browser console) unless the
/// script ends with `"ok": true`.
async fn outcome(
    shop: &Shop,
    script: NodeScript,
    order_when: Option<&str>,
) -> anyhow::Result<Value> {
    let NodeScript {
        mut child,
        mut lines,
    } = script;
    let mut printed = Vec::new();
    let mut ordering = false;
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let run = async {
        loop {
            tokio::select! {
                _ = tick.tick(), if ordering => {
                    shop.place_order(3, 1, 1).await?;
                }
                line = lines.next_line() => {
                    let Some(line) = line? else { break };
                    printed.push(line.clone());
                    let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
                    if order_when.is_some_and(|key| message.get(key).is_some()) {
                        ordering = true;
                    }
                }
            }
        }
        anyhow::Ok(())
    };
    let finished = tokio::time::timeout(TIMEOUT, run).await;
    let status = child.wait().await?;
    let last = printed.iter().rev().find_map(|line| {
        serde_json::from_str::<Value>(line)
            .ok()
            .filter(|v| v.get("ok").is_some())
    });
    match (finished, last) {
        (Ok(Ok(())), Some(result)) if status.success() && result["ok"] == true => {
            // The scripts fail on these themselves; the test says so too.
            assert_eq!(result["externalRequests"], json!([]), "{result}");
            assert_eq!(result["cspViolations"], json!([]), "{result}");
            Ok(result)
        }
        (finished, _) => anyhow::bail!(
            "the browser run failed ({status}, {finished:?}); it printed:\n{}",
            printed.join("\n")
        ),
    }
}

#[tokio::test]
async fn graphiql_runs_the_readme_query_a_subscription_and_shows_the_plan() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let dir = screenshots()?;
    let page = format!("http://{}/", shop.router.addr);
    let subscription = dir.join("graphiql-subscription.png");
    let query = dir.join("graphiql-query.png");
    let script = NodeScript::start(
        "browser/graphiql.mjs",
        &[
            "--url",
            &page,
            "--screenshot",
            &subscription.display().to_string(),
            "--query-screenshot",
            &query.display().to_string(),
            "--timeout-ms",
            "60000",
        ],
    )?;
    let result = outcome(&shop, script, Some("subscribed")).await?;
    let event = result["eventText"].as_str().unwrap_or_default();
    assert!(event.contains("\"orderPlaced\""), "{result}");
    // The subscription's plan reached the panel with its first event.
    let plan = result["subscriptionPlan"].as_str().unwrap_or_default();
    assert!(
        plan.contains("Subscription {") && plan.contains("Fetch(service: \"orders\")"),
        "{result}"
    );
    assert!(std::fs::metadata(&subscription)?.len() > 0);
    assert!(std::fs::metadata(&query)?.len() > 0);
    shop.stop().await
}

#[tokio::test]
async fn the_dashboard_shows_orders_placed_through_the_router_within_two_seconds()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let dir = screenshots()?;
    let page = format!(
        "http://{}{}",
        shop.router.addr,
        tessera_example::DASHBOARD_PATH
    );
    let screenshot = dir.join("dashboard.png");
    let script = NodeScript::start(
        "browser/dashboard.mjs",
        &[
            "--url",
            &page,
            "--screenshot",
            &screenshot.display().to_string(),
            "--orders",
            "20",
            "--timeout-ms",
            "60000",
        ],
    )?;
    let result = outcome(&shop, script, None).await?;
    let latencies: Vec<u64> = serde_json::from_value(result["latenciesMs"].clone())?;
    assert_eq!(latencies.len(), 20, "{result}");
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < 2000,
        "an order took {slowest} ms to show: {result}"
    );
    let total_before = result["ordersTotalBefore"].as_u64().unwrap_or_default();
    let total_after = result["ordersTotalAfter"].as_u64().unwrap_or_default();
    assert!(total_after >= total_before + 20, "{result}");
    // The figure the closing note reports; also in target/browser/dashboard.json.
    println!(
        "dashboard: mutation → DOM over 20 orders: p50 {} ms, p95 {} ms, max {slowest} ms",
        result["p50Ms"], result["p95Ms"]
    );
    std::fs::write(dir.join("dashboard.json"), result.to_string())?;
    assert!(std::fs::metadata(&screenshot)?.len() > 0);
    shop.stop().await
}

/// Hosts that appear in the bundled scripts as text, never as something the page loads: XML
/// namespaces (`createElementNS`) and links in error messages and the About/keymap anchors of
/// GraphiQL and React. A new host here is a dependency change for a human to look at.
const MENTIONED_HOSTS: [&str; 7] = [
    "www.w3.org",
    "react.dev",
    "github.com",
    "codemirror.net",
    "commonmark.org",
    "en.wikipedia.org",
    "yarnpkg.com",
];

/// The `grep` of the issue, over every embedded page, script and style: pages and styles name
/// no other origin at all (styles' fonts are `data:` URLs), and scripts only mention the hosts
/// above, never in a position that loads something.
#[test]
fn embedded_pages_scripts_and_styles_load_nothing_from_other_origins() {
    let bundles = [
        ("graphiql", tessera::server::assets::GRAPHIQL),
        ("dashboard", tessera_example::DASHBOARD),
    ];
    let absolute = regex::Regex::new(r#"(?i)\b(?:https?|wss?)://([a-z0-9.-]+)"#).expect("regex");
    let loading = regex::Regex::new(
        r#"(?i)(?:src\s*[=:]\s*|href\s*=\s*|url\(\s*|@import\s+|import\(\s*|importScripts\(\s*|fetch\(\s*|WebSocket\(\s*|EventSource\(\s*)["']?(?:https?:|wss?:)?//"#,
    )
    .expect("regex");
    for (bundle, assets) in bundles {
        assert!(!assets.is_empty(), "{bundle} is embedded");
        for asset in assets {
            let text = String::from_utf8_lossy(asset.identity);
            let hosts: std::collections::BTreeSet<&str> = absolute
                .captures_iter(&text)
                .filter_map(|c| c.get(1).map(|m| m.as_str()))
                .collect();
            if asset.name.ends_with(".js") {
                let unknown: Vec<_> = hosts
                    .iter()
                    .filter(|host| !MENTIONED_HOSTS.contains(&host.to_ascii_lowercase().as_str()))
                    .collect();
                assert!(unknown.is_empty(), "{bundle}/{}: {unknown:?}", asset.name);
            } else {
                assert!(hosts.is_empty(), "{bundle}/{}: {hosts:?}", asset.name);
            }
            let loads: Vec<_> = loading
                .find_iter(&text)
                .map(|m| text[m.start()..].chars().take(60).collect::<String>())
                .collect();
            assert!(
                loads.is_empty(),
                "{bundle}/{} loads from elsewhere: {loads:?}",
                asset.name
            );
        }
    }
}
