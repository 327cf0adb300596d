//! The `tpch` connector factory and connector.

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use tributary_connector::{
    Connector, ConnectorError, ConnectorFactory, Properties, Result, SplitReader,
};

use crate::config::TpchConfig;
use crate::metadata::TpchCatalog;
use crate::split::TpchReader;

/// Builds `connector.name=tpch` catalogs.
#[derive(Debug, Default)]
pub struct TpchConnectorFactory;

impl ConnectorFactory for TpchConnectorFactory {
    fn name(&self) -> &'static str {
        "tpch"
    }

    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        let config = TpchConfig::from_properties(properties)?;
        Ok(Arc::new(TpchConnector {
            catalog: Arc::new(TpchCatalog::new(catalog, config)),
        }))
    }
}

/// A configured TPC-H catalog.
#[derive(Debug)]
pub struct TpchConnector {
    catalog: Arc<TpchCatalog>,
}

#[async_trait::async_trait]
impl Connector for TpchConnector {
    /// Generated data never changes.
    async fn table_version(
        &self,
        _schema: &str,
        _table: &str,
    ) -> Result<Option<tributary_connector::SourceVersion>> {
        Ok(Some(tributary_connector::SourceVersion::Immutable))
    }

    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        let reader = TpchReader::decode(table).map_err(ConnectorError::from)?;
        Ok(Arc::new(reader))
    }
}
