//! The engine in service, swappable at runtime: a recomposed supergraph replaces it atomically,
//! while requests already running finish on the engine they started with.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::engine::Engine;

/// The engine currently serving, and why the last recomposition failed (if it did).
#[derive(Debug)]
pub struct Live {
    engine: ArcSwap<Engine>,
    composition_errors: ArcSwap<Vec<String>>,
    /// Counts the engines put in service: live subscriptions watch it to re-plan.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Live {
    /// Serves `engine`.
    pub fn new(engine: impl Into<Arc<Engine>>) -> Self {
        Self {
            engine: ArcSwap::new(engine.into()),
            composition_errors: ArcSwap::from_pointee(Vec::new()),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes each time another engine is put in service.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The engine to run one request on.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// Puts `engine` in service and clears the recorded composition errors.
    pub fn replace(&self, engine: Engine) {
        self.engine.store(Arc::new(engine));
        self.composition_errors.store(Arc::new(Vec::new()));
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Records that the latest recomposition failed; the engine in service stays.
    pub fn set_composition_errors(&self, errors: Vec<String>) {
        self.composition_errors.store(Arc::new(errors));
    }

    /// Why the latest recomposition failed; empty when it did not.
    pub fn composition_errors(&self) -> Arc<Vec<String>> {
        self.composition_errors.load_full()
    }
}
