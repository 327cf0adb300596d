//! The `system` catalog, present in every session: `system.runtime.{queries,tasks,nodes}`
//! from the scheduler's [`Monitor`], `system.metadata.{catalogs,table_properties,
//! session_properties}` from the loaded catalogs and the session properties. Tables are
//! computed when a query scans them (on the scheduler, at planning) and travel to the
//! executors as in-memory scans, so they filter and join like any table.

mod metadata;
mod runtime;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DurationMillisecondArray, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
    TableProvider,
};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use tributary_connector::Catalogs;

use crate::monitor::Monitor;
use crate::session::SessionDefaults;

/// Name of the system catalog.
pub(crate) const SYSTEM_CATALOG: &str = "system";

type Fill = Arc<dyn Fn() -> BoxFuture<'static, DfResult<RecordBatch>> + Send + Sync>;

/// A table whose rows are computed at each scan.
struct SystemTable {
    schema: SchemaRef,
    fill: Fill,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemTable")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = (self.fill)().await?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

/// The `system` catalog over `monitor` and `catalogs`.
pub(crate) fn catalog(
    monitor: Monitor,
    catalogs: Catalogs,
    session_defaults: SessionDefaults,
) -> DfResult<Arc<dyn CatalogProvider>> {
    let catalog = MemoryCatalogProvider::new();
    let runtime = Arc::new(MemorySchemaProvider::new());
    for (name, table) in runtime::tables(&monitor) {
        runtime.register_table(name.to_owned(), Arc::new(table))?;
    }
    let metadata = Arc::new(MemorySchemaProvider::new());
    for (name, table) in metadata::tables(&catalogs, &session_defaults) {
        metadata.register_table(name.to_owned(), Arc::new(table))?;
    }
    catalog.register_schema("runtime", runtime)?;
    catalog.register_schema("metadata", metadata)?;
    Ok(Arc::new(catalog))
}

/// Builds one table's columns, row by row.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn text(mut self, name: &str, values: Vec<Option<String>>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.arrays.push(Arc::new(StringArray::from(values)));
        self
    }

    fn int(mut self, name: &str, values: Vec<Option<i64>>) -> Self {
        self.fields.push(Field::new(name, DataType::Int64, true));
        self.arrays.push(Arc::new(Int64Array::from(values)));
        self
    }

    fn boolean(mut self, name: &str, values: Vec<Option<bool>>) -> Self {
        self.fields.push(Field::new(name, DataType::Boolean, true));
        self.arrays.push(Arc::new(BooleanArray::from(values)));
        self
    }

    fn time(mut self, name: &str, values: Vec<Option<i64>>) -> Self {
        self.fields.push(Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ));
        self.arrays.push(Arc::new(
            TimestampMillisecondArray::from(values).with_timezone("UTC"),
        ));
        self
    }

    fn duration(mut self, name: &str, values: Vec<Option<i64>>) -> Self {
        self.fields.push(Field::new(
            name,
            DataType::Duration(TimeUnit::Millisecond),
            true,
        ));
        self.arrays
            .push(Arc::new(DurationMillisecondArray::from(values)));
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.clone()))
    }

    fn batch(self) -> DfResult<RecordBatch> {
        let schema = self.schema();
        Ok(RecordBatch::try_new(schema, self.arrays)?)
    }
}

/// A system table: `empty` gives its schema, `rows` computes its rows at each scan.
fn table<F>(empty: Columns, rows: F) -> SystemTable
where
    F: Fn() -> BoxFuture<'static, DfResult<Columns>> + Send + Sync + 'static,
{
    let rows = Arc::new(rows);
    let fill: Fill = Arc::new(move || {
        let rows = Arc::clone(&rows);
        Box::pin(async move { (rows)().await?.batch() })
    });
    SystemTable {
        schema: empty.schema(),
        fill,
    }
}
