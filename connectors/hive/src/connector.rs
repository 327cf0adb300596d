//! The Hive and Delta Lake connectors as the SPI sees them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, TableProvider};
use datafusion::execution::SendableRecordBatchStream;
use object_store::ObjectStore;
use tributary_connector::{
    CommitMode, Connector, ConnectorError, ConnectorFactory, DistributedWrite,
    MaterializedViewDefinition, Properties, RefreshState, Result, SourceVersion, SplitReader,
    TableProperties, ViewDefinition,
};

use crate::catalog::HiveCatalog;
use crate::config::HiveConfig;
use crate::context::{CatalogKind, HiveContext};
use crate::delta::DeltaLakeTable;
use crate::table::HiveTable;

/// `connector.name=hive`.
#[derive(Debug, Default)]
pub struct HiveConnectorFactory;

impl ConnectorFactory for HiveConnectorFactory {
    fn name(&self) -> &'static str {
        "hive"
    }

    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        connector(CatalogKind::Hive, catalog, properties)
    }
}

/// `connector.name=delta_lake`: the same metastore and storage properties.
#[derive(Debug, Default)]
pub struct DeltaLakeConnectorFactory;

impl ConnectorFactory for DeltaLakeConnectorFactory {
    fn name(&self) -> &'static str {
        "delta_lake"
    }

    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        connector(CatalogKind::DeltaLake, catalog, properties)
    }
}

fn connector(
    kind: CatalogKind,
    catalog: &str,
    properties: &Properties,
) -> Result<Arc<dyn Connector>> {
    let config = HiveConfig::from_properties(catalog, properties)?;
    let ctx = Arc::new(HiveContext::new(kind, config)?);
    Ok(Arc::new(HiveConnector {
        catalog: Arc::new(HiveCatalog::new(Arc::clone(&ctx))),
        ctx,
    }))
}

/// One Hive catalog.
#[derive(Debug)]
pub struct HiveConnector {
    ctx: Arc<HiveContext>,
    catalog: Arc<HiveCatalog>,
}

impl HiveConnector {
    /// Runs catalog I/O on the catalog's runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = crate::error::Result<T>> + Send + 'static,
    ) -> Result<T> {
        Ok(self
            .ctx
            .runtime
            .run(work)
            .await
            .map_err(|e| crate::error::HiveError::Metadata(e.to_string()))??)
    }
}

#[async_trait]
impl Connector for HiveConnector {
    async fn create_view(
        &self,
        schema: &str,
        view: &str,
        definition: &ViewDefinition,
        or_replace: bool,
    ) -> Result<()> {
        let (ctx, schema, view, definition) = (
            Arc::clone(&self.ctx),
            schema.to_owned(),
            view.to_owned(),
            definition.clone(),
        );
        self.run(async move {
            crate::views::create_view(&ctx, (&schema, &view), &definition, or_replace).await
        })
        .await
    }

    async fn drop_view(&self, schema: &str, view: &str) -> Result<bool> {
        let (ctx, schema, view) = (Arc::clone(&self.ctx), schema.to_owned(), view.to_owned());
        self.run(async move { crate::views::drop_view(&ctx, &schema, &view).await })
            .await
    }

    async fn create_materialized_view(
        &self,
        schema: &str,
        view: &str,
        definition: &MaterializedViewDefinition,
        columns: SchemaRef,
        or_replace: bool,
    ) -> Result<()> {
        let (ctx, schema, view, definition) = (
            Arc::clone(&self.ctx),
            schema.to_owned(),
            view.to_owned(),
            definition.clone(),
        );
        self.run(async move {
            crate::views::create_materialized_view(
                &ctx,
                (&schema, &view),
                &definition,
                columns,
                or_replace,
            )
            .await
        })
        .await
    }

    async fn drop_materialized_view(&self, schema: &str, view: &str) -> Result<bool> {
        let (ctx, schema, view) = (Arc::clone(&self.ctx), schema.to_owned(), view.to_owned());
        self.run(async move { crate::views::drop_materialized_view(&ctx, &schema, &view).await })
            .await
    }

    async fn materialized_views(&self) -> Result<Vec<(String, String)>> {
        let ctx = Arc::clone(&self.ctx);
        self.run(async move { crate::views::materialized_views(&ctx).await })
            .await
    }

