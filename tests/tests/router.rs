//! The example through the router: the five subgraphs on seeded PostgreSQL databases, the
//! supergraph composed from their SDL, and queries that cross every subgraph.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tessera_kit::Running;
use tessera_tests::{TestDb, post_graphql, spawn_seeded};

/// The five subgraphs and the router in front of them.
struct Example {
    subgraphs: Vec<(TestDb, Running)>,
    router: tessera_example::RunningRouter,
}

impl Example {
    async fn start() -> anyhow::Result<Self> {
        let subgraphs = vec![
            spawn_seeded::<tessera_accounts::Accounts>().await?,
            spawn_seeded::<tessera_products::Products>().await?,
            spawn_seeded::<tessera_inventory::Inventory>().await?,
            spawn_seeded::<tessera_reviews::Reviews>().await?,
            spawn_seeded::<tessera_orders::Orders>().await?,
        ];
        let schemas = tessera_example::schemas().await;
        let sources: Vec<tessera::compose::SubgraphSource> = schemas
            .into_iter()
            .zip(&subgraphs)
            .map(
                |((name, sdl), (_, running))| tessera::compose::SubgraphSource {
                    name: name.to_owned(),
                    url: running.graphql_url(),
                    sdl,
                },
            )
            .collect();
        let composed = tessera::compose::compose(&sources);
        let supergraph = composed
            .supergraph
            .ok_or_else(|| anyhow::anyhow!("composition failed: {:?}", composed.diagnostics))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let router = tessera_example::start_router(&supergraph, listener)?;
        Ok(Self { subgraphs, router })
    }

    fn url(&self) -> String {
        format!("http://{}/graphql", self.router.addr)
    }

