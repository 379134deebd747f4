//! The order saga on PostgreSQL and Redis: a reservation that cannot be made rejects the order
//! through a compensating event, a cancelled order's stock comes back, a poison entry is
//! dead-lettered without stopping the entries after it, and entries a dead consumer left
//! pending are claimed by another and reserved once. Each runs on the shared Redis here and on
//! a three-node Redis Cluster in `cluster.rs`, where one more runs while a primary fails over.

use std::time::Duration;

use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tessera_kit::Running;
use tessera_kit::events::stream_key;
use tessera_tests::{
    SubgraphOptions, TestDb, TestRedis, post_graphql, spawn_subgraph, unique_prefix, wait_until,
};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Orders and inventory on databases of their own, sharing one Redis prefix.
struct Shop {
    prefix: String,
    orders: Running,
    inventory: Running,
    orders_db: TestDb,
    inventory_db: TestDb,
}

fn options(db: &TestDb, prefix: &str, redis: &TestRedis) -> SubgraphOptions {
    SubgraphOptions {
        database_url: Some(db.url.clone()),
        event_prefix: prefix.to_owned(),
        seed: true,
        consumer_claim_idle_ms: Some(500),
        ..SubgraphOptions::default()
    }
    .on_redis(redis)
}

impl Shop {
    async fn start(redis: &TestRedis) -> anyhow::Result<Self> {
        let prefix = unique_prefix();
        let orders_db = TestDb::create().await?;
        let inventory_db = TestDb::create().await?;
        let orders =
            spawn_subgraph::<tessera_orders::Orders>(&options(&orders_db, &prefix, redis)).await?;
        let inventory =
            spawn_subgraph::<tessera_inventory::Inventory>(&options(&inventory_db, &prefix, redis))
                .await?;
        for app in [&orders.app, &inventory.app] {
            tokio::time::timeout(TIMEOUT, app.bus.ready()).await?;
        }
        Ok(Self {
            prefix,
            orders,
            inventory,
            orders_db,
            inventory_db,
        })
    }

    async fn place(&self, lines: Value) -> anyhow::Result<String> {
        let body = post_graphql(
            &self.orders.graphql_url(),
            "mutation($items: [OrderItemInput!]!) { placeOrder(input: { buyerId: \"1\", items: $items }) { id } }",
            json!({ "items": lines }),
        )
        .await?;
        body["data"]["placeOrder"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("placeOrder failed: {body}"))
    }

    async fn order(&self, id: &str) -> Value {
        post_graphql(
            &self.orders.graphql_url(),
            "query($id: ID!) { order(id: $id) { status statusReason } }",
            json!({ "id": id }),
        )
        .await
        .map(|body| body["data"]["order"].clone())
        .unwrap_or(Value::Null)
    }

    async fn stock(&self, upc: &str) -> Option<i64> {
        stock_at(&self.inventory, upc).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.orders.shutdown().await;
        self.inventory.shutdown().await;
        self.orders_db.drop().await?;
        self.inventory_db.drop().await
    }
}

/// `upc`'s stock, as `inventory` reports it.
async fn stock_at(inventory: &Running, upc: &str) -> Option<i64> {
    post_graphql(
        &inventory.graphql_url(),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { stock } } }",
        json!({ "r": [{ "__typename": "Product", "upc": upc }] }),
    )
    .await
    .ok()?["data"]["_entities"][0]["stock"]
        .as_i64()
}

/// A product with plenty of stock (at least `least` units), and its stock.
fn stocked(least: i64) -> (String, i64) {
    tessera_seed::stock()
        .into_iter()
        .find(|(_, quantity)| *quantity >= least)
        .expect("the seed has well-stocked products")
}

#[tokio::test]
async fn an_order_beyond_the_stock_is_rejected_with_its_reason_and_takes_nothing()
-> anyhow::Result<()> {
    order_beyond_the_stock(&TestRedis::Shared).await
}

