//! What every part of one Hive or Delta Lake catalog shares: its configuration, storage, metastore and
//! runtime.

use tributary_connector::CatalogRuntime;

use crate::config::{HiveConfig, MetastoreConfig};
use crate::error::{HiveError, Result};
use crate::footers::FooterCache;
use crate::fs_cache::FsCache;
use crate::metastore::FileMetastore;
use crate::storage::{Location, Stores};

/// Which Trino connector a catalog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// `connector.name=hive`: CREATE TABLE makes Hive tables.
    Hive,
    /// `connector.name=delta_lake`: CREATE TABLE makes Delta tables.
    DeltaLake,
}

/// One Hive or Delta Lake catalog's shared state.
#[derive(Debug)]
pub struct HiveContext {
    /// Hive or Delta Lake.
    pub kind: CatalogKind,
    /// Configuration.
    pub config: HiveConfig,
    /// Object stores by bucket.
    pub stores: Stores,
    /// The metastore.
    pub metastore: FileMetastore,
    /// Runs storage calls for DataFusion's synchronous catalog methods.
    pub runtime: CatalogRuntime,
    /// Parquet footers read so far.
    pub footers: FooterCache,
    /// Delta logs read so far.
    pub delta_logs: crate::delta::DeltaLogs,
}

impl HiveContext {
    /// Builds the catalog's state: no storage I/O; the file system cache's directories are
    /// prepared when it is enabled.
    pub fn new(kind: CatalogKind, config: HiveConfig) -> Result<Self> {
        let cache = match &config.fs_cache {
            Some(cache) => Some(FsCache::open(cache, &config.catalog)?),
            None => None,
        };
        let stores = Stores::new(config.s3.clone(), cache);
        let MetastoreConfig::File { dir } = &config.metastore;
        let metastore = FileMetastore::new(dir.clone(), stores.get(dir)?);
        let runtime = CatalogRuntime::new(&format!("hive-{}", config.catalog), 2)
            .map_err(|e| HiveError::Metadata(format!("cannot start the catalog's runtime: {e}")))?;
        Ok(Self {
            kind,
            config,
            stores,
            metastore,
            runtime,
            footers: FooterCache::default(),
            delta_logs: crate::delta::DeltaLogs::default(),
        })
    }

    /// The catalog's name.
    pub fn catalog(&self) -> &str {
        &self.config.catalog
    }

    /// Runs storage I/O from DataFusion's synchronous catalog methods.
    pub fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.runtime
            .block_on(fut)
            .map_err(|e| HiveError::Metadata(format!("catalog '{}': {e}", self.catalog())))?
    }

    /// Runs storage and metastore I/O of a statement on the catalog's runtime (where every
    /// catalog call of the scheduler runs, so no connection is tied to a runtime that a
    /// synchronous catalog method may block), within the statement's commit gate.
    pub async fn run_gated<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let result = match tributary_connector::current_gate() {
            Some(gate) => {
                self.runtime
                    .run(tributary_connector::within_gate(gate, work))
                    .await
            }
            None => self.runtime.run(work).await,
        };
        result.map_err(|e| HiveError::Metadata(format!("catalog '{}': {e}", self.catalog())))?
    }

    /// The default location of a managed table's data.
    pub fn table_dir(&self, schema: &str, table: &str) -> Location {
        self.metastore.table_dir(schema, table)
    }
}
