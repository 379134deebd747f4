//! A one-subgraph shop for de-duplication and header tests: `slow(ms)` answers after `ms`
//! milliseconds (so identical requests overlap), `whoami` echoes the `x-user-id` header the
//! subgraph received, and the `next` mutation hands out a new number each time it runs.
//! Its supergraph is composed with Tessera's own composition from the subgraph's SDL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_graphql::{Context, EmptySubscription, Object, Schema};
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// The subgraph and its counter.
pub struct Counter {
    pub server: SubgraphServer,
    sdl: String,
}

struct Next(AtomicU64);

struct UserId(Option<String>);

#[derive(Default)]
struct Query;

#[Object]
impl Query {
    /// Answers 42 after `ms` milliseconds.
    async fn slow(&self, ms: u64) -> i32 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        42
    }

    /// The `x-user-id` this request carried.
    async fn whoami(&self, ctx: &Context<'_>, ms: u64) -> Option<String> {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        ctx.data_opt::<UserId>().and_then(|u| u.0.clone())
    }
}

#[derive(Default)]
struct Mutation;

#[Object]
impl Mutation {
    /// A new number, after `ms` milliseconds.
    async fn next(&self, ctx: &Context<'_>, ms: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        ctx.data_unchecked::<Arc<Next>>()
            .0
            .fetch_add(1, Ordering::SeqCst)
            + 1
    }
}

impl Counter {
    /// Starts the subgraph.
    pub async fn start() -> Self {
        let schema = Schema::build(Query, Mutation, EmptySubscription)
            .enable_federation()
            .data(Arc::new(Next(AtomicU64::new(0))))
            .finish();
        let sdl = schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation());
        let app = Router::new().route(
            "/",
            post(
                move |headers: HeaderMap,
                      axum::Json(request): axum::Json<async_graphql::Request>| {
                    let schema = schema.clone();
                    let user = headers
                        .get("x-user-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    async move { axum::Json(schema.execute(request.data(UserId(user))).await) }
                },
            ),
        );
        Self {
            server: SubgraphServer::serve_app(app).await,
            sdl,
        }
    }

    /// An engine over the subgraph.
    pub fn engine(&self, config: EngineConfig) -> Engine {
        let supergraph = super::compose(&[("counter", self.server.url.as_str(), self.sdl.clone())]);
        Engine::new(supergraph, config)
    }
}