pub(crate) async fn order_beyond_the_stock(server: &TestRedis) -> anyhow::Result<()> {
    let shop = Shop::start(server).await?;
    let (upc, before) = stocked(20);
    let (other, other_before) = tessera_seed::stock()
        .into_iter()
        .find(|(u, q)| *u != upc && *q >= 5)
        .expect("a second product");
    // The first line fits, the second asks for more than there is: nothing is taken.
    let lines = json!([
        { "upc": other, "quantity": 2 },
        { "upc": upc, "quantity": 100 }, { "upc": upc, "quantity": 100 },
    ]);
    let id = shop.place(lines).await?;
    wait_until("the order is rejected", TIMEOUT, || async {
        shop.order(&id).await["status"] == "REJECTED"
    })
    .await?;
    let order = shop.order(&id).await;
    let reason = order["statusReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&upc) && reason.contains("on hand"),
        "{order}"
    );
    assert_eq!(shop.stock(&upc).await, Some(before));
    assert_eq!(shop.stock(&other).await, Some(other_before));
    // A rejected order stays so.
    let cancel = post_graphql(
        &shop.orders.graphql_url(),
        "mutation($id: ID!) { updateOrderStatus(id: $id, status: CANCELLED) { status } }",
        json!({ "id": id }),
    )
    .await?;
    assert_eq!(
        cancel["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{cancel}"
    );
    shop.stop().await
}

#[tokio::test]
async fn an_order_for_a_product_inventory_does_not_stock_is_rejected() -> anyhow::Result<()> {
    order_for_an_unstocked_product(&TestRedis::Shared).await
}

pub(crate) async fn order_for_an_unstocked_product(server: &TestRedis) -> anyhow::Result<()> {
    let shop = Shop::start(server).await?;
    let (upc, _) = stocked(1);
    // Orders still sells it; inventory has dropped it.
    let db = Database::connect(&shop.inventory_db.url).await?;
    db.execute_unprepared(&format!("DELETE FROM stock WHERE upc = '{upc}'"))
        .await?;
    let id = shop.place(json!([{ "upc": upc, "quantity": 1 }])).await?;
    wait_until("the order is rejected", TIMEOUT, || async {
        shop.order(&id).await["status"] == "REJECTED"
    })
    .await?;
    let reason = shop.order(&id).await["statusReason"].clone();
    assert!(
        reason.as_str().is_some_and(|r| r.contains("not stocked")),
        "{reason}"
    );
    shop.stop().await
}

#[tokio::test]
async fn the_database_refuses_stock_below_zero() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let inventory = spawn_subgraph::<tessera_inventory::Inventory>(&SubgraphOptions {
        database_url: Some(db.url.clone()),
        seed: true,
        ..SubgraphOptions::default()
    })
    .await?;
    let conn = Database::connect(&db.url).await?;
    let refused = conn
        .execute_unprepared("UPDATE stock SET quantity = -1")
        .await;
    assert!(refused.is_err(), "a negative stock was stored");
    inventory.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn a_cancelled_orders_stock_goes_back_once() -> anyhow::Result<()> {
    cancelled_order(&TestRedis::Shared).await
}

pub(crate) async fn cancelled_order(server: &TestRedis) -> anyhow::Result<()> {
    let shop = Shop::start(server).await?;
    let (upc, before) = stocked(10);
    let id = shop.place(json!([{ "upc": upc, "quantity": 4 }])).await?;
    wait_until("the stock is reserved", TIMEOUT, || async {
        shop.stock(&upc).await == Some(before - 4)
    })
    .await?;
    let cancel = post_graphql(
        &shop.orders.graphql_url(),
        "mutation($id: ID!) { updateOrderStatus(id: $id, status: CANCELLED) { status } }",
        json!({ "id": id }),
    )
    .await?;
    assert_eq!(
        cancel["data"]["updateOrderStatus"]["status"], "CANCELLED",
        "{cancel}"
    );
    wait_until("the stock is back", TIMEOUT, || async {
        shop.stock(&upc).await == Some(before)
    })
    .await?;
    // Redelivering the cancellation gives nothing back twice.
    let stream = stream_key(&shop.prefix, "order_status_changed");
    let mut redis = server.connection().await?;
    let payload =
        json!({ "id": id, "status": "CANCELLED", "total": 1, "createdAt": "x", "buyerId": 1 });
    let _: String = redis
        .xadd(&stream, "*", &[("payload", payload.to_string())])
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shop.stock(&upc).await, Some(before));
    shop.stop().await
}

