//! `tessera`: Tessera's federation router.
//!
//! Not built yet: the planner, executor and composition arrive in their own issues. Until then
//! this binary says so instead of pretending to route.

fn main() -> std::process::ExitCode {
    eprintln!(
        "tessera: the federation router is not implemented yet; run the subgraphs with \
         `cargo run --bin tessera-example`"
    );
    std::process::ExitCode::from(2)
}
