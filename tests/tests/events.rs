//! Events: the outbox, the Redis bus shared by replicas, subscriptions over a real
//! `graphql-transport-ws` client, and the order saga.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tessera_kit::Running;
use tessera_tests::{
    PrivateRedis, REDIS_URL, SubgraphOptions, TestDb, WsClient, post_graphql, spawn_subgraph,
    unique_prefix, wait_until,
};

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const STOCK_CHANGED: &str =
    "subscription($upc: String) { stockChanged(upc: $upc) { upc stock delta reason } }";

/// Whether `running`'s `/health` says its event bus is connected.
async fn bus_ready(running: &Running) -> bool {
    let url = format!("http://{}/health", running.addr);
    match reqwest::get(&url).await {
        Ok(response) => response
            .json::<Value>()
            .await
            .is_ok_and(|body| body["events"] == "ok"),
        Err(_) => false,
    }
}

async fn restock(running: &Running, upc: &str, quantity: i64) -> anyhow::Result<Value> {
    let body = post_graphql(
        &running.graphql_url(),
        "mutation($upc: String!, $q: Int!) { restock(upc: $upc, quantity: $q) { upc stock } }",
        json!({ "upc": upc, "q": quantity }),
    )
    .await?;
    anyhow::ensure!(body.get("errors").is_none(), "restock failed: {body}");
    Ok(body["data"]["restock"].clone())
}

/// Restocks on `writer` until `subscriber` delivers a change on its subscription `id`:
/// graphql-transport-ws does not acknowledge `subscribe`, so the first restocks may land
/// before the server-side stream exists. Returns the event.
async fn restock_until_delivered(
    writer: &Running,
    client: &mut WsClient,
    id: &str,
    upc: &str,
) -> anyhow::Result<Value> {
    for _ in 0..50 {
        restock(writer, upc, 1).await?;
        if let Ok(payload) = client.next_payload(id, Duration::from_millis(200)).await {
            return Ok(payload);
        }
    }
    anyhow::bail!("no stockChanged event reached the subscriber")
}

fn inventory_options(db: &TestDb, redis_url: &str, prefix: &str) -> SubgraphOptions {
    SubgraphOptions {
        database_url: Some(db.url.clone()),
        redis_url: Some(redis_url.to_owned()),
        event_prefix: prefix.to_owned(),
        seed: true,
        ..SubgraphOptions::default()
    }
}

#[tokio::test]
async fn a_mutation_on_one_replica_reaches_a_websocket_subscriber_of_another() -> anyhow::Result<()>
{
    let db = TestDb::create().await?;
    // A Redis of the test's own, so its client list shows only these two replicas.
    let redis = PrivateRedis::start().await?;
    let opts = inventory_options(&db, &redis.url(), &unique_prefix());
    let first = spawn_subgraph::<tessera_inventory::Inventory>(&opts).await?;
    let second = spawn_subgraph::<tessera_inventory::Inventory>(&opts).await?;
    for replica in [&first, &second] {
        wait_until("the replica subscribes to redis", EVENT_TIMEOUT, || {
            bus_ready(replica)
        })
        .await?;
    }
    let upc = tessera_seed::upc(1);
    let mut clients = Vec::new();
    for n in 0..3 {
        let mut client = WsClient::connect(&second.ws_url()).await?;
        client
            .subscribe(&format!("s{n}"), STOCK_CHANGED, json!({ "upc": upc }))
            .await?;
        clients.push(client);
    }

    let event = restock_until_delivered(&first, &mut clients[0], "s0", &upc).await?;
    assert_eq!(event["data"]["stockChanged"]["upc"], json!(upc));
    assert_eq!(event["data"]["stockChanged"]["delta"], json!(1));
    assert_eq!(event["data"]["stockChanged"]["reason"], json!("RESTOCK"));
    for (n, client) in clients.iter_mut().enumerate().skip(1) {
        let payload = client.next_payload(&format!("s{n}"), EVENT_TIMEOUT).await?;
        assert_eq!(payload["data"]["stockChanged"]["upc"], json!(upc));
    }

    // Three subscribers on one replica, none on the other: still one pattern subscription per
    // process.
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let clients_list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await?;
    let subscribers = clients_list
        .lines()
        .filter(|line| !line.contains(" psub=0 "))
        .count();
    assert_eq!(
        subscribers, 2,
        "one subscriber connection per replica:\n{clients_list}"
    );

    for client in clients {
        client.close().await?;
    }
    first.shutdown().await;
    second.shutdown().await;
    db.drop().await
}

/// How many outbox rows match `condition` (SQL).
async fn outbox_rows(conn: &sea_orm::DatabaseConnection, condition: &str) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM outbox WHERE {condition}"),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(row.try_get::<i64>("", "n")?)
}