#[tokio::test]
async fn a_poison_entry_is_dead_lettered_and_the_good_one_after_it_is_handled() -> anyhow::Result<()>
{
    poison_entry(&TestRedis::Shared).await
}

pub(crate) async fn poison_entry(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    let db = TestDb::create().await?;
    let stream = stream_key(&prefix, "order_placed");
    let (upc, before) = stocked(10);
    let mut redis = server.connection().await?;
    // A payload no one can read, then a good order, both waiting before inventory starts.
    let _: String = redis
        .xadd(
            &stream,
            "*",
            &[("payload", "{\"id\": 7, \"items\": \"oops\"")],
        )
        .await?;
    let good = json!({ "id": "41", "status": "PLACED", "total": 300, "createdAt": "x", "buyerId": 1,
                       "items": [{ "upc": upc, "quantity": 3, "unitPrice": 100 }] });
    let _: String = redis
        .xadd(&stream, "*", &[("payload", good.to_string())])
        .await?;
    let inventory =
        spawn_subgraph::<tessera_inventory::Inventory>(&options(&db, &prefix, server)).await?;
    let stock = || stock_at(&inventory, &upc);
    wait_until("the good order is reserved", TIMEOUT, || async {
        stock().await == Some(before - 3)
    })
    .await?;
    let dead: Vec<redis::streams::StreamId> = redis
        .xrange_all::<_, redis::streams::StreamRangeReply>(format!("{stream}:dead"))
        .await?
        .ids;
    assert_eq!(dead.len(), 1);
    let error: String = dead[0].get("error").unwrap_or_default();
    assert!(error.contains("undecodable"), "{error}");
    assert_eq!(
        inventory.app.metrics.events_dead_lettered("order_placed"),
        1
    );
    // Nothing is left pending: the poison entry was acknowledged after it was set aside.
    let pending: redis::streams::StreamPendingReply = redis.xpending(&stream, "inventory").await?;
    assert_eq!(pending.count(), 0);
    inventory.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn entries_a_killed_consumer_left_pending_are_claimed_and_reserved_once() -> anyhow::Result<()>
{
    killed_consumer(&TestRedis::Shared).await
}

pub(crate) async fn killed_consumer(server: &TestRedis) -> anyhow::Result<()> {
    let prefix = unique_prefix();
    let db = TestDb::create().await?;
    let (upc, before) = stocked(20);
    // Replica one: reads the orders, then "dies" in the middle of each (its handler never
    // finishes, and its task is killed).
    let first =
        spawn_subgraph::<tessera_inventory::Inventory>(&options(&db, &prefix, server)).await?;
    let stuck = tessera_kit::consume::spawn_consumer(
        &first.app,
        "inventory",
        &tessera_events::ORDER_PLACED,
        |_order| std::future::pending(),
    );
    // Its real consumer must not take the entries first: stop the whole replica's workers by
    // shutting it down, keeping only the stuck consumer alive (it shares the app state).
    first.shutdown().await;
    let stream = stream_key(&prefix, "order_placed");
    let mut redis = server.connection().await?;
    for id in 1..=5 {
        let order = json!({ "id": id.to_string(), "status": "PLACED", "total": 100, "createdAt": "x",
                            "buyerId": 1, "items": [{ "upc": upc, "quantity": 2, "unitPrice": 50 }] });
        let _: String = redis
            .xadd(&stream, "*", &[("payload", order.to_string())])
            .await?;
    }
    wait_until("the stuck consumer holds entries", TIMEOUT, || async {
        let pending: redis::RedisResult<redis::streams::StreamPendingReply> =
            redis.clone().xpending(&stream, "inventory").await;
        pending.is_ok_and(|p| p.count() >= 1)
    })
    .await?;
    stuck.abort();
    // Replica two claims them once they have been idle for the claim period.
    let second =
        spawn_subgraph::<tessera_inventory::Inventory>(&options(&db, &prefix, server)).await?;
    let stock = || stock_at(&second, &upc);
    wait_until("every order is reserved", TIMEOUT, || async {
        stock().await == Some(before - 10)
    })
    .await?;
    // And only once: nothing more is taken later.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(stock().await, Some(before - 10));
    let conn = Database::connect(&db.url).await?;
    let reserved = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM reserved_orders WHERE outcome = 'RESERVED'",
        ))
        .await?
        .and_then(|row| row.try_get::<i64>("", "n").ok());
    assert_eq!(reserved, Some(5));
    // Each replica joined under a name of its own; the dead one has nothing left pending.
    let consumers: redis::streams::StreamInfoConsumersReply =
        redis.xinfo_consumers(&stream, "inventory").await?;
    assert!(consumers.consumers.len() >= 2, "{consumers:?}");
    assert!(
        consumers.consumers.iter().all(|c| c.pending == 0),
        "{consumers:?}"
    );
    second.shutdown().await;
    db.drop().await
}

