//! Delta Lake tables (`connector.name=delta_lake`, Trino's property names): tables are
//! registered in the same file metastore (with Spark's `spark.sql.sources.provider=delta`
//! parameter) and their truth is the Delta log at the table's location, read and written
//! with `deltalake-core` on the catalog's own object stores.
//!
//! - Reading: the log's active files (after the query's filters on partition columns) become
//!   the same DataFusion Parquet scan Hive tables use ([`crate::scan`]), so Ballista reads each
//!   split once and row groups are pruned by their statistics; row counts come from the log.
//! - Writing (`INSERT`, `CREATE TABLE … AS`): `deltalake`'s record batch writer writes
//!   Parquet files (per partition) as the rows arrive, and one Delta commit makes them
//!   visible; a write that fails or is killed before the commit leaves the table as it was.
//! - `CREATE TABLE … WITH (location = '…', partitioned_by = ARRAY[…])` creates the Delta log,
//!   or registers the table already at that location.
//!
//! Not supported yet (each refused with a clear error): deletion vectors, column mapping;
//! file skipping by the log's per-file statistics (Parquet row groups are still pruned).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, SchemaExt, Statistics};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::sink::DataSinkExec;
use deltalake_core::kernel::StructType;
use deltalake_core::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake_core::logstore::{
    LogStoreFactory, LogStoreRef, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories,
};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::SaveMode;
use deltalake_core::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;
use object_store::ObjectMeta;
use tributary_connector::{PropertyValue, TableProperties};

use crate::context::HiveContext;
use crate::error::{HiveError, Result};
use crate::metastore::{Column, EXTERNAL_TABLE, MANAGED_TABLE, TableMetadata};
use crate::partitions::{self, Partition};
use crate::scan::{FileScan, ScanFile, file_scan};
use crate::storage::Location;
use crate::types::hive_type;

mod commit;
mod logs;

use commit::DeltaSink;
pub use commit::{
    DELTA_WRITE, DeltaWrite, REFRESH_STATE_KEY, commit_rows, last_commit_value, version,
};
pub use logs::DeltaLogs;

/// The table properties of Delta tables (`system.metadata.table_properties`).
pub(crate) const PROPERTIES: [tributary_connector::PropertySpec; 2] = [
    crate::table_info::spec_typed(
        "location",
        "",
        "varchar",
        "Where the table's files and log live (default: under the schema's location)",
    ),
    crate::table_info::spec_typed(
        "partitioned_by",
        "ARRAY[]",
        "array(varchar)",
        "Partition columns",
    ),
];

/// The table parameter Spark and Trino use to mark Delta tables in a Hive metastore.
pub const PROVIDER: &str = "spark.sql.sources.provider";

/// Whether a metastore entry is a Delta table.
pub fn is_delta(metadata: &TableMetadata) -> bool {
    metadata
        .parameters
        .get(PROVIDER)
        .is_some_and(|p| p.eq_ignore_ascii_case("delta"))
}

fn table_url(location: &Location) -> Result<url::Url> {
    let text = match &location.bucket {
        Some((_, bucket)) => format!("s3://{bucket}/{}/", location.path),
        None => format!("file:///{}/", location.path),
    };
    url::Url::parse(&text).map_err(|e| HiveError::InvalidLocation {
        location: location.to_string(),
        reason: e.to_string(),
    })
}

fn delta_error(table: &str, what: &str, e: impl std::fmt::Display) -> HiveError {
    HiveError::BadData {
        table: table.to_owned(),
        message: format!("{what}: {e}"),
    }
}

/// Commits to `s3://` tables go through `deltalake`'s default log store: each commit file is
/// written with a conditional put (`If-None-Match: *`), which S3 and SeaweedFS honour, so two
/// writers can never both create the same version. (`deltalake-aws`, which would register this
/// scheme with a DynamoDB lock, is not used: the stores are the catalog's own.)
#[derive(Debug, Default)]
struct ConditionalPutLogStores;

impl LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &url::Url,
        options: &StorageConfig,
    ) -> deltalake_core::DeltaResult<LogStoreRef> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3_log_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(scheme) = url::Url::parse("s3://") {
            logstore_factories().insert(scheme, Arc::new(ConditionalPutLogStores));
        }
    });
}

