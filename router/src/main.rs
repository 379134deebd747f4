//! `tessera`: Tessera's federation router. Parses the command line, sets up logging to stderr,
//! and hands over to [`tessera::server::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tessera::server::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

/// The router allocates many small JSON values per request; mimalloc handles that with far
/// less time and lock contention than the system allocator (see scripts/load.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Startup, accepting connections and hot reload run here; requests run on the serving
    // threads, each with its own runtime (`tessera::server::serving`).
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let outcome = match cli.command {
        Command::Router(args) => cli::run_router(args).await,
        Command::Plan(args) => cli::plan_command(&args).map(|plan| println!("{plan}")),
        Command::Compose(args) => cli::compose_command(&args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
