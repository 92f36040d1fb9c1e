//! The accept loop of the web endpoint. `axum::serve` sets no header-read timeout and no
//! connection limit, so a thousand idle half-requests held it until the process ran out
//! of descriptors. Here every connection must send its request head within
//! [`Limits::header_timeout`], lives at most [`Limits::lifetime`], and at most
//! [`Limits::max_connections`] are open at once; one over the limit is closed at once
//! rather than left waiting in the backlog.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What one connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Time allowed to send a request's head (line and headers).
    pub header_timeout: Duration,
    /// Longest a connection (with keep-alive, all its requests) stays open.
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
        }
    }
}

/// Raises the soft open-file limit to the hard one (many systems start services at
/// 1,024) and returns the connections that fit under it, keeping room for the store,
/// the relay and the log.
fn room_for(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "Could not raise the open-file limit.");
        }
    }
    match getrlimit(Resource::Nofile).current {
        Some(n) => wanted.min(
            usize::try_from(n.saturating_sub(128))
                .unwrap_or(usize::MAX)
                .max(16),
        ),
        None => wanted,
    }
}

/// Serves `router` on `listener` under `limits` until `stop` resolves, then lets open
/// requests finish (for up to 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let max = room_for(limits.max_connections.max(1));
    if max < limits.max_connections {
        tracing::warn!(
            max_connections = max,
            "The open-file limit allows fewer connections than `web.max_connections`."
        );
    }
    let limits = Limits {
        max_connections: max,
        ..limits
    };
    let permits = Arc::new(Semaphore::new(max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let refused = Arc::new(AtomicU64::new(0));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a moment, never exit.
                    tracing::warn!(error = %e, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(peer = %peer, refused = n, max_connections = limits.max_connections,
                    "Connection limit reached; closing new connections until some finish.");
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let lifetime = limits.lifetime;
        tokio::spawn(async move {
            // A connection past its lifetime is dropped: a slow body or a keep-alive
            // that never ends cannot hold its slot for ever.
            let _ = tokio::time::timeout(lifetime, conn).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("Some web requests were still open at shutdown; closed them.");
        }
    }
}
