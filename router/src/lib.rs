//! Tessera's federation router: one GraphQL endpoint over any Federation v2 supergraph.
//!
//! # Layout
//!
//! A request flows through the modules in this order; each depends only on those before it.
//!
//! - [`supergraph`]: the supergraph SDL (Apollo's join spec) → a typed [`supergraph::Supergraph`]:
//!   which subgraph resolves each type and field, keys, requires, provides, overrides, interface
//!   objects; and the API schema that clients see (`@inaccessible` removed).
//! - [`request`]: a client request → a validated operation, coerced variables, and the
//!   introspection part answered from the API schema.
//! - [`plan`]: operation → [`plan::QueryPlan`] (Fetch, Flatten, Sequence, Parallel, Condition).
//!   Pure and synchronous; plans print as readable text.
//! - [`execute`]: runs a plan against the subgraphs over pooled HTTP, merges the responses,
//!   rewrites error paths and shapes the client's response with spec null propagation.
//! - [`engine`]: the request pipeline that ties these together, with the plan cache.
//! - [`live`]: the engine in service, swapped atomically when the supergraph changes;
//!   [`reload`] recomposes from a `supergraph.yaml` when its sources change.
//! - [`compose`]: subgraph SDL → supergraph SDL, with every diagnostic.
//! - [`server`]: the axum app: `/graphql` (POST and GET), `/health`, `/metrics`
//!   ([`metrics`]).
//! - [`error`]: the [`error::GraphQLError`] every layer reports to clients.
//! - [`body`]: HTTP bodies read whole up to a limit (client requests, subgraph responses).

// `GraphQLError` is the error type of the request path on purpose: errors are the cold path, and
// boxing each one would cost an allocation where it saves none.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod compose;
pub mod engine;
pub mod error;
pub mod execute;
pub mod headers;
pub mod jsontext;
pub mod live;
pub mod metrics;
pub mod plan;
pub mod reload;
pub mod request;
pub mod server;
pub mod subscribe;
pub mod supergraph;

#[cfg(test)]
mod layering;
