//! Subscriptions through the router, over real sockets, with the example's subgraphs behind it:
//! every client protocol (graphql-transport-ws with each close code, the legacy graphql-ws,
//! SSE, multipart), events completed with other subgraphs' fields, one upstream and one
//! completion per event for identical subscriptions, and clean endings.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_tests::{Shop, ShopOptions, WsClient, read_stream_until, wait_until};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The issue's example: an order with fields of four subgraphs.
const ORDER_PLACED: &str = "subscription { orderPlaced { id total buyer { username reviews { rating } } \
     items { quantity product { name price inStock shippingEstimate } } } }";

fn short_timeouts() -> ShopOptions {
    let mut options = ShopOptions::default();
    options.server.subscriptions.init_timeout = Duration::from_millis(300);
    options.server.subscriptions.keepalive = Duration::from_millis(300);
    options
}

/// Places orders until subscription `id` on `client` delivers one; returns its payload.
async fn order_until_delivered(
    shop: &Shop,
    client: &mut WsClient,
    id: &str,
) -> anyhow::Result<Value> {
    for _ in 0..50 {
        shop.place_order(3, 1, 1).await?;
        if let Ok(payload) = client.next_payload(id, Duration::from_millis(300)).await {
            return Ok(payload);
        }
    }
    anyhow::bail!("no orderPlaced event reached subscription {id}")
}

fn assert_complete_order(payload: &Value) {
    let order = &payload["data"]["orderPlaced"];
    assert!(order["id"].is_string(), "{payload}");
    assert_eq!(
        order["buyer"]["username"],
        json!(tessera_seed::users()[2].username)
    );
    assert!(order["buyer"]["reviews"].is_array(), "{payload}");
    let product = &order["items"][0]["product"];
    assert_eq!(
        product["name"],
        json!(tessera_seed::products()[0].name),
        "{payload}"
    );
    assert!(product["inStock"].is_boolean(), "{payload}");
    assert!(product["shippingEstimate"].is_number(), "{payload}");
    assert!(payload.get("errors").is_none(), "{payload}");
}

#[tokio::test]
async fn an_order_placed_through_the_router_arrives_completed_with_four_subgraphs_fields()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client.subscribe("o", ORDER_PLACED, json!({})).await?;
    let payload = order_until_delivered(&shop, &mut client, "o").await?;
    assert_complete_order(&payload);
    client.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn queries_and_mutations_over_the_socket_answer_once_then_complete() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client
        .subscribe("q", "{ topProducts(first: 1) { name inStock } }", json!({}))
        .await?;
    let next = client.next_message(TIMEOUT).await?;
    assert_eq!(next["type"], "next");
    assert!(
        next["payload"]["data"]["topProducts"][0]["name"].is_string(),
        "{next}"
    );
    assert_eq!(
        client.next_message(TIMEOUT).await?,
        json!({ "id": "q", "type": "complete" })
    );
    client
        .subscribe(
            "m",
            "mutation { restock(upc: \"100002\", quantity: 1) { upc } }",
            json!({}),
        )
        .await?;
    let next = client.next_message(TIMEOUT).await?;
    assert_eq!(next["payload"]["data"]["restock"]["upc"], "100002");
    assert_eq!(client.next_message(TIMEOUT).await?["type"], "complete");
    // A message far larger than the router's per-read buffer (512 bytes) arrives whole.
    let padded = format!(
        "{{ topProducts(first: 2) {{ name }} }}\n# {}",
        "padding ".repeat(20_000)
    );
    client.subscribe("big", &padded, json!({})).await?;
    let next = client.next_message(TIMEOUT).await?;
    assert_eq!(next["id"], "big", "{next}");
    assert!(
        next["payload"]["data"]["topProducts"][1]["name"].is_string(),
        "{next}"
    );
    assert_eq!(client.next_message(TIMEOUT).await?["type"], "complete");
    client.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn a_validation_error_is_an_error_message_and_the_socket_stays_open() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client
        .subscribe(
            "bad",
            "subscription { orderPlaced { noSuchField } }",
            json!({}),
        )
        .await?;
    let error = client.next_message(TIMEOUT).await?;
    assert_eq!(error["type"], "error");
    assert_eq!(error["id"], "bad");
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // No complete follows an error; the socket still serves.
    client.subscribe("o", ORDER_PLACED, json!({})).await?;
    let payload = order_until_delivered(&shop, &mut client, "o").await?;
    assert_complete_order(&payload);
    client.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn ping_gets_pong_and_complete_stops_a_subscription() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client
        .send_json(&json!({ "type": "ping", "payload": { "n": 1 } }))
        .await?;
    assert_eq!(
        client.next_message(TIMEOUT).await?,
        json!({ "type": "pong", "payload": { "n": 1 } })
    );
    client.subscribe("o", ORDER_PLACED, json!({})).await?;
    order_until_delivered(&shop, &mut client, "o").await?;
    client
        .send_json(&json!({ "type": "complete", "id": "o" }))
        .await?;
    wait_until("the subscription ends", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 0
    })
    .await?;
    // Completing an unknown id is ignored.
    client
        .send_json(&json!({ "type": "complete", "id": "nope" }))
        .await?;
    client.send_json(&json!({ "type": "ping" })).await?;
    assert_eq!(client.next_message(TIMEOUT).await?["type"], "pong");
    client.close().await?;
    shop.stop().await
}

