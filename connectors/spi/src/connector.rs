//! The two traits every connector implements: a factory and the connector it builds.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::optimizer::OptimizerRule;
use object_store::ObjectStore;

use crate::error::Result;
use crate::properties::Properties;
use crate::split::SplitReader;
use crate::table_properties::TableProperties;
use crate::views::{
    CommitMode, MaterializedViewDefinition, RefreshState, SourceVersion, ViewDefinition,
};
use crate::write::DistributedWrite;

/// Builds the connector of a catalog from its properties file (Trino's `ConnectorFactory`).
pub trait ConnectorFactory: Debug + Send + Sync {
    /// The value of `connector.name` this factory answers to.
    fn name(&self) -> &'static str;

    /// Builds a connector for `catalog` from its properties.
    ///
    /// Implementations read their typed configuration with [`Properties::reader`] and call
    /// [`crate::PropertyReader::finish`] so that unknown keys stop start-up. No network I/O
    /// here: a source that is down must not keep the scheduler from starting.
    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>>;
}

/// One configured catalog.
#[async_trait]
pub trait Connector: Debug + Send + Sync {
    /// The DataFusion catalog (schemas and tables) this connector exposes.
    fn catalog_provider(&self) -> Arc<dyn CatalogProvider>;

    /// Schema names, or why the source cannot list them (DataFusion's
    /// `CatalogProvider::schema_names` has no way to report an error: SHOW SCHEMAS and the
    /// Flight SQL metadata commands ask here).
    fn schema_names(&self) -> Result<Vec<String>> {
        Ok(self.catalog_provider().schema_names())
    }

