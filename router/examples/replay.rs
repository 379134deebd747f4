//! Replayed subgraphs for load figures: each `--route LISTEN=UPSTREAM` serves on LISTEN the
//! responses UPSTREAM gave. The first request with a given body is sent to UPSTREAM and its
//! response (status, content type, body) kept; every later request with the same body gets the
//! kept response without UPSTREAM. So a router under load talks HTTP to real servers that
//! answer what the real subgraphs answered, while the subgraphs' own work (SQL, resolvers)
//! leaves the machine, and the router's CPU figures are less disturbed by it.
//!
//! `cargo run --release --example replay -- --route 127.0.0.1:4011=http://127.0.0.1:4001/graphql …`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// `LISTEN=UPSTREAM`: serve on LISTEN what UPSTREAM (a GraphQL URL) answered.
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
}

/// A kept response.
struct Kept {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

#[derive(Clone)]
struct Replay {
    upstream: Arc<str>,
    http: reqwest::Client,
    kept: Arc<Mutex<HashMap<Bytes, Arc<Kept>>>>,
}

async fn answer(State(replay): State<Replay>, headers: HeaderMap, body: Bytes) -> Response {
    let found = replay
        .kept
        .lock()
        .expect("not poisoned")
        .get(&body)
        .cloned();
    let kept = match found {
        Some(kept) => kept,
        None => {
            let mut request = replay.http.post(&*replay.upstream).body(body.clone());
            if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
            };
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let Ok(payload) = response.bytes().await else {
                return (StatusCode::BAD_GATEWAY, "upstream body").into_response();
            };
            let kept = Arc::new(Kept {
                status,
                content_type,
                body: payload,
            });
            // Only successful answers are replayed; anything else is passed on once.
            if status.is_success() {
                replay
                    .kept
                    .lock()
                    .expect("not poisoned")
                    .insert(body, kept.clone());
            }
            kept
        }
    };
    let mut response = (kept.status, kept.body.clone()).into_response();
    if let Some(content_type) = &kept.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut servers = Vec::new();
    for route in &args.routes {
        let (listen, upstream) = route
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected LISTEN=UPSTREAM, got {route}"))?;
        let listen: SocketAddr = listen.parse()?;
        let replay = Replay {
            upstream: upstream.into(),
            http: http.clone(),
            kept: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .fallback(axum::routing::post(answer))
            .with_state(replay);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    for server in servers {
        server.await??;
    }
    Ok(())
}
