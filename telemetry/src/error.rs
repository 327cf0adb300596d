//! Errors of telemetry set-up.

/// What stopped telemetry from starting.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {endpoint}: {message}")]
    Exporter {
        /// Where spans were to go.
        endpoint: String,
        /// Why not.
        message: String,
    },
    /// A metric could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(#[from] ::prometheus::Error),
    /// The HTTP server could not listen.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// An error followed by its causes, `a: b: c` (tonic's transport errors and reqwest's say
/// only "transport error" or "error sending request" without them).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