/// Opens a socket, sends `messages`, and returns the close code and reason.
async fn closed_after(
    shop: &Shop,
    protocol: Option<&str>,
    messages: &[&str],
) -> anyhow::Result<(u16, String)> {
    let mut client = WsClient::open(&shop.ws_url(), protocol).await?;
    for message in messages {
        client.send_raw(message).await?;
    }
    client.expect_close(TIMEOUT).await
}

#[tokio::test]
async fn protocol_violations_close_with_the_protocols_codes() -> anyhow::Result<()> {
    let shop = Shop::start(short_timeouts()).await?;
    let ws = Some("graphql-transport-ws");
    let init = r#"{"type":"connection_init"}"#;
    let subscribe = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { orderPlaced { id } }"}}"#;
    // 4408: no connection_init in time.
    assert_eq!(closed_after(&shop, ws, &[]).await?.0, 4408);
    // 4401: subscribe before the ack.
    assert_eq!(closed_after(&shop, ws, &[subscribe]).await?.0, 4401);
    // 4429: a second connection_init.
    assert_eq!(closed_after(&shop, ws, &[init, init]).await?.0, 4429);
    // 4409: a second subscribe with an active id.
    let (code, reason) = closed_after(&shop, ws, &[init, subscribe, subscribe]).await?;
    assert_eq!(code, 4409, "{reason}");
    assert!(
        reason.contains("Subscriber for 1 already exists"),
        "{reason}"
    );
    // 4400: unreadable, unknown type, missing fields, a payload that is no request.
    for bad in [
        "not json",
        r#"{"type":"hello"}"#,
        r#"{"type":"subscribe","payload":{"query":"{ a }"}}"#,
        r#"{"type":"subscribe","id":"2","payload":[]}"#,
    ] {
        let messages: &[&str] = if bad.contains("subscribe") {
            &[init, bad]
        } else {
            &[bad]
        };
        assert_eq!(closed_after(&shop, ws, messages).await?.0, 4400, "{bad}");
    }
    // 4406: no subprotocol the router speaks.
    assert_eq!(closed_after(&shop, Some("mqtt"), &[]).await?.0, 4406);
    assert_eq!(closed_after(&shop, None, &[]).await?.0, 4406);
    wait_until("every connection is counted closed", TIMEOUT, || async {
        shop.router.hub.connection_count() == 0
    })
    .await?;
    shop.stop().await
}

