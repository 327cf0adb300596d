//! Errors of the executor role.

/// What stopped an executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// `--scheduler` is not `host:port`.
    #[error("invalid scheduler address '{0}': expected HOST:PORT, e.g. 127.0.0.1:50050")]
    SchedulerAddress(String),
    /// The work directory cannot be created.
    #[error("cannot create work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server could not start.
    #[error(transparent)]
    Http(#[from] tributary_telemetry::TelemetryError),
    /// Memory or spill settings cannot be applied (spill directory, sizes).
    #[error("memory settings: {0}")]
    Memory(#[from] datafusion::error::DataFusionError),
    /// Internal TLS settings are refused.
    #[error(transparent)]
    Security(#[from] tributary_security::SecurityError),
    /// Ballista's executor failed.
    #[error("executor failed: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
}