#[tokio::test]
async fn an_event_written_while_redis_is_down_arrives_once_redis_is_back() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut redis = PrivateRedis::start().await?;
    // Published rows are kept a second: pruning runs all through the test.
    let opts = SubgraphOptions {
        outbox_retention_secs: Some(1),
        ..inventory_options(&db, &redis.url(), &unique_prefix())
    };
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&opts).await?;
    wait_until("the bus subscribes to redis", EVENT_TIMEOUT, || {
        bus_ready(&inventory)
    })
    .await?;
    let upc = tessera_seed::upc(2);
    let mut client = WsClient::connect(&inventory.ws_url()).await?;
    client
        .subscribe("s1", STOCK_CHANGED, json!({ "upc": upc }))
        .await?;
    restock_until_delivered(&inventory, &mut client, "s1", &upc).await?;
    let conn = Database::connect(&db.url).await?;
    // Published rows leave the outbox once older than the retention.
    wait_until("the published rows are pruned", EVENT_TIMEOUT, || async {
        outbox_rows(&conn, "1 = 1").await.ok() == Some(0)
    })
    .await?;

    redis.kill().await?;
    wait_until("the bus notices redis is gone", EVENT_TIMEOUT, || async {
        !bus_ready(&inventory).await
    })
    .await?;
    // The mutation succeeds without Redis; its event waits in the outbox, past the retention:
    // an unpublished row is never pruned.
    let restocked = restock(&inventory, &upc, 7).await?;
    let stock = restocked["stock"].as_i64().unwrap_or_default();
    assert_eq!(outbox_rows(&conn, "published_at IS NULL").await?, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        outbox_rows(&conn, "published_at IS NULL").await?,
        1,
        "the event waits in the outbox"
    );
    assert!(
        client
            .next_payload("s1", Duration::from_millis(300))
            .await
            .is_err()
    );

    redis.restart().await?;
    let event = client.next_payload("s1", EVENT_TIMEOUT).await?;
    assert_eq!(
        event["data"]["stockChanged"],
        json!({ "upc": upc, "stock": stock, "delta": 7, "reason": "RESTOCK" })
    );
    wait_until("the published row is pruned", EVENT_TIMEOUT, || async {
        outbox_rows(&conn, "1 = 1").await.ok() == Some(0)
    })
    .await?;

    client.close().await?;
    inventory.shutdown().await;
    conn.close().await?;
    db.drop().await
}

#[tokio::test]
async fn a_row_whose_publish_lost_its_answer_is_not_published_twice() -> anyhow::Result<()> {
    use sea_orm::ActiveModelTrait as _;
    use tessera_kit::outbox::entity;
    let db = TestDb::create().await?;
    let prefix = unique_prefix();
    let opts = inventory_options(&db, REDIS_URL, &prefix);
    // A first run makes the database, its outbox's name, and one published event.
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&opts).await?;
    wait_until("the bus subscribes to redis", EVENT_TIMEOUT, || {
        bus_ready(&inventory)
    })
    .await?;
    let upc = tessera_seed::upc(2);
    restock(&inventory, &upc, 1).await?;
    let conn = Database::connect(&db.url).await?;
    wait_until("the restock is published", EVENT_TIMEOUT, || async {
        outbox_rows(&conn, "published_at IS NULL").await.ok() == Some(0)
    })
    .await?;
    inventory.shutdown().await;
    let source = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT id FROM outbox_source",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the relay named its outbox"))?
        .try_get::<String>("", "id")?;
    // A row Redis took while the relay never heard back (the connection dropped before the
    // answer): the outbox still has it unsent.
    let payload = json!({ "upc": upc, "stock": 1, "delta": 0, "reason": "RESTOCK" });
    let row = entity::ActiveModel {
        topic: sea_orm::ActiveValue::Set("stock_changed".to_owned()),
        payload: sea_orm::ActiveValue::Set(payload.to_string()),
        created_at: sea_orm::ActiveValue::Set(chrono::Utc::now()),
        published_at: sea_orm::ActiveValue::Set(None),
        ..Default::default()
    }
    .insert(&conn)
    .await?;
    let bus = tessera_kit::events::EventBus::redis(REDIS_URL, &prefix)?;
    tokio::time::timeout(EVENT_TIMEOUT, bus.ready()).await?;
    let event = tessera_kit::events::Event {
        topic: row.topic.clone(),
        payload,
        id: None,
    };
    assert!(bus.publish_once(&event, &source, row.id).await?.is_some());
    // The relay of the next run retries the row: the bus knows it, so it is marked, not sent.
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&opts).await?;
    wait_until("the row is marked published", EVENT_TIMEOUT, || async {
        outbox_rows(&conn, "published_at IS NULL").await.ok() == Some(0)
    })
    .await?;
    let mut redis = tessera_tests::TestRedis::Shared.connection().await?;
    let stream = tessera_kit::events::stream_key(&prefix, "stock_changed");
    let kept: usize = redis::AsyncCommands::xlen(&mut redis, &stream).await?;
    assert_eq!(kept, 2, "the restock and the row, each once");
    inventory.shutdown().await;
    conn.close().await?;
    db.drop().await
}

