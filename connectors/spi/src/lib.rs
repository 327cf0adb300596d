//! The Tributary connector contract (Trino's SPI, mapped onto DataFusion).
//!
//! | role | here |
//! | --- | --- |
//! | factory | [`ConnectorFactory`] builds a [`Connector`] from a catalog's [`Properties`] |
//! | typed config | [`PropertyReader`]: typed getters, unknown keys rejected by name |
//! | metadata | the connector's DataFusion `CatalogProvider` ([`Connector::catalog_provider`]) |
//! | splits | [`SplitInfo`]s, one output partition each, built into a scan by [`ScanBuilder`] |
//! | reading | [`SplitReader::read`] streams the record batches of one split |
//! | serialisation | [`ConnectorCodec`] carries scans to executors; [`Connector::decode_reader`] |
//! | writes | [`Connector::begin_write`]: a [`DistributedWrite`] each task does a part of ([`WriterExec`]), committed once |
//!
//! A connector never builds its own `ExecutionPlan` leaf: [`ScanBuilder`] makes the scan a
//! `DataSourceExec` over a `FileScanConfig` whose files are the splits, the one leaf shape
//! Ballista narrows to each task's partitions. That is what makes every split run exactly once.

mod codec;
mod commit;
mod conform;
mod connector;
mod error;
mod estimate;
mod hidden;
mod json_functions;
mod operators;
mod properties;
mod registry;
mod runtime;
mod scope;
mod source;
mod split;
mod stores;
mod table_properties;
mod units;
mod views;
mod write;

pub use codec::{
    ConnectorCodec, MAX_TASK_BYTES, decode_json, decode_schema, encode_json, encode_schema,
};
pub use commit::{CommitGate, current_gate, point_of_no_return, within_gate};
pub use conform::conform_batch;
pub use connector::{Connector, ConnectorFactory};
pub use error::{ConnectorError, Result};
pub use estimate::{EstimateExec, SizeEstimate};
pub use hidden::{HIDDEN_COLUMN, hide, is_hidden};
pub use json_functions::{json_function, json_functions};
pub use operators::{PlanOperator, bytes_read, plan_operators};
pub use properties::{
    CONNECTOR_NAME, Properties, PropertyReader, Secret, installation_dir, installation_path,
};
pub use registry::{Catalogs, ConnectorRegistry};
pub use runtime::CatalogRuntime;
pub use scope::QueryScope;
pub use source::{ConnectorSource, scan_catalog, trace_scans_under};
pub use split::{CONNECTOR_STORE_URL, ScanBuilder, SplitInfo, SplitReader, SplitStream};
pub use stores::ConnectorStores;
pub use table_properties::{PropertySpec, PropertyValue, TableProperties};
pub use units::{parse_data_size, parse_duration};
pub use views::{
    CommitMode, ConnectorMaterializedView, ConnectorView, MaterializedViewDefinition, RefreshKind,
    RefreshState, SourceVersion, ViewColumn, ViewDefinition, ViewSecurity, is_view,
};
pub use write::{DistributedWrite, WriterExec, WrittenPart, written_parts, written_schema};

/// Registers the (empty) object store that connector scans name in a runtime environment.
/// Every scheduler and executor runtime must have it.
pub fn register_connector_store(
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
) -> datafusion::error::Result<()> {
    let url = url::Url::parse(CONNECTOR_STORE_URL)
        .map_err(|e| datafusion::error::DataFusionError::Internal(e.to_string()))?;
    runtime.register_object_store(
        &url,
        std::sync::Arc::new(object_store::memory::InMemory::new()),
    );
    Ok(())
}
