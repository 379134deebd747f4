//! Serving connections on several threads, each running its own single-threaded runtime.
//!
//! Why not one work-stealing runtime: a router spends most of each request waiting for
//! subgraphs, so its threads are mostly parked, and a work-stealing runtime wakes a parked
//! sibling (a futex call and a context switch) whenever work arrives that the sibling could
//! steal. Measured with `scripts/compare-routers.sh`, that cost a fifth of the router's CPU per
//! request. Here each accepted connection is handed, round-robin, to one serving thread, which
//! runs that connection, its requests and their subgraph fetches (over the thread's own
//! connection pool, see [`crate::execute::fetch::use_pool`]) with no other thread involved.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// How many serving threads to use by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Serves `app` on `listener` from `threads` serving threads (at least one) until `shutdown`
/// completes; then stops accepting, lets each connection finish the request it is serving,
/// and returns once every connection is closed. Dropping the future stops the same way, in the
/// background. Tests bind `127.0.0.1:0` and pass the listener in.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    threads: usize,
) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut queues = Vec::new();
    let mut finished = Vec::new();
    for index in 0..threads.max(1) {
        let (queue, incoming) = mpsc::unbounded_channel();
        let (done, finish) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (app, stopped) = (app.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("tessera-serve-{}", index + 1))
            .spawn(move || {
                crate::execute::fetch::use_pool(index + 1);
                runtime.block_on(serve_thread(incoming, app, stopped));
                let _ = done.send(());
            })?;
        queues.push(queue);
        finished.push(finish);
    }
    let mut shutdown = pin!(shutdown);
    let mut next = 0;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Responses go out in one write; Nagle's delay would only hold back the
                    // last packet of a large one.
                    let _ = stream.set_nodelay(true);
                    match stream.into_std() {
                        Ok(stream) => {
                            let _ = queues[next % queues.len()].send(stream);
                            next += 1;
                        }
                        Err(err) => tracing::warn!(error = %err, "cannot hand over a connection"),
                    }
                }
                // Out of file descriptors, say: accepting again at once would spin.
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(queues);
    for finish in finished {
        let _ = finish.await;
    }
    Ok(())
}

/// One serving thread: runs the connections handed to it until the queue closes, then waits
/// for them to finish.
async fn serve_thread(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    app: Router,
    stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            stream = incoming.recv() => {
                let Some(stream) = stream else { break };
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => {
                        connections.spawn(connection(stream, app.clone(), stopped.clone()));
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot take over a connection"),
                }
            }
            // Finished connections are reaped as they end, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Serves one HTTP/1.1 connection (WebSocket upgrades included); once the server stops, it
/// finishes the request in flight and closes.
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    mut stopped: watch::Receiver<bool>,
) {
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    let mut serving = pin!(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
    );
    tokio::select! {
        result = serving.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        // A dropped sender stops the server too.
        () = async { drop(stopped.wait_for(|stop| *stop).await) } => {
            serving.as_mut().graceful_shutdown();
            if let Err(err) = serving.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
    }
}
