//! The two traits every connector implements: a factory and the connector it builds.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::optimizer::OptimizerRule;

use crate::error::Result;
use crate::properties::Properties;
use crate::split::SplitReader;

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

    /// Rebuilds a table's split reader on an executor from the bytes its
    /// [`SplitReader::encode_table`] wrote on the scheduler.
    fn decode_reader(&self, table: &[u8]) -> Result<Arc<dyn SplitReader>>;
}
