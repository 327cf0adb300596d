//! The factories (`mysql`, `mariadb`, `postgresql`, `sqlite`) and the connector they build.

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::optimizer::OptimizerRule;
use tributary_connector::{
    Connector, ConnectorError, ConnectorFactory, Properties, Result, SplitReader,
};

use crate::catalog::SqlCatalog;
use crate::client::SqlClient;
use crate::config::SqlConfig;
use crate::dialect::Dialect;
use crate::reader::SqlReader;
use crate::remote_plan::SqlPushdownRule;

/// Builds catalogs of one database kind.
#[derive(Debug)]
pub struct SqlConnectorFactory {
    name: &'static str,
    dialect: Dialect,
}

impl SqlConnectorFactory {
    /// `connector.name=mysql`.
    pub fn mysql() -> Self {
        Self {
            name: "mysql",
            dialect: Dialect::MySql,
        }
    }

    /// `connector.name=mariadb` (the MySQL protocol).
    pub fn mariadb() -> Self {
        Self {
            name: "mariadb",
            dialect: Dialect::MySql,
        }
    }

    /// `connector.name=postgresql`.
    pub fn postgresql() -> Self {
        Self {
            name: "postgresql",
            dialect: Dialect::Postgres,
        }
    }

    /// `connector.name=sqlite`.
    pub fn sqlite() -> Self {
        Self {
            name: "sqlite",
            dialect: Dialect::Sqlite,
        }
    }

    /// All four.
    pub fn all() -> Vec<Arc<dyn ConnectorFactory>> {
        vec![
            Arc::new(Self::mysql()),
            Arc::new(Self::mariadb()),
            Arc::new(Self::postgresql()),
            Arc::new(Self::sqlite()),
        ]
    }
}

impl ConnectorFactory for SqlConnectorFactory {
    fn name(&self) -> &'static str {
        self.name
    }

    fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        let config = Arc::new(SqlConfig::from_properties(
            catalog,
            self.dialect,
            properties,
        )?);
        let client = Arc::new(SqlClient::new(config).map_err(ConnectorError::from)?);
        Ok(Arc::new(SqlConnector {
            catalog: Arc::new(SqlCatalog::new(Arc::clone(&client))),
            client,
        }))
    }
}

/// A configured database catalog.
#[derive(Debug)]
pub struct SqlConnector {
    client: Arc<SqlClient>,
    catalog: Arc<SqlCatalog>,
}

#[async_trait::async_trait]
impl Connector for SqlConnector {
    /// A checksum of the table's rows (see `SqlClient::content_checksum`).
    async fn table_version(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<tributary_connector::SourceVersion>> {
        let Some(remote_schema) = self
            .client
            .resolve_schema(schema)
            .map_err(ConnectorError::from)?
        else {
            return Ok(None);
        };
        let Some((remote_table, _)) = self
            .client
            .resolve_table(&remote_schema, table)
            .await
            .map_err(ConnectorError::from)?
        else {
            return Ok(None);
        };
        let token = self
            .client
            .content_checksum(&remote_schema, &remote_table)
            .await
            .map_err(ConnectorError::from)?;
        Ok(token.map(|token| tributary_connector::SourceVersion::Token { token }))
    }

    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>
    }

    fn schema_names(&self) -> Result<Vec<String>> {
        let names = self
            .client
            .schemas_blocking()
            .map_err(ConnectorError::from)?;
        Ok(names.into_iter().map(|n| n.to_lowercase()).collect())
    }

    fn table_names(&self, schema: &str) -> Result<Option<Vec<String>>> {
        let Some(remote) = self
            .client
            .resolve_schema(schema)
            .map_err(ConnectorError::from)?
        else {
            return Ok(None);
        };
        let names = self
            .client
            .tables_blocking(&remote)
            .map_err(ConnectorError::from)?;
        Ok(Some(names.into_iter().map(|n| n.to_lowercase()).collect()))
    }

    fn optimizer_rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        vec![Arc::new(SqlPushdownRule)]
    }

    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>> {
        let reader =
            SqlReader::decode(Arc::clone(&self.client), table).map_err(ConnectorError::from)?;
        Ok(Arc::new(reader))
    }
}
