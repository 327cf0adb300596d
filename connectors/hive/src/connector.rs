//! The Hive and Delta Lake connectors as the SPI sees them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProvider;
use object_store::ObjectStore;
use tributary_connector::{
    Connector, ConnectorError, ConnectorFactory, Properties, Result, SplitReader, TableProperties,
};

use crate::catalog::HiveCatalog;
use crate::config::HiveConfig;
use crate::context::{CatalogKind, HiveContext};

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

impl Connector for HiveConnector {
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

    fn decode_reader(&self, _table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        Err(ConnectorError::Decode {
            what: "hive scan",
            reason: "Hive tables are read by DataFusion's file sources, not split readers".into(),
        })
    }
}