#[tokio::test]
async fn a_review_added_reaches_a_subscriber_on_the_in_process_bus() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let opts = SubgraphOptions {
        database_url: Some(db.url.clone()),
        ..SubgraphOptions::default()
    };
    let reviews = spawn_subgraph::<tessera_reviews::Reviews>(&opts).await?;
    let mut client = WsClient::connect(&reviews.ws_url()).await?;
    client
        .subscribe(
            "r",
            "subscription { reviewAdded(upc: \"100001\") { id rating body author { id } product { upc } } }",
            json!({}),
        )
        .await?;
    let add = "mutation($body: String!) { addReview(input: { upc: \"100001\", authorId: \"4\", rating: 5, body: $body }) { id } }";
    let mut delivered = None;
    for attempt in 0..50 {
        let body = post_graphql(
            &reviews.graphql_url(),
            add,
            json!({ "body": format!("attempt {attempt}") }),
        )
        .await?;
        anyhow::ensure!(body.get("errors").is_none(), "addReview failed: {body}");
        if let Ok(payload) = client.next_payload("r", Duration::from_millis(200)).await {
            delivered = Some(payload);
            break;
        }
    }
    let review = delivered.ok_or_else(|| anyhow::anyhow!("no reviewAdded event"))?;
    let review = &review["data"]["reviewAdded"];
    assert_eq!(review["rating"], json!(5));
    assert_eq!(review["author"], json!({ "id": "4" }));
    assert_eq!(review["product"], json!({ "upc": "100001" }));
    client.close().await?;
    reviews.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn placing_an_order_makes_inventory_reserve_the_stock() -> anyhow::Result<()> {
    let orders_db = TestDb::create().await?;
    let inventory_db = TestDb::create().await?;
    let prefix = unique_prefix();
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&inventory_options(
        &inventory_db,
        REDIS_URL,
        &prefix,
    ))
    .await?;
    let orders = spawn_subgraph::<tessera_orders::Orders>(&SubgraphOptions {
        database_url: Some(orders_db.url.clone()),
        redis_url: Some(REDIS_URL.to_owned()),
        event_prefix: prefix.clone(),
        seed: true,
        ..SubgraphOptions::default()
    })
    .await?;
    for subgraph in [&inventory, &orders] {
        wait_until("the bus subscribes to redis", EVENT_TIMEOUT, || {
            bus_ready(subgraph)
        })
        .await?;
    }
    let (upc, before) = tessera_seed::stock()[4].clone();
    let stock_of = || async {
        let body = post_graphql(
            &inventory.graphql_url(),
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { stock } } }",
            json!({ "r": [{ "__typename": "Product", "upc": upc }] }),
        )
        .await
        .ok()?;
        body["data"]["_entities"][0]["stock"].as_i64()
    };
    let placed = post_graphql(
        &orders.graphql_url(),
        "mutation($upc: String!) { placeOrder(input: { buyerId: \"1\", items: [{ upc: $upc, quantity: 3 }] }) { id status } }",
        json!({ "upc": upc }),
    )
    .await?;
    assert_eq!(
        placed["data"]["placeOrder"]["status"],
        json!("PLACED"),
        "{placed}"
    );
    wait_until("inventory reserves 3 units", EVENT_TIMEOUT, || async {
        stock_of().await == Some(before - 3)
    })
    .await?;

    inventory.shutdown().await;
    orders.shutdown().await;
    orders_db.drop().await?;
    inventory_db.drop().await
}

#[tokio::test]
async fn an_order_placed_while_inventory_is_down_is_reserved_when_it_starts() -> anyhow::Result<()>
{
    let orders_db = TestDb::create().await?;
    let inventory_db = TestDb::create().await?;
    let prefix = unique_prefix();
    let orders = spawn_subgraph::<tessera_orders::Orders>(&SubgraphOptions {
        database_url: Some(orders_db.url.clone()),
        redis_url: Some(REDIS_URL.to_owned()),
        event_prefix: prefix.clone(),
        seed: true,
        ..SubgraphOptions::default()
    })
    .await?;
    wait_until("orders subscribes to redis", EVENT_TIMEOUT, || {
        bus_ready(&orders)
    })
    .await?;
    let (upc, before) = tessera_seed::stock()[6].clone();
    let placed = post_graphql(
        &orders.graphql_url(),
        "mutation($upc: String!) { placeOrder(input: { buyerId: \"2\", items: [{ upc: $upc, quantity: 2 }] }) { id } }",
        json!({ "upc": upc }),
    )
    .await?;
    anyhow::ensure!(placed.get("errors").is_none(), "{placed}");
    wait_until("the event leaves the outbox", EVENT_TIMEOUT, || async {
        orders.app.metrics.events_published("order_placed") > 0
    })
    .await?;

    // Inventory starts only now: its consumer group reads the stream from the start.
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&inventory_options(
        &inventory_db,
        REDIS_URL,
        &prefix,
    ))
    .await?;
    wait_until("inventory reserves the units", EVENT_TIMEOUT, || async {
        post_graphql(
            &inventory.graphql_url(),
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { stock } } }",
            json!({ "r": [{ "__typename": "Product", "upc": upc }] }),
        )
        .await
        .is_ok_and(|body| body["data"]["_entities"][0]["stock"] == json!(before - 2))
    })
    .await?;

    inventory.shutdown().await;
    orders.shutdown().await;
    orders_db.drop().await?;
    inventory_db.drop().await
}