#[tokio::test]
async fn a_refused_connection_init_closes_4403() -> anyhow::Result<()> {
    let mut options = ShopOptions::default();
    options.server.subscriptions.auth_required = true;
    let shop = Shop::start(options).await?;
    let ws = Some("graphql-transport-ws");
    let (code, _) =
        closed_after(&shop, ws, &[r#"{"type":"connection_init","payload":{}}"#]).await?;
    assert_eq!(code, 4403);
    // With an authorization, the socket is acknowledged.
    let client =
        WsClient::connect_with(&shop.ws_url(), json!({ "Authorization": "Bearer t" })).await?;
    client.close().await?;
    shop.stop().await
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_streams_data_and_keeps_alive() -> anyhow::Result<()> {
    let shop = Shop::start(short_timeouts()).await?;
    let mut client = WsClient::open(&shop.ws_url(), Some("graphql-ws")).await?;
    client
        .send_raw(r#"{"type":"connection_init","payload":{}}"#)
        .await?;
    assert_eq!(
        client.next_message(TIMEOUT).await?["type"],
        "connection_ack"
    );
    assert_eq!(client.next_message(TIMEOUT).await?["type"], "ka");
    let start = json!({ "type": "start", "id": "1", "payload": { "query": ORDER_PLACED } });
    client.send_json(&start).await?;
    let mut data = None;
    for _ in 0..50 {
        shop.place_order(3, 1, 1).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(message) = client
            .next_message(deadline - tokio::time::Instant::now())
            .await
        {
            match message["type"].as_str() {
                Some("data") => {
                    data = Some(message["payload"].clone());
                    break;
                }
                Some("ka") => continue,
                _ => anyhow::bail!("unexpected {message}"),
            }
        }
        if data.is_some() {
            break;
        }
    }
    let payload = data.ok_or_else(|| anyhow::anyhow!("no data message"))?;
    assert_complete_order(&payload);
    // A validation error is an `error` for that id; `stop` ends a subscription.
    client
        .send_json(
            &json!({ "type": "start", "id": "2", "payload": { "query": "subscription { nope }" } }),
        )
        .await?;
    loop {
        let message = client.next_message(TIMEOUT).await?;
        if message["id"] == "2" {
            assert_eq!(message["type"], "error");
            break;
        }
    }
    client
        .send_json(&json!({ "type": "stop", "id": "1" }))
        .await?;
    wait_until("the subscription ends", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 0
    })
    .await?;
    client
        .send_raw(r#"{"type":"connection_terminate"}"#)
        .await?;
    client.expect_close(TIMEOUT).await.ok();
    shop.stop().await
}

#[tokio::test]
async fn server_sent_events_over_post_and_get_stream_next_then_complete() -> anyhow::Result<()> {
    let shop = Shop::start(short_timeouts()).await?;
    let client = reqwest::Client::new();
    // A query over SSE: one next, then complete with an empty data line.
    let response = client
        .get(shop.url())
        .query(&[("query", "{ topProducts(first: 1) { name } }")])
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let text = read_stream_until(response, TIMEOUT, |t| t.contains("event: complete")).await?;
    assert!(
        text.starts_with("event: next\ndata: {\"data\":{\"topProducts\""),
        "{text:?}"
    );
    assert!(text.ends_with("event: complete\ndata:\n\n"), "{text:?}");
    // A subscription over POST: keep-alive comments while idle, then the event.
    let response = client
        .post(shop.url())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": ORDER_PLACED }))
        .send()
        .await?;
    let reading = tokio::spawn(read_stream_until(response, TIMEOUT, |t| {
        t.contains("\"orderPlaced\"")
    }));
    let keep_alive_seen = tokio::time::sleep(Duration::from_millis(700));
    keep_alive_seen.await;
    let mut text = String::new();
    for _ in 0..30 {
        shop.place_order(3, 1, 1).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reading.is_finished() {
            text = reading.await??;
            break;
        }
    }
    assert!(text.contains(":\n\n"), "no keep-alive comment: {text:?}");
    let data = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("data: ")
                .filter(|d| d.contains("orderPlaced"))
        })
        .ok_or_else(|| anyhow::anyhow!("no event: {text:?}"))?;
    assert_complete_order(&serde_json::from_str(data)?);
    // A refused request is a next with the errors, then complete.
    let response = client
        .post(shop.url())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "subscription { nope }" }))
        .send()
        .await?;
    let text = read_stream_until(response, TIMEOUT, |t| t.contains("event: complete")).await?;
    assert!(text.contains("GRAPHQL_VALIDATION_FAILED"), "{text:?}");
    shop.stop().await
}

