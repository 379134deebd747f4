//! Tessera's integration tests: one binary, one module per concern. Every test runs real
//! servers on `127.0.0.1:0` against real PostgreSQL and Redis, with a database and a channel
//! prefix of its own (see the `tessera_tests` harness).

mod bad_input;
mod browser;
mod clients;
mod cluster;
mod conflicts;
mod dashboard;
mod deploy;
mod entities;
mod event_ids;
mod events;
mod hot_reload;
mod loss;
mod migrations;
mod resume;
mod router;
mod saga;
mod schema_files;
mod startup;
mod statements;
mod subscription_life;
mod subscriptions;
