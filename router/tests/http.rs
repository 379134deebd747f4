//! The router's HTTP surface, driven in-process with `tower::ServiceExt::oneshot`; no subgraph
//! is contacted (the fixture's subgraph URLs point at the discard port).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tessera::engine::{Engine, EngineConfig};
use tessera::request::Limits;
use tessera::server::{ServerConfig, app};
use tessera::supergraph::Supergraph;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("fixtures/supergraph.graphql");
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

fn router_with(config: EngineConfig) -> Router {
    let supergraph = Supergraph::parse(FIXTURE).expect("fixture loads");
    app(
        Arc::new(Engine::new(supergraph, config)),
        &ServerConfig::default(),
    )
}

fn router() -> Router {
    router_with(EngineConfig::default())
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.text))
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("<no code>")
            .to_owned()
    }
}

async fn send(router: Router, request: Request<Body>) -> Reply {
    let response = router.oneshot(request).await.expect("infallible service");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body reads");
    Reply {
        status,
        content_type,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn post() -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
}

fn post_json(body: &Value, accept: Option<&str>) -> Request<Body> {
    let mut builder = post();
    if let Some(accept) = accept {
        builder = builder.header(header::ACCEPT, accept);
    }
    builder
        .body(Body::from(body.to_string()))
        .expect("valid request")
}

fn get(uri: &str, accept: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::GET).uri(uri);
    if let Some(accept) = accept {
        builder = builder.header(header::ACCEPT, accept);
    }
    builder.body(Body::empty()).expect("valid request")
}

/// `router` served on a real socket from `threads` serving threads: its address, the sender
/// that stops it, and the server task.
async fn serve_on_socket(
    router: Router,
    threads: usize,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let address = listener.local_addr().expect("a bound listener");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera::server::serve(
        listener,
        router,
        async {
            let _ = stopped.await;
        },
        threads,
    ));
    (address, stop, server)
}