    /// Table names of a schema (`None`: no such schema), or why they cannot be listed.
    fn table_names(&self, schema: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .catalog_provider()
            .schema(schema)
            .map(|s| s.table_names()))
    }

    /// Logical optimizer rules the connector adds to every session (for example to send whole
    /// aggregates to a database). Rules with the same name are added once.
    fn optimizer_rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        vec![]
    }

    /// `CREATE SCHEMA catalog.schema WITH (…)`. Without properties the scheduler registers the
    /// schema through the catalog provider; connectors that take properties override this.
    fn create_schema(&self, schema: &str, properties: &TableProperties) -> Result<()> {
        reject_properties(&properties.0, "schemas")?;
        self.catalog_provider().register_schema(
            schema,
            Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
        )?;
        Ok(())
    }

    /// The properties `CREATE TABLE … WITH (…)` accepts (none by default).
    fn table_properties(&self) -> Vec<crate::PropertySpec> {
        Vec::new()
    }

    /// `CREATE TABLE catalog.schema.table (…) WITH (…)`: creates an empty table. The default
    /// registers an empty table through the schema provider and accepts no properties.
    fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: SchemaRef,
        properties: &TableProperties,
    ) -> Result<()> {
        reject_properties(&properties.0, "tables")?;
        let provider = self.catalog_provider().schema(schema).ok_or_else(|| {
            crate::ConnectorError::DataFusion(datafusion::error::DataFusionError::Plan(format!(
                "schema '{schema}' does not exist"
            )))
        })?;
        provider.register_table(
            table.to_owned(),
            Arc::new(MemTable::try_new(columns, vec![vec![]])?),
        )?;
        Ok(())
    }

    /// The object store for a URL this connector's scans name (`scheme://<catalog>@host/`),
    /// created on first use in every process (see [`crate::ConnectorStores`]).
    fn object_store(&self, _url: &url::Url) -> Option<Result<Arc<dyn ObjectStore>>> {
        None
    }

    /// `CREATE [OR REPLACE] VIEW catalog.schema.view`: stores a view definition (the
    /// scheduler planned it already). Catalogs without views say so.
    async fn create_view(
        &self,
        _schema: &str,
        _view: &str,
        _definition: &ViewDefinition,
        _or_replace: bool,
    ) -> Result<()> {
        Err(crate::ConnectorError::NotSupported(
            "this catalog does not support views".into(),
        ))
    }

    /// `DROP VIEW`: whether a view was dropped (`false`: no view of that name).
    async fn drop_view(&self, _schema: &str, _view: &str) -> Result<bool> {
        Ok(false)
    }

    /// `CREATE [OR REPLACE] MATERIALIZED VIEW`: stores the definition and creates the empty
    /// storage for `columns`, or fails naming what the catalog cannot do.
    async fn create_materialized_view(
        &self,
        _schema: &str,
        _view: &str,
        _definition: &MaterializedViewDefinition,
        _columns: SchemaRef,
        _or_replace: bool,
    ) -> Result<()> {
        Err(crate::ConnectorError::NotSupported(
            "this catalog does not support materialized views".into(),
        ))
    }

    /// `DROP MATERIALIZED VIEW`: drops the definition and the storage; whether there was one.
    async fn drop_materialized_view(&self, _schema: &str, _view: &str) -> Result<bool> {
        Ok(false)
    }

    /// Every materialized view of the catalog, as (schema, name).
    async fn materialized_views(&self) -> Result<Vec<(String, String)>> {
        Ok(vec![])
    }

    /// Commits a refresh: `rows` replace or are added to the view's stored rows, and `state`
    /// is recorded with them, atomically (readers see the old rows and state or the new
    /// ones, never a mix). Returns the rows written.
    async fn commit_materialized_view(
        &self,
        _schema: &str,
        _view: &str,
        _rows: SendableRecordBatchStream,
        _mode: CommitMode,
        _state: &RefreshState,
    ) -> Result<u64> {
        Err(crate::ConnectorError::NotSupported(
            "this catalog does not support materialized views".into(),
        ))
    }

    /// The current version of a table's contents (`None`: the source cannot tell, so views
    /// over it are never known to be fresh).
    async fn table_version(&self, _schema: &str, _table: &str) -> Result<Option<SourceVersion>> {
        Ok(None)
    }

    /// The table as of version `to` (a version this connector gave), or, with `from`, only
    /// the rows added between `from` and `to`. `None`: the connector cannot pin its tables.
    async fn pinned_table(
        &self,
        _schema: &str,
        _table: &str,
        _from: Option<&SourceVersion>,
        _to: &SourceVersion,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(None)
    }

    /// Rebuilds a table's split reader on an executor from the bytes its
    /// [`SplitReader::encode_table`] wrote on the scheduler.
    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>>;

    /// Whether [`Connector::begin_write`] may answer for this catalog's tables (a CTAS then
    /// creates the table before its query runs, since its tasks write into it).
    fn writes_distributed(&self) -> bool {
        false
    }

    /// Begins a statement's write into `schema.table` done by the executors' tasks
    /// ([`crate::write`]), or `None` when this table is written by the scheduler alone
    /// (through `TableProvider::insert_into`, e.g. in one database transaction).
    async fn begin_write(
        &self,
        _schema: &str,
        _table: &str,
        _overwrite: bool,
    ) -> Result<Option<Arc<dyn DistributedWrite>>> {
        Ok(None)
    }

    /// Rebuilds a write on an executor from the bytes its [`DistributedWrite::encode`] wrote
    /// on the scheduler.
    fn decode_write(&self, _write: &[u8]) -> Result<Arc<dyn DistributedWrite>> {
        Err(crate::ConnectorError::Decode {
            what: "write",
            reason: "this catalog's tables are not written by executors".into(),
        })
    }
}

fn reject_properties(properties: &[(String, crate::PropertyValue)], what: &str) -> Result<()> {
    match properties.first() {
        None => Ok(()),
        Some((name, _)) => Err(crate::ConnectorError::DataFusion(
            datafusion::error::DataFusionError::Plan(format!(
                "unknown property '{name}': this catalog's {what} take no properties"
            )),
        )),
    }
}