#[tokio::test]
async fn multipart_sends_a_heartbeat_at_once_and_each_event_closed_by_its_boundary()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let response = reqwest::Client::new()
        .post(shop.url())
        .header(
            "accept",
            "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
        )
        .json(&json!({ "query": ORDER_PLACED }))
        .send()
        .await?;
    assert_eq!(
        response.headers()["content-type"],
        "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0"
    );
    let reading = tokio::spawn(read_stream_until(response, TIMEOUT, |t| {
        t.contains("orderPlaced") && t.ends_with("--graphql")
    }));
    let mut text = String::new();
    for _ in 0..30 {
        shop.place_order(3, 1, 1).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reading.is_finished() {
            text = reading.await??;
            break;
        }
    }
    assert!(
        text.starts_with("\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql"),
        "{text:?}"
    );
    let part = text
        .split("\r\n\r\n")
        .find(|p| p.contains("orderPlaced"))
        .ok_or_else(|| anyhow::anyhow!("no event part: {text:?}"))?;
    let json = part.trim_end_matches("--graphql").trim_end();
    let body: Value = serde_json::from_str(json)?;
    assert_complete_order(&body["payload"]);
    // The router shutting down ends the stream with the closing boundary.
    let response = reqwest::Client::new()
        .post(shop.url())
        .header("accept", "multipart/mixed;subscriptionSpec=1.0")
        .json(&json!({ "query": "subscription { orderPlaced { id } }" }))
        .send()
        .await?;
    let ending = tokio::spawn(read_stream_until(response, TIMEOUT, |t| {
        t.ends_with("--graphql--\r\n")
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    shop.router.hub.shut_down();
    let text = tokio::time::timeout(TIMEOUT, ending).await???;
    assert!(text.ends_with("--graphql--\r\n"), "{text:?}");
    shop.stop().await
}

#[tokio::test]
async fn a_hundred_identical_subscriptions_share_one_upstream_and_one_completion_per_event()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let query = "subscription { orderPlaced { id buyer { username } items { product { name } } } }";
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut client = WsClient::connect(&shop.ws_url()).await?;
        client.subscribe("o", query, json!({})).await?;
        clients.push(client);
    }
    wait_until("every subscription is served", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 100
    })
    .await?;
    assert_eq!(shop.router.hub.upstream_count(), 1);
    assert_eq!(shop.router.hub.upstream_connections(), 1);
    // Warm up until the upstream subscription is live.
    order_until_delivered(&shop, &mut clients[0], "o").await?;
    for client in clients.iter_mut().skip(1) {
        client.next_payload("o", TIMEOUT).await?;
    }
    let entities = |name: &str| {
        shop.subgraph(name)
            .app
            .metrics
            .http_requests("/graphql", 200)
    };
    let (accounts, products) = (entities("accounts"), entities("products"));
    shop.place_order(3, 1, 1).await?;
    for client in &mut clients {
        let payload = client.next_payload("o", TIMEOUT).await?;
        assert_eq!(
            payload["data"]["orderPlaced"]["buyer"]["username"],
            json!(tessera_seed::users()[2].username)
        );
    }
    // One event: one request to each subgraph that completes it, for all hundred clients.
    assert_eq!(entities("accounts") - accounts, 1);
    assert_eq!(entities("products") - products, 1);
    for client in clients {
        client.close().await?;
    }
    wait_until("the subscriptions end", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 0 && shop.router.hub.upstream_count() == 0
    })
    .await?;
    shop.stop().await
}

