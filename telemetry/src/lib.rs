//! Telemetry shared by the scheduler and the executors: logs and OpenTelemetry traces
//! (`logging.rs`), the W3C trace context a query carries from its client to every task
//! (`trace_context.rs`), and Prometheus metrics with the small HTTP server both roles use
//! for `/metrics`, `/healthz` and `/readyz` (`metrics.rs`, `http.rs`).
//!
//! A query's trace: the scheduler opens a `query` span (child of the client's `traceparent`
//! when it sent one); each stage of its Ballista job is a span whose id is derived from the
//! trace id, the job id and the stage id ([`stage_span_id`]), so executors can parent their
//! `task` spans to it without asking the scheduler; the scheduler records the stage spans,
//! with their real start and end, when the job ends.

mod error;
mod http;
mod logging;
mod metrics;
mod trace_context;
mod units;

pub use error::{TelemetryError, error_chain};
pub use http::{Health, serve_http};
pub use logging::{TelemetryGuard, TelemetryOptions, init};
pub use metrics::{encode_metrics, prometheus};
/// The gauge an executor adds to a task's metrics: its query's peak memory on that executor
/// (bytes).
pub const QUERY_PEAK_MEMORY: &str = "tributary_query_peak_memory";

pub use trace_context::{QueryTelemetry, TraceParent, record_span, set_parent, stage_span_id};
pub use units::data_size;
