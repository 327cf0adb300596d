//! Prometheus metrics: each process keeps its own registry (`prometheus` crate) and serves
//! it in the text exposition format.

pub use ::prometheus;

use ::prometheus::{Encoder, Registry, TextEncoder};

use crate::TelemetryError;

/// The registry's metrics in Prometheus' text format.
pub fn encode_metrics(registry: &Registry) -> Result<String, TelemetryError> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}
