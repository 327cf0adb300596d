//! Logs on stderr and, when an OTLP endpoint is configured, spans exported over OTLP/gRPC.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::TelemetryError;

/// Default log filter: ours at info; Ballista's chatty internals and the Delta kernel's (five
/// lines for every snapshot it loads) at warn. DataFusion's file scans at error: a scan whose
/// files are dealt by ranges of an ordered result's key declares its partitioning, and every
/// task Ballista narrows to its own partitions warns that the declared count is not its own.
const DEFAULT_FILTER: &str = "info,ballista_executor=warn,ballista_scheduler=warn,ballista_core=warn,\
                              buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,\
                              datafusion_datasource::file_scan_config=error";

/// How spans are exported.
#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    /// `service.name` of this process's spans (`tributary-scheduler`, `tributary-executor`).
    pub service_name: String,
    /// OTLP/gRPC endpoint (`http://collector:4317`); `None`: no export.
    pub otlp_endpoint: Option<String>,
}

/// Keeps the exporter alive; flushes pending spans when dropped.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("cannot flush traces: {e}");
        }
    }
}

/// Installs the process's subscriber: logs filtered by `TRIBUTARY_LOG` (env-filter syntax),
/// plus OpenTelemetry export when `options.otlp_endpoint` is set. Must run inside a tokio
/// runtime when exporting (the batch exporter runs on it).
pub fn init(options: &TelemetryOptions) -> Result<TelemetryGuard, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    // The log filter applies to the log lines only: spans are exported whatever it says.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let Some(endpoint) = &options.otlp_endpoint else {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        return Ok(TelemetryGuard::default());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_millis(500))
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(options.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("tributary");
    // Only our own spans (info and above) are exported: DataFusion's and Ballista's
    // internals stay logs.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target().starts_with("tributary") && *m.level() <= tracing::Level::INFO
        }));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}