/// A Delta table handle on the catalog's store, not loaded yet.
fn handle(ctx: &HiveContext, location: &Location, table: &str) -> Result<DeltaTable> {
    register_s3_log_stores();
    let store = ctx.stores.get(location)?;
    let url = table_url(location)?;
    DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| delta_error(table, "invalid Delta location", e))?
        .with_storage_backend(store, url)
        .build()
        .map_err(|e| delta_error(table, "cannot open the Delta table", e))
}

/// Loads the newest version of the Delta table at `location` (from the log read so far, when
/// it was read before: [`DeltaLogs`]).
pub async fn open(ctx: &HiveContext, location: &Location, table: &str) -> Result<DeltaTable> {
    ctx.delta_logs.open(ctx, location, table).await
}

/// Whether a Delta log is at `location`: commits or checkpoints in its `_delta_log/`, not what
/// some S3 servers list where files were deleted (SeaweedFS keeps an emptied `_delta_log/` as
/// a "directory": a table dropped and made again at its location was taken for a table still
/// there, and failed with "No files in log segment"). `target` names what wants the location.
pub(crate) async fn holds_table(
    ctx: &HiveContext,
    location: &Location,
    target: &str,
) -> Result<bool> {
    let store = ctx.stores.get(location)?;
    let log = location.child("_delta_log");
    let listed = store
        .list_with_delimiter(Some(&log.path))
        .await
        .map_err(|e| {
            HiveError::storage(format!("{target}: cannot use location '{location}'"), &e)
        })?;
    Ok(listed.objects.iter().any(|o| {
        o.location
            .filename()
            .is_some_and(|name| name.ends_with(".json") || name.contains(".checkpoint."))
    }))
}

