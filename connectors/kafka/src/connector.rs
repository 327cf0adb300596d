//! The `kafka` connector factory and connector.

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use tributary_connector::{
    Connector, ConnectorError, ConnectorFactory, Properties, Result, SplitReader,
};

use crate::catalog::KafkaCatalog;
use crate::client::KafkaClient;
use crate::config::KafkaConfig;
use crate::reader::KafkaReader;
use crate::table::TableSpec;

/// Builds `connector.name=kafka` catalogs.
#[derive(Debug, Default)]
pub struct KafkaConnectorFactory;

impl ConnectorFactory for KafkaConnectorFactory {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        let config = Arc::new(KafkaConfig::from_properties(properties)?);
        let client = KafkaClient::new(catalog, config);
        Ok(Arc::new(KafkaConnector {
            catalog: Arc::new(KafkaCatalog::new(client.clone())),
            client,
        }))
    }
}

/// A configured Kafka catalog.
#[derive(Debug)]
pub struct KafkaConnector {
    catalog: Arc<KafkaCatalog>,
    client: KafkaClient,
}

impl Connector for KafkaConnector {
    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        let spec: TableSpec =
            serde_json::from_slice(table).map_err(|e| ConnectorError::Decode {
                what: "kafka table",
                reason: e.to_string(),
            })?;
        Ok(Arc::new(KafkaReader::new(spec, self.client.clone())?))
    }
}
