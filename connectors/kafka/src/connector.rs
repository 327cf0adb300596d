//! The `kafka` connector factory and connector.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, TableProvider};
use tributary_connector::{
    Connector, ConnectorError, ConnectorFactory, Properties, Result, SourceVersion, SplitReader,
};

use crate::catalog::{KafkaCatalog, KafkaTable};
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

impl KafkaConnector {
    async fn topic_table(&self, schema: &str, table: &str) -> Result<Arc<dyn TableProvider>> {
        let schema_provider = self.catalog.schema(schema).ok_or_else(|| {
            ConnectorError::NotSupported(format!(
                "schema '{}.{schema}' does not exist",
                self.client.catalog()
            ))
        })?;
        schema_provider.table(table).await?.ok_or_else(|| {
            ConnectorError::NotSupported(format!(
                "table '{}.{schema}.{table}' does not exist",
                self.client.catalog()
            ))
        })
    }
}

/// The topic behind a provider this connector made.
fn topic(provider: &Arc<dyn TableProvider>) -> Result<&KafkaTable> {
    provider
        .downcast_ref::<KafkaTable>()
        .ok_or_else(|| ConnectorError::NotSupported("not a Kafka table".into()))
}

#[async_trait]
impl Connector for KafkaConnector {
    /// A topic's version: the next offset of each partition (topics only append).
    async fn table_version(&self, schema: &str, table: &str) -> Result<Option<SourceVersion>> {
        let provider = self.topic_table(schema, table).await?;
        let partitions = topic(&provider)?.high_water_marks().await?;
        Ok(Some(SourceVersion::Offsets { partitions }))
    }

    /// The topic up to the offsets of `to`, from those of `from` (or from the start).
    async fn pinned_table(
        &self,
        schema: &str,
        table: &str,
        from: Option<&SourceVersion>,
        to: &SourceVersion,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let SourceVersion::Offsets { partitions: ends } = to else {
            return Ok(None);
        };
        let starts = match from {
            Some(SourceVersion::Offsets { partitions }) => partitions.clone(),
            _ => Default::default(),
        };
        let pin = ends
            .iter()
            .map(|(p, end)| (*p, (starts.get(p).copied().unwrap_or(0), *end)))
            .collect();
        let provider = self.topic_table(schema, table).await?;
        let pinned = topic(&provider)?.clone_unpinned().pinned(pin);
        Ok(Some(Arc::new(pinned)))
    }

    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        let spec: TableSpec = tributary_connector::decode_json("kafka table", table)?;
        Ok(Arc::new(KafkaReader::new(spec, self.client.clone())?))
    }
}