#[tokio::test]
async fn shutting_down_completes_every_subscription_and_closes_1001() -> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let mut client = WsClient::connect(&shop.ws_url()).await?;
    client.subscribe("o", ORDER_PLACED, json!({})).await?;
    wait_until("the subscription is served", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 1
    })
    .await?;
    shop.router.hub.shut_down();
    assert_eq!(
        client.next_message(TIMEOUT).await?,
        json!({ "id": "o", "type": "complete" })
    );
    assert_eq!(client.expect_close(TIMEOUT).await?.0, 1001);
    wait_until("the connection is counted closed", TIMEOUT, || async {
        shop.router.hub.connection_count() == 0 && shop.router.hub.subscription_count() == 0
    })
    .await?;
    shop.stop().await
}

#[tokio::test]
async fn a_client_that_asks_sees_the_plan_in_each_event_and_shares_the_completion()
-> anyhow::Result<()> {
    let shop = Shop::start(ShopOptions::default()).await?;
    let query = "subscription { orderPlaced { id buyer { username } } }";
    let mut plain = WsClient::connect(&shop.ws_url()).await?;
    plain.subscribe("o", query, json!({})).await?;
    // A browser cannot set a WebSocket's headers: GraphiQL asks in `connection_init`.
    let mut shown = WsClient::connect_with(
        &shop.ws_url(),
        json!({ "tessera-expose-query-plan": "true" }),
    )
    .await?;
    shown.subscribe("o", query, json!({})).await?;
    // The legacy protocol the same way.
    let mut legacy = WsClient::open(&shop.ws_url(), Some("graphql-ws")).await?;
    legacy
        .send_json(&json!({ "type": "connection_init", "payload": { "tessera-expose-query-plan": "true" } }))
        .await?;
    legacy
        .send_json(&json!({ "type": "start", "id": "1", "payload": { "query": query } }))
        .await?;
    let sse = reqwest::Client::new()
        .post(shop.url())
        .header("accept", "text/event-stream")
        .header("tessera-expose-query-plan", "true")
        .json(&json!({ "query": query }))
        .send()
        .await?;
    let sse = tokio::spawn(read_stream_until(sse, TIMEOUT, |text| {
        text.contains("queryPlanText")
    }));
    wait_until("every subscription is served", TIMEOUT, || async {
        shop.router.hub.subscription_count() == 4
    })
    .await?;
    order_until_delivered(&shop, &mut plain, "o").await?;
    shown.next_payload("o", TIMEOUT).await?;
    let accounts = shop
        .subgraph("accounts")
        .app
        .metrics
        .http_requests("/graphql", 200);
    shop.place_order(3, 1, 1).await?;
    let (plain_event, shown_event) = (
        plain.next_payload("o", TIMEOUT).await?,
        shown.next_payload("o", TIMEOUT).await?,
    );
    assert_eq!(plain_event["data"], shown_event["data"]);
    assert_eq!(
        plain_event["extensions"]["eventId"],
        shown_event["extensions"]["eventId"]
    );
    assert!(
        plain_event["extensions"].get("queryPlan").is_none(),
        "{plain_event}"
    );
    let text = shown_event["extensions"]["queryPlanText"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("QueryPlan"), "{shown_event}");
    assert!(text.contains("Subscription"), "{text}");
    assert!(
        text.contains("\"orders\"") && text.contains("\"accounts\""),
        "{text}"
    );
    assert!(
        shown_event["extensions"]["queryPlan"].is_object(),
        "{shown_event}"
    );
    // The plan is added for the clients that asked: the event was completed once for all.
    let completions = shop
        .subgraph("accounts")
        .app
        .metrics
        .http_requests("/graphql", 200)
        - accounts;
    assert_eq!(completions, 1);
    let sse = sse.await??;
    assert!(sse.contains("\"eventId\""), "{sse}");
    let data = loop {
        let message = legacy.next_message(TIMEOUT).await?;
        if message["type"] == "data" {
            break message;
        }
    };
    assert!(
        data["payload"]["extensions"]["queryPlanText"]
            .as_str()
            .is_some_and(|text| text.contains("Subscription {")),
        "{data}"
    );
    plain.close().await?;
    shown.close().await?;
    shop.stop().await
}
