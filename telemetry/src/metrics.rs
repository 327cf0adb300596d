//! Prometheus metrics: each process keeps its own registry (`prometheus` crate) and serves
//! it in the text exposition format, with the default registry's metrics (connectors register
//! theirs there, having no access to the process's).

pub use ::prometheus;

use ::prometheus::{Encoder, Registry, TextEncoder};

use crate::TelemetryError;

/// The registry's metrics in Prometheus' text format, with those libraries of this process
/// keep in `prometheus`' default registry (connectors' own, such as the file system cache's).
pub fn encode_metrics(registry: &Registry) -> Result<String, TelemetryError> {
    let mut buffer = Vec::new();
    let mut families = registry.gather();
    families.extend(::prometheus::gather());
    TextEncoder::new().encode(&families, &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}