    async fn query(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = post_graphql(&self.url(), query, variables).await?;
        anyhow::ensure!(body.get("errors").is_none(), "unexpected errors: {body}");
        Ok(body["data"].clone())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.router.shutdown().await;
        for (db, running) in self.subgraphs {
            running.shutdown().await;
            db.drop().await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_deep_query_crosses_all_five_subgraphs() -> anyhow::Result<()> {
    let example = Example::start().await?;
    let products = tessera_seed::products();
    let stock = tessera_seed::stock();
    let reviews = tessera_seed::reviews();
    let users = tessera_seed::users();
    let upc = products[0].upc.clone();
    let data = example
        .query(
            "query($upc: String!) { product(upc: $upc) { upc name price inStock stock shippingEstimate \
             reviews { rating author { username orders { id } } } } }",
            json!({ "upc": upc }),
        )
        .await?;
    let product = &data["product"];
    assert_eq!(product["name"], json!(products[0].name));
    assert_eq!(product["price"], json!(products[0].price));
    assert_eq!(product["stock"], json!(stock[0].1));
    let expected_estimate = if products[0].price >= 10_000 {
        0
    } else {
        499 + products[0].weight / 2
    };
    assert_eq!(product["shippingEstimate"], json!(expected_estimate));
    let expected_reviews: Vec<&tessera_seed::Review> =
        reviews.iter().filter(|r| r.product_upc == upc).collect();
    let got = product["reviews"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), expected_reviews.len());
    let orders = tessera_seed::orders();
    for review in &got {
        let username = review["author"]["username"].as_str().unwrap_or_default();
        let user = users
            .iter()
            .find(|u| u.username == username)
            .expect("a seeded author");
        let placed = orders.iter().filter(|o| o.buyer_id == user.id).count();
        assert_eq!(
            review["author"]["orders"].as_array().map(Vec::len),
            Some(placed)
        );
    }
    example.stop().await
}

#[tokio::test]
async fn order_items_resolve_products_and_stock_through_other_subgraphs() -> anyhow::Result<()> {
    let example = Example::start().await?;
    let order = &tessera_seed::orders()[0];
    let data = example
        .query(
            "{ order(id: \"1\") { total status buyer { id username } items { quantity unitPrice product { upc name inStock } } } }",
            json!({}),
        )
        .await?;
    let products = tessera_seed::products();
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|(upc, quantity, price)| {
            let product = products
                .iter()
                .find(|p| p.upc == *upc)
                .expect("a seeded product");
            let stocked = tessera_seed::stock()
                .into_iter()
                .find(|(u, _)| u == upc)
                .map_or(0, |(_, q)| q);
            json!({ "quantity": quantity, "unitPrice": price,
                    "product": { "upc": upc, "name": product.name, "inStock": stocked > 0 } })
        })
        .collect();
    let buyer = &tessera_seed::users()[usize::try_from(order.buyer_id - 1)?];
    assert_eq!(
        data["order"],
        json!({
            "total": order.items.iter().map(|(_, q, p)| i64::from(*q) * p).sum::<i64>(),
            "status": order.status,
            "buyer": { "id": order.buyer_id.to_string(), "username": buyer.username },
            "items": items,
        })
    );
    example.stop().await
}

#[tokio::test]
async fn a_mutation_through_the_router_is_seen_by_the_next_query() -> anyhow::Result<()> {
    let example = Example::start().await?;
    let upc = tessera_seed::upc(9);
    let before = tessera_seed::stock()[8].1;
    let data = example
        .query(
            "mutation($upc: String!) { restock(upc: $upc, quantity: 5) { upc stock name } }",
            json!({ "upc": upc }),
        )
        .await?;
    assert_eq!(data["restock"]["stock"], json!(before + 5));
    assert_eq!(
        data["restock"]["name"],
        json!(tessera_seed::products()[8].name)
    );
    example.stop().await
}

#[tokio::test]
async fn a_subgraph_that_goes_away_leaves_partial_data_and_a_coded_error() -> anyhow::Result<()> {
    let mut example = Example::start().await?;
    // Stop inventory (the third subgraph).
    let (db, inventory) = example.subgraphs.remove(2);
    inventory.shutdown().await;
    let body = post_graphql(
        &example.url(),
        "{ users(first: 1) { username } product(upc: \"100001\") { name inStock } }",
        json!({}),
    )
    .await?;
    // `inStock: Boolean!` cannot be fetched: its product becomes null; the rest stays.
    assert_eq!(body["data"]["product"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["users"],
        json!([{ "username": tessera_seed::users()[0].username }]),
        "{body}"
    );
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert!(codes.contains(&"SUBGRAPH_FETCH_FAILED"), "{body}");
    db.drop().await?;
    example.stop().await
}

#[tokio::test]
async fn metrics_count_requests_subgraph_fetches_and_plan_cache_hits() -> anyhow::Result<()> {
    let example = Example::start().await?;
    let query = "{ topProducts(first: 2) { name inStock } }";
    example.query(query, json!({})).await?;
    example.query(query, json!({})).await?;
    let text = reqwest::get(format!("http://{}/metrics", example.router.addr))
        .await?
        .text()
        .await?;
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        line("tessera_subgraph_requests_total{outcome=\"ok\",subgraph=\"products\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        line("tessera_subgraph_requests_total{outcome=\"ok\",subgraph=\"inventory\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        line("tessera_plan_cache_total{result=\"hit\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        line("tessera_plan_cache_total{result=\"miss\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        line("tessera_http_requests_total{route=\"/graphql\",status=\"200\"}"),
        Some(2.0),
        "{text}"
    );
    example.stop().await
}

#[tokio::test]
async fn me_works_through_the_router_with_the_user_header() -> anyhow::Result<()> {
    let example = Example::start().await?;
    let query = "{ me { id username orders { id } } }";
    let body = tessera_tests::post_graphql_with_headers(
        &example.url(),
        query,
        json!({}),
        &[("x-user-id", "3")],
    )
    .await?;
    anyhow::ensure!(body.get("errors").is_none(), "unexpected errors: {body}");
    assert_eq!(body["data"]["me"]["id"], "3");
    let username = &tessera_seed::users()[2].username;
    assert_eq!(body["data"]["me"]["username"], json!(username));
    // Without the header, nobody is signed in.
    let anonymous = example.query(query, json!({})).await?;
    assert_eq!(anonymous["me"], Value::Null);
    example.stop().await
}