    async fn commit_materialized_view(
        &self,
        schema: &str,
        view: &str,
        rows: SendableRecordBatchStream,
        mode: CommitMode,
        state: &RefreshState,
    ) -> Result<u64> {
        let (ctx, schema, view, state) = (
            Arc::clone(&self.ctx),
            schema.to_owned(),
            view.to_owned(),
            state.clone(),
        );
        self.run(
            async move { crate::views::commit(&ctx, (&schema, &view), rows, mode, &state).await },
        )
        .await
    }

    async fn table_version(&self, schema: &str, table: &str) -> Result<Option<SourceVersion>> {
        let (ctx, schema, table) = (Arc::clone(&self.ctx), schema.to_owned(), table.to_owned());
        self.run(async move { crate::views::table_version(ctx, &schema, &table).await })
            .await
    }

    async fn pinned_table(
        &self,
        schema: &str,
        table: &str,
        from: Option<&SourceVersion>,
        to: &SourceVersion,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let (ctx, schema, table, from, to) = (
            Arc::clone(&self.ctx),
            schema.to_owned(),
            table.to_owned(),
            from.cloned(),
            to.clone(),
        );
        self.run(async move {
            crate::views::pinned_table(ctx, (&schema, &table), from.as_ref(), &to).await
        })
        .await
    }

    fn table_properties(&self) -> Vec<tributary_connector::PropertySpec> {
        match self.ctx.kind {
            CatalogKind::Hive => crate::table_info::PROPERTIES.to_vec(),
            CatalogKind::DeltaLake => crate::delta::PROPERTIES.to_vec(),
        }
    }

    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn schema_names(&self) -> Result<Vec<String>> {
        Ok(self.catalog.schemas()?)
    }

    fn table_names(&self, schema: &str) -> Result<Option<Vec<String>>> {
        Ok(self.catalog.tables(schema)?)
    }

    fn create_schema(&self, schema: &str, properties: &TableProperties) -> Result<()> {
        Ok(self.catalog.create_schema(schema, properties)?)
    }

    fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: SchemaRef,
        properties: &TableProperties,
    ) -> Result<()> {
        Ok(self
            .catalog
            .create_table(schema, table, &columns, properties)?)
    }

    fn object_store(&self, url: &url::Url) -> Option<Result<Arc<dyn ObjectStore>>> {
        let bucket = url.host_str()?;
        Some(self.ctx.stores.bucket(bucket).map_err(ConnectorError::from))
    }

    fn writes_distributed(&self) -> bool {
        true
    }

    /// Hive tables (Parquet) and Delta tables are written by the executors' tasks.
    async fn begin_write(
        &self,
        schema: &str,
        table: &str,
        overwrite: bool,
    ) -> Result<Option<Arc<dyn DistributedWrite>>> {
        let Some(provider) = self.catalog.schema(schema) else {
            return Ok(None);
        };
        let Some(provider) = provider.table(table).await? else {
            return Ok(None);
        };
        if let Some(hive) = provider.downcast_ref::<HiveTable>() {
            return Ok(Some(Arc::new(hive.begin_write(overwrite).await?)));
        }
        if let Some(delta) = provider.downcast_ref::<DeltaLakeTable>() {
            return Ok(Some(Arc::new(delta.begin_write(overwrite)?)));
        }
        Ok(None)
    }

    fn decode_write(&self, write: &[u8]) -> Result<Arc<dyn DistributedWrite>> {
        match write.first() {
            Some(&crate::delta::DELTA_WRITE) => Ok(Arc::new(crate::delta::DeltaWrite::decode(
                Arc::clone(&self.ctx),
                write,
            )?)),
            _ => Ok(Arc::new(crate::sink::HiveWrite::decode(
                Arc::clone(&self.ctx),
                write,
            )?)),
        }
    }

    /// Parquet, CSV and JSON tables are read by DataFusion's own file sources (encoded by
    /// DataFusion); ORC tables by [`crate::orc::OrcReader`].
    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        Ok(Arc::new(crate::orc::OrcReader::decode(
            Arc::clone(&self.ctx),
            table,
        )?))
    }
}
