//! The HTTP server of a role: `/healthz` (alive), `/readyz` (accepting work) and whatever
//! routes the role adds (`/metrics`, the web UI, `/v1/…`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::TelemetryError;

/// Whether a process accepts work (`/readyz`); it is alive as long as it answers.
#[derive(Debug, Clone, Default)]
pub struct Health {
    not_ready: Arc<AtomicBool>,
}

impl Health {
    /// Marks the process ready or not (draining).
    pub fn set_ready(&self, ready: bool) {
        self.not_ready.store(!ready, Ordering::SeqCst);
    }

    /// Whether the process accepts work.
    pub fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }
}

/// Binds `addr` and serves `routes` plus `/healthz` and `/readyz` on the current runtime;
/// returns the bound address (port 0 picks one).
pub async fn serve_http(
    addr: SocketAddr,
    routes: Router,
    health: Health,
) -> Result<SocketAddr, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| TelemetryError::Listen { addr, source })?;
    let app = routes.route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let ready = health.ready();
            async move {
                if ready {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                }
            }
        }),
    );
    tokio::spawn(async move {
        // Handlers may ask who is calling (`ConnectInfo`).
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!("HTTP server on {bound} stopped: {e}");
        }
    });
    Ok(bound)
}
