//! The W3C trace context of a query (`traceparent`), how it travels to executors (a
//! DataFusion config extension, so Ballista sends it with every task), and the span ids of
//! stages, derived so that scheduler and executors agree without talking.

use std::time::SystemTime;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// What every task of a query carries besides the query's own settings
/// (`tributary.query_id`, `tributary.traceparent`, `tributary.max_memory_per_node`, and the
/// skew handling of partitioned joins: `tributary.skew_join_enabled`,
/// `tributary.skew_join_factor`, `tributary.skew_join_min_bytes`).
///
/// Written by hand rather than with DataFusion's `extensions_options!`: the macro's
/// `entries()` leaves the prefix off the keys, and Ballista sends a task's settings to its
/// executor as those entries, which the executor then cannot set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTelemetry {
    /// The query id (`system.runtime.queries.query_id`).
    pub query_id: String,
    /// W3C `traceparent` of the query's span; empty: not traced.
    pub traceparent: String,
    /// Bytes the query may reserve per executor when its session lowers
    /// `query.max-memory-per-node` (`query_max_memory_per_node`); empty: the node's limit.
    pub max_memory_per_node: String,
    /// Executors split the skewed partitions of partitioned joins (`skew_join_enabled`).
    pub skew_join_enabled: bool,
    /// A join partition is skewed when its side holds this many times the median partition
    /// (`skew_join_factor`)…
    pub skew_join_factor: u64,
    /// …and at least this many bytes (`skew_join_min_size`).
    pub skew_join_min_bytes: u64,
}

/// Skew handling's defaults. Spark's factor (`spark.sql.adaptive.skewJoin.skewedPartitionFactor`)
/// is 5 over its 200 shuffle partitions; ours are as many as the cluster's cores, where one key
/// holding 30% of four partitions makes its partition ~2.7 times the median. A quarter of
/// Spark's size threshold (these machines are small).
pub(crate) const SKEW_JOIN_FACTOR: u64 = 2;
/// See [`SKEW_JOIN_FACTOR`].
pub(crate) const SKEW_JOIN_MIN_BYTES: u64 = 64 << 20;

impl Default for QueryTelemetry {
    fn default() -> Self {
        Self {
            query_id: String::new(),
            traceparent: String::new(),
            max_memory_per_node: String::new(),
            skew_join_enabled: true,
            skew_join_factor: SKEW_JOIN_FACTOR,
            skew_join_min_bytes: SKEW_JOIN_MIN_BYTES,
        }
    }
}

impl ConfigExtension for QueryTelemetry {
    const PREFIX: &'static str = "tributary";
}

impl ExtensionOptions for QueryTelemetry {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::error::Result<()> {
        let key = key.strip_prefix("tributary.").unwrap_or(key);
        match key {
            "query_id" => self.query_id = value.to_owned(),
            "traceparent" => self.traceparent = value.to_owned(),
            "max_memory_per_node" => self.max_memory_per_node = value.to_owned(),
            "skew_join_enabled" => self.skew_join_enabled = parse(key, value)?,
            "skew_join_factor" => self.skew_join_factor = parse(key, value)?,
            "skew_join_min_bytes" => self.skew_join_min_bytes = parse(key, value)?,
            _ => {
                return Err(datafusion::error::DataFusionError::Configuration(format!(
                    "unknown setting 'tributary.{key}' (known: tributary.query_id, \
                     tributary.traceparent, tributary.max_memory_per_node, \
                     tributary.skew_join_enabled, tributary.skew_join_factor, \
                     tributary.skew_join_min_bytes)"
                )));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "tributary.query_id".to_owned(),
                value: Some(self.query_id.clone()),
                description: "The query a task belongs to",
            },
            ConfigEntry {
                key: "tributary.traceparent".to_owned(),
                value: Some(self.traceparent.clone()),
                description: "W3C traceparent of the query's span",
            },
            ConfigEntry {
                key: "tributary.max_memory_per_node".to_owned(),
                value: Some(self.max_memory_per_node.clone()),
                description: "Bytes the query may reserve per executor (session limit)",
            },
            ConfigEntry {
                key: "tributary.skew_join_enabled".to_owned(),
                value: Some(self.skew_join_enabled.to_string()),
                description: "Executors split the skewed partitions of partitioned joins",
            },
            ConfigEntry {
                key: "tributary.skew_join_factor".to_owned(),
                value: Some(self.skew_join_factor.to_string()),
                description: "A join partition this many times the median is skewed",
            },
            ConfigEntry {
                key: "tributary.skew_join_min_bytes".to_owned(),
                value: Some(self.skew_join_min_bytes.to_string()),
                description: "A skewed join partition holds at least this many bytes",
            },
        ]
    }
}