#[tokio::test]
async fn post_query_answers_with_data_in_json_by_default() {
    let reply = send(
        router(),
        post_json(&json!({"query": "{ __typename }"}), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type, JSON);
    assert!(reply.json().get("data").is_some(), "{}", reply.text);
    assert!(reply.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn request_id_from_the_client_is_echoed() {
    let request = post()
        .header("x-request-id", "abc-123")
        .body(Body::from(r#"{"query":"{ __typename }"}"#))
        .expect("valid request");
    let reply = send(router(), request).await;
    assert_eq!(reply.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn malformed_json_is_400_with_bad_request_code() {
    let request = post()
        .body(Body::from("{ not json"))
        .expect("valid request");
    let reply = send(router(), request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "BAD_REQUEST");
    assert!(reply.json().get("data").is_none());
}

#[tokio::test]
async fn wrongly_typed_request_fields_and_batches_are_400() {
    for body in [
        r#"{"query": 42}"#,
        r#"[{"query":"{ __typename }"}]"#,
        "null",
    ] {
        let request = post().body(Body::from(body)).expect("valid request");
        let reply = send(router(), request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), "BAD_REQUEST", "{body}");
    }
}

#[tokio::test]
async fn missing_query_is_400() {
    let reply = send(router(), post_json(&json!({"variables": {}}), None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_a_graphql_error() {
    let router = router_with(EngineConfig {
        limits: Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        },
        ..EngineConfig::default()
    });
    let query = format!("{{ __typename }} #{}", "x".repeat(4096));
    let reply = send(router.clone(), post_json(&json!({"query": query}), None)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "QUERY_LIMIT_EXCEEDED");

    // The same without a Content-Length: a streamed body is cut off at the limit.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(query.clone()), Ok(query)];
    let request = post()
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("valid request");
    let reply = send(router, request).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "QUERY_LIMIT_EXCEEDED");
}

/// Over a real socket: a client that writes its whole over-large body before reading (as most
/// do), still sending when the router has decided, gets the 413 and its GraphQL error, with a
/// declared length and chunked alike. (Closing a connection with unread data resets it, and the
/// reset loses the unread response.)
#[tokio::test]
async fn a_client_sending_an_over_large_body_whole_gets_the_413_not_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Over the default limit (1 MiB), and larger than the socket buffers can hold.
    let (address, stop, _server) = serve_on_socket(router(), 2).await;
    let body = format!(
        "{{\"query\": \"{{ __typename }} #{}\"}}",
        "x".repeat(2 << 20)
    );
    let (first, second) = body.split_at(1 << 20);
    for (framing, payload) in [
        (format!("content-length: {}", body.len()), body.clone()),
        (
            "transfer-encoding: chunked".to_owned(),
            format!(
                "{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
                first.len(),
                second.len()
            ),
        ),
    ] {
        let mut socket = tokio::net::TcpStream::connect(address)
            .await
            .expect("the router accepts");
        let head = format!(
            "POST /graphql HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\n{framing}\r\nconnection: close\r\n\r\n"
        );
        socket
            .write_all(head.as_bytes())
            .await
            .expect("the head is written");
        // The body follows while the router may already have decided: as from a slow client.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        socket
            .write_all(payload.as_bytes())
            .await
            .expect("the whole body is written, the connection not reset");
        let mut response = Vec::new();
        socket
            .read_to_end(&mut response)
            .await
            .expect("the response is read, not reset");
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{framing}: {response}"
        );
        assert!(
            response.contains("QUERY_LIMIT_EXCEEDED"),
            "{framing}: {response}"
        );
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn one_megabyte_query_is_refused_by_the_query_size_limit() {
    let query = format!("{{ __typename }} #{}", "x".repeat(1_000_000));
    let reply = send(
        router(),
        post_json(
            &json!({"query": query}),
            Some("application/graphql-response+json"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "QUERY_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/graphql")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"query":"{ __typename }"}"#))
        .expect("valid request");
    let reply = send(router(), request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn graphql_response_json_is_negotiated_and_request_errors_become_400() {
    let body = json!({"query": "{ product(upc: \"1\") { cost } }"});
    let reply = send(
        router(),
        post_json(
            &body,
            Some("application/graphql-response+json, application/json;q=0.9"),
        ),
    )
    .await;
    assert_eq!(reply.content_type, GRAPHQL_RESPONSE);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "GRAPHQL_VALIDATION_FAILED");

    let reply = send(router(), post_json(&body, Some("application/json"))).await;
    assert_eq!(reply.content_type, JSON);
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(reply.json().get("data").is_none());
}

#[tokio::test]
async fn get_runs_queries_with_json_variables() {
    let uri =
        "/graphql?query=query(%24n%3A%20Int)%7Btop%3A%20__typename%7D&variables=%7B%22n%22%3A1%7D";
    let reply = send(router(), get(uri, Some("application/json"))).await;
    // `$n` is unused, which is a validation error: the variables parsed, the query did not pass.
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.code(), "GRAPHQL_VALIDATION_FAILED");

    let reply = send(router(), get("/graphql?query=%7B__typename%7D", None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json().get("data").is_some());
}

#[tokio::test]
async fn get_with_malformed_variables_is_400() {
    let reply = send(
        router(),
        get("/graphql?query=%7B__typename%7D&variables=%7Bnope", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn get_refuses_mutations_with_405() {
    let mutation = "mutation%7BaddReview(upc%3A%221%22%2Cbody%3A%22b%22%2Crating%3A5)%7Bid%7D%7D";
    let reply = send(router(), get(&format!("/graphql?query={mutation}"), None)).await;
    assert_eq!(
        reply.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "METHOD_NOT_ALLOWED");
    assert_eq!(reply.headers[header::ALLOW], "POST");
}

#[tokio::test]
async fn other_methods_and_paths_get_graphql_errors() {
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/graphql")
        .body(Body::empty())
        .expect("valid request");
    let reply = send(router(), request).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "METHOD_NOT_ALLOWED");

    let reply = send(router(), get("/nowhere", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "NOT_FOUND");
}

#[tokio::test]
async fn browser_gets_graphiql_and_api_clients_do_not() {
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for path in ["/", "/graphql"] {
        let reply = send(router(), get(path, Some(browser))).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.content_type.starts_with("text/html"), "{path}");
        assert!(reply.text.contains("graphiql"), "{path}");
    }
    let reply = send(router(), get("/graphql", Some("application/json"))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn graphiql_can_be_turned_off() {
    let supergraph = Supergraph::parse(FIXTURE).expect("fixture loads");
    let engine = Arc::new(Engine::new(supergraph, EngineConfig::default()));
    let router = app(
        engine,
        &ServerConfig {
            graphiql: false,
            ..ServerConfig::default()
        },
    );
    let reply = send(router, get("/", Some("text/html"))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_is_ok_once_loaded() {
    let reply = send(router(), get("/health", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn query_plan_is_exposed_with_the_header() {
    let request = post()
        .header("tessera-expose-query-plan", "true")
        .body(Body::from(r#"{"query":"{ __typename }"}"#))
        .expect("valid request");
    let reply = send(router(), request).await;
    let json = reply.json();
    assert!(json["extensions"]["queryPlanText"].is_string(), "{json}");
}

#[tokio::test]
async fn served_on_a_real_socket_and_shut_down_gracefully() {
    let (address, stop, server) = serve_on_socket(router(), 2).await;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    let _ = stop.send(());
    server
        .await
        .expect("server task joins")
        .expect("server stops cleanly");
}

/// Connections spread over several serving threads are each served, and open keep-alive
/// connections do not hold the server up: on shutdown each is closed and the server returns.
#[tokio::test]
async fn keep_alive_connections_on_several_threads_are_served_and_closed_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (address, stop, server) = serve_on_socket(router(), 3).await;
    let mut streams = Vec::new();
    for _ in 0..6 {
        streams.push(
            tokio::net::TcpStream::connect(address)
                .await
                .expect("connects"),
        );
    }
    for round in 0..2 {
        for stream in &mut streams {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("writes");
            let mut response = Vec::new();
            let mut buf = [0u8; 1024];
            while !response.ends_with(br#"{"status":"ok"}"#) {
                let n = stream.read(&mut buf).await.expect("reads");
                assert!(n > 0, "closed early in round {round}");
                response.extend_from_slice(&buf[..n]);
            }
            assert!(response.starts_with(b"HTTP/1.1 200"));
        }
    }
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server stops with idle connections open")
        .expect("server task joins")
        .expect("server stops cleanly");
    for stream in &mut streams {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("the server closed the connection");
        assert!(read.is_ok_and(|n| n == 0), "{rest:?}");
    }
}