#[tokio::test]
async fn a_handler_that_keeps_failing_gets_its_retries_then_the_entry_is_dead_lettered()
-> anyhow::Result<()> {
    failing_handler(&TestRedis::Shared).await
}

pub(crate) async fn failing_handler(server: &TestRedis) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let prefix = unique_prefix();
    let db = TestDb::create().await?;
    let inventory =
        spawn_subgraph::<tessera_inventory::Inventory>(&options(&db, &prefix, server)).await?;
    let stream = stream_key(&prefix, "order_rejected");
    let mut redis = server.connection().await?;
    for message in ["always fails", "works"] {
        let rejected =
            json!({ "orderId": "1", "reason": "UNKNOWN_PRODUCT", "upc": "x", "message": message });
        let _: String = redis
            .xadd(&stream, "*", &[("payload", rejected.to_string())])
            .await?;
    }
    let (attempts, handled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let consumer = {
        let (attempts, handled) = (attempts.clone(), handled.clone());
        tessera_kit::consume::spawn_consumer(
            &inventory.app,
            "probe",
            &tessera_events::ORDER_REJECTED,
            move |rejected| {
                let (attempts, handled) = (attempts.clone(), handled.clone());
                async move {
                    if rejected.message == "works" {
                        handled.fetch_add(1, Ordering::SeqCst);
                        return Ok(());
                    }
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err(tessera_kit::consume::HandleError::Retry(
                        "the database is away".into(),
                    ))
                }
            },
        )
    };
    wait_until("the good entry is handled", TIMEOUT, || async {
        handled.load(Ordering::SeqCst) == 1
    })
    .await?;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        5,
        "the default retry budget"
    );
    let dead: redis::streams::StreamRangeReply = redis.xrange_all(format!("{stream}:dead")).await?;
    assert_eq!(dead.ids.len(), 1);
    let error: String = dead.ids[0].get("error").unwrap_or_default();
    assert!(error.contains("failed 5 times"), "{error}");
    assert_eq!(
        inventory.app.metrics.events_dead_lettered("order_rejected"),
        1
    );
    consumer.abort();
    inventory.shutdown().await;
    db.drop().await
}

/// On a Redis Cluster with replicas: the primary holding `order_placed` dies, its replica takes
/// over, and orders placed afterwards are still reserved, each once.
pub(crate) async fn primary_failover(mut redis: TestRedis) -> anyhow::Result<()> {
    let shop = Shop::start(&redis).await?;
    let (upc, before) = stocked(10);
    shop.place(json!([{ "upc": upc, "quantity": 2 }])).await?;
    wait_until("the first order is reserved", TIMEOUT, || async {
        shop.stock(&upc).await == Some(before - 2)
    })
    .await?;
    let TestRedis::Cluster(cluster) = &mut redis else {
        anyhow::bail!("a failover needs a cluster")
    };
    cluster
        .fail_over(&stream_key(&shop.prefix, "order_placed"))
        .await?;
    // The order commits with its outbox row whatever Redis does; the relay publishes it to the
    // new primary and the consumer group, carried over by the replica, hands it to inventory.
    let second = shop.place(json!([{ "upc": upc, "quantity": 3 }])).await?;
    wait_until(
        "the order after the failover is reserved",
        TIMEOUT,
        || async { shop.stock(&upc).await == Some(before - 5) },
    )
    .await?;
    assert_ne!(shop.order(&second).await["status"], "REJECTED");
    // Once: nothing more is taken.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shop.stock(&upc).await, Some(before - 5));
    shop.stop().await
}