/// A task setting's value, or an error naming the setting.
fn parse<T: std::str::FromStr>(key: &str, value: &str) -> datafusion::error::Result<T> {
    value.parse().map_err(|_| {
        datafusion::error::DataFusionError::Configuration(format!(
            "invalid value '{value}' for setting 'tributary.{key}'"
        ))
    })
}

/// A W3C `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id.
    pub trace_id: u128,
    /// 8-byte span id of the parent.
    pub span_id: u64,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header; `None` when it is not a valid version-00 value.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The trace context of a span of `span`, if it is part of a valid trace.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| Self {
            trace_id: u128::from_be_bytes(span_context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(span_context.span_id().to_bytes()),
            sampled: span_context.is_sampled(),
        })
    }

    /// An OpenTelemetry context whose (remote) parent is this span.
    pub fn context(&self) -> Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let span = SpanContext::new(
            TraceId::from_bytes(self.trace_id.to_be_bytes()),
            SpanId::from_bytes(self.span_id.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(span)
    }

    /// The context of stage `stage_id` of job `job_id` in this trace.
    pub fn stage(&self, job_id: &str, stage_id: usize) -> Self {
        Self {
            span_id: stage_span_id(self.trace_id, job_id, stage_id),
            ..*self
        }
    }
}

/// The span id of a stage: FNV-1a over the trace id, the job id and the stage id (never 0).
pub fn stage_span_id(trace_id: u128, job_id: &str, stage_id: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&trace_id.to_be_bytes());
    eat(job_id.as_bytes());
    eat(b"/");
    eat(&(stage_id as u64).to_be_bytes());
    hash.max(1)
}

/// Makes `span` a child of `parent` (a remote span: the client's, or a stage's).
pub fn set_parent(span: &tracing::Span, parent: &TraceParent) {
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
    let _ = span.set_parent(parent.context());
}

/// Records a finished span with an explicit id and times (a stage, reported by the scheduler
/// once its tasks are done), as a child of `parent`.
pub fn record_span(
    name: &str,
    id: &TraceParent,
    parent: &TraceParent,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<(&'static str, String)>,
) {
    let tracer = opentelemetry::global::tracer("tributary");
    let builder = tracer
        .span_builder(name.to_owned())
        .with_kind(SpanKind::Internal)
        .with_span_id(SpanId::from_bytes(id.span_id.to_be_bytes()))
        .with_start_time(start)
        .with_attributes(
            attributes
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect::<Vec<_>>(),
        );
    let mut span = tracer.build_with_context(builder, &parent.context());
    opentelemetry::trace::Span::end_with_timestamp(&mut span, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_traceparent() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(header).expect("valid");
        assert_eq!(parsed.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(parsed.sampled);
        assert_eq!(parsed.header(), header);
        assert!(
            TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7").is_none()
        );
        assert!(TraceParent::parse("garbage").is_none());
    }

    #[test]
    fn telemetry_survives_ballista_key_values() {
        use datafusion::prelude::SessionConfig;
        let mut sent = SessionConfig::new().with_option_extension(QueryTelemetry::default());
        sent.options_mut()
            .set(
                "tributary.traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .expect("set");
        // What Ballista does: entries out, `set` on the executor's config.
        let mut received = SessionConfig::new().with_option_extension(QueryTelemetry::default());
        for entry in sent.options().entries() {
            if let Some(value) = entry.value {
                let _ = received.options_mut().set(&entry.key, &value);
            }
        }
        let telemetry = received
            .options()
            .extensions
            .get::<QueryTelemetry>()
            .expect("registered");
        assert!(telemetry.traceparent.starts_with("00-4bf9"));
    }

    #[test]
    fn stage_ids_are_stable_and_distinct() {
        let a = stage_span_id(7, "job", 1);
        assert_eq!(a, stage_span_id(7, "job", 1));
        assert_ne!(a, stage_span_id(7, "job", 2));
        assert_ne!(a, stage_span_id(8, "job", 1));
    }
}