/// `CREATE TABLE` in a Delta Lake catalog: creates the Delta log at the location (or takes
/// the table already there) and registers the table in the metastore.
pub async fn create_table(
    ctx: &HiveContext,
    (schema, table): (&str, &str),
    schema_location: Option<&str>,
    columns: &Schema,
    properties: &TableProperties,
) -> Result<TableMetadata> {
    let qualified = format!("{}.{schema}.{table}", ctx.catalog());
    let invalid = |message: String| HiveError::InvalidProperty {
        target: format!("table {qualified}"),
        message,
    };
    let mut location = None;
    let mut partitioned_by: Vec<String> = vec![];
    for (name, value) in &properties.0 {
        match (name.as_str(), value) {
            ("location", PropertyValue::String(l)) => location = Some(Location::parse(l)?),
            ("partitioned_by", PropertyValue::Array(items)) => {
                for item in items {
                    match item {
                        PropertyValue::String(s) => partitioned_by.push(s.to_ascii_lowercase()),
                        other => {
                            return Err(invalid(format!(
                                "partitioned_by must list column names, not {other}"
                            )));
                        }
                    }
                }
            }
            _ => {
                return Err(invalid(format!(
                    "unknown or invalid table property '{name}' = {value} (known: location, partitioned_by)"
                )));
            }
        }
    }
    for name in &partitioned_by {
        if columns.field_with_name(name).is_err() {
            return Err(invalid(format!(
                "partition column '{name}' is not a column of the table"
            )));
        }
    }
    let external = location.is_some();
    let location = match (location, schema_location) {
        (Some(l), _) => l,
        (None, Some(base)) => Location::parse(base)?.child(table),
        (None, None) => ctx.table_dir(schema, table),
    };
    let has_log = holds_table(ctx, &location, &format!("table {qualified}")).await?;
    let delta = if !has_log {
        let kernel: StructType = columns
            .try_into_kernel()
            .map_err(|e| invalid(format!("columns cannot be stored in Delta Lake: {e}")))?;
        CreateBuilder::new()
            .with_log_store(handle(ctx, &location, &qualified)?.log_store())
            .with_table_name(table)
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partitioned_by.clone())
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .map_err(|e| delta_error(&qualified, "cannot create the Delta table", e))?
    } else {
        let delta = open(ctx, &location, &qualified).await?;
        let found = arrow_schema(&delta, &qualified)?;
        for f in columns.fields() {
            if found.field_with_name(f.name()).is_err() {
                return Err(invalid(format!(
                    "the Delta table at {location} has no column '{}' (it has: {})",
                    f.name(),
                    found
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        delta
    };
    let arrow = arrow_schema(&delta, &qualified)?;
    let partition_columns: Vec<String> = delta
        .snapshot()
        .map_err(|e| delta_error(&qualified, "cannot read the Delta table", e))?
        .metadata()
        .partition_columns()
        .to_vec();
    let column = |f: &FieldRef| Column {
        name: f.name().clone(),
        hive_type: hive_type(f.data_type()).unwrap_or_else(|| f.data_type().to_string()),
        comment: None,
    };
    let mut parameters = BTreeMap::new();
    parameters.insert(PROVIDER.to_owned(), "delta".to_owned());
    if !external && schema_location.is_some() {
        parameters.insert(crate::table_info::LOCATION.to_owned(), location.to_string());
    }
    Ok(TableMetadata {
        writer_version: Some(format!("tributary {}", env!("CARGO_PKG_VERSION"))),
        owner: Some("tributary".into()),
        table_type: if external {
            EXTERNAL_TABLE
        } else {
            MANAGED_TABLE
        }
        .to_owned(),
        data_columns: arrow
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .map(column)
            .collect(),
        partition_columns: arrow
            .fields()
            .iter()
            .filter(|f| partition_columns.contains(f.name()))
            .map(column)
            .collect(),
        parameters,
        storage_format: None,
        serde_parameters: BTreeMap::new(),
        external_location: external.then(|| location.to_string()),
        view_original_text: None,
        view_expanded_text: None,
    })
}

fn arrow_schema(delta: &DeltaTable, table: &str) -> Result<Schema> {
    let snapshot = delta
        .snapshot()
        .map_err(|e| delta_error(table, "cannot read the Delta table", e))?;
    let kernel = snapshot.schema();
    kernel
        .as_ref()
        .try_into_arrow()
        .map_err(|e| delta_error(table, "the Delta schema has no Arrow form", e))
}

/// A Delta table.
#[derive(Debug)]
pub struct DeltaLakeTable {
    ctx: Arc<HiveContext>,
    qualified: String,
    location: Location,
    delta: DeltaTable,
    /// Data columns, then partition columns.
    schema: SchemaRef,
    data_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    definition: String,
}

impl DeltaLakeTable {
    /// Begins a statement's write into the table, done by the executors' tasks.
    pub fn begin_write(&self, overwrite: bool) -> tributary_connector::Result<DeltaWrite> {
        if overwrite {
            return Err(DataFusionError::NotImplemented(format!(
                "table {}: INSERT OVERWRITE is not supported yet",
                self.qualified
            ))
            .into());
        }
        Ok(DeltaWrite {
            ctx: Arc::clone(&self.ctx),
            qualified: self.qualified.clone(),
            location: self.location.clone(),
        })
    }

    /// Loads a registered Delta table.
    pub async fn load(
        ctx: Arc<HiveContext>,
        qualified: String,
        location: Location,
    ) -> Result<Self> {
        let delta = open(&ctx, &location, &qualified).await?;
        let snapshot = delta
            .snapshot()
            .map_err(|e| delta_error(&qualified, "cannot read the Delta table", e))?;
        if snapshot
            .table_config()
            .column_mapping_mode
            .is_some_and(|m| m != delta_kernel::table_features::ColumnMappingMode::None)
        {
            return Err(HiveError::NotSupported(format!(
                "table {qualified}: Delta column mapping is not supported yet"
            )));
        }
        let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let arrow = arrow_schema(&delta, &qualified)?;
        let data: Vec<Field> = arrow
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let partition_fields: Vec<FieldRef> = partition_columns
            .iter()
            .filter_map(|name| {
                arrow
                    .field_with_name(name)
                    .ok()
                    .map(|f| Arc::new(f.clone()))
            })
            .collect();
        let mut all = data.clone();
        all.extend(partition_fields.iter().map(|f| f.as_ref().clone()));
        let columns: Vec<String> = all
            .iter()
            .map(|f| {
                format!(
                    "   {} {}",
                    f.name(),
                    hive_type(f.data_type()).unwrap_or_else(|| f.data_type().to_string())
                )
            })
            .collect();
        let mut props = vec![format!("   location = '{location}'")];
        if !partition_columns.is_empty() {
            let names: Vec<String> = partition_columns.iter().map(|c| format!("'{c}'")).collect();
            props.push(format!("   partitioned_by = ARRAY[{}]", names.join(", ")));
        }
        let definition = format!(
            "CREATE TABLE {qualified} (\n{}\n)\nWITH (\n{}\n)",
            columns.join(",\n"),
            props.join(",\n")
        );
        Ok(Self {
            ctx,
            qualified,
            location,
            delta,
            schema: Arc::new(Schema::new(all)),
            data_schema: Arc::new(Schema::new(data)),
            partition_fields,
            definition,
        })
    }

    /// The active files with their partition values, and the rows the log counts.
    async fn files(&self) -> Result<(Vec<ScanFile>, u64)> {
        let views: Vec<_> = self
            .delta
            .get_active_add_actions_by_partitions(&[])
            .try_collect()
            .await
            .map_err(|e| delta_error(&self.qualified, "cannot list the Delta table's files", e))?;
        let mut files = Vec::with_capacity(views.len());
        let mut rows = 0u64;
        for view in views {
            if view.deletion_vector_descriptor().is_some() {
                return Err(HiveError::NotSupported(format!(
                    "table {}: file {} has a deletion vector; Delta deletion vectors are not supported yet",
                    self.qualified,
                    view.path()
                )));
            }
            let raw = view.partition_values_map();
            let mut values = Vec::with_capacity(self.partition_fields.len());
            for field in &self.partition_fields {
                let value = match raw.get(field.name()).cloned().flatten() {
                    None => ScalarValue::try_from(field.data_type())?,
                    Some(text) => ScalarValue::try_from_string(text.clone(), field.data_type())
                        .map_err(|_| HiveError::BadData {
                            table: self.qualified.clone(),
                            message: format!(
                                "partition value '{text}' of '{}' is not a {}",
                                field.name(),
                                field.data_type()
                            ),
                        })?,
                };
                values.push(value);
            }
            rows += view.num_records().unwrap_or(0) as u64;
            // Joined part by part: the file's path is already percent-encoded (partition
            // values with spaces), formatting it into a new path would encode it twice.
            let relative = view.object_store_path();
            let location = object_store::path::Path::from_iter(
                self.location.path.parts().chain(relative.parts()),
            );
            files.push(ScanFile {
                meta: ObjectMeta {
                    location,
                    last_modified: view.modification_datetime().unwrap_or_default(),
                    size: u64::try_from(view.size()).unwrap_or(0),
                    e_tag: None,
                    version: None,
                },
                partition_values: values,
                // The log's per-file statistics are not passed on yet.
                statistics: None,
            });
        }
        Ok((files, rows))
    }
}

#[async_trait]
impl TableProvider for DeltaLakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(partitions::filter_pushdown(filters, &self.partition_fields))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (files, rows) = self.files().await?;
        let names: Vec<&str> = self
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let declared: Vec<Expr> = filters
            .iter()
            .filter(|f| partitions::only_columns(f, &names))
            .cloned()
            .collect();
        let as_partitions: Vec<Partition> = files
            .iter()
            .map(|f| Partition {
                dir: String::new(),
                keys: vec![],
                values: f.partition_values.clone(),
            })
            .collect();
        let keep =
            partitions::prune_declared(state, &as_partitions, &self.partition_fields, &declared)?;
        let total = files.len();
        let files: Vec<ScanFile> = files
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(f, _)| f)
            .collect();
        tracing::info!(table = %self.qualified, files = files.len(), files_listed = total, "delta scan");
        let mut statistics = Statistics::new_unknown(&self.schema);
        #[allow(clippy::cast_possible_truncation)]
        {
            statistics.num_rows = Precision::Inexact(rows as usize);
            statistics.total_byte_size =
                Precision::Inexact(files.iter().map(|f| f.meta.size).sum::<u64>() as usize);
        }
        file_scan(
            state,
            FileScan {
                format: Arc::new(
                    ParquetFormat::default().with_options(state.table_options().parquet.clone()),
                ),
                store_url: self.location.store_url(self.ctx.catalog()),
                data_schema: Arc::clone(&self.data_schema),
                partition_fields: self.partition_fields.clone(),
                files,
                max_split_size: self.ctx.config.max_split_size,
                splittable: true,
                statistics,
            },
            projection,
            limit,
        )
        .await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "table {}: INSERT OVERWRITE is not supported yet",
                self.qualified
            )));
        }
        self.schema
            .logically_equivalent_names_and_types(&input.schema())
            .map_err(|e| DataFusionError::Plan(format!("table {}: {e}", self.qualified)))?;
        let sink = DeltaSink {
            ctx: Arc::clone(&self.ctx),
            qualified: self.qualified.clone(),
            location: self.location.clone(),
            schema: Arc::clone(&self.schema),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
