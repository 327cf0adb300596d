//! How a connector's work is cut and read: splits, the [`SplitReader`] that reads one, and
//! [`ScanBuilder`], which turns a table's splits into the physical scan.
//!
//! Every connector scan is a DataFusion `DataSourceExec` over a `FileScanConfig` whose file
//! groups hold one `PartitionedFile` per split, read by the connector's [`SplitReader`]
//! through [`crate::source::ConnectorSource`]. Ballista narrows exactly this kind of leaf to the
//! partitions of each task, so every split is read once per query, whatever the number of
//! tasks and executors (see ARCHITECTURE.md, "Exactly-once scans").

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::PartitionedFile;
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::file_scan_config::FileScanConfigBuilder;
use datafusion_datasource::source::DataSourceExec;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::source::ConnectorSource;

/// The object store URL of every connector scan. Connectors do not read through it; it is
/// registered (as an empty in-memory store) in each node's runtime so that DataFusion's
/// file-stream machinery finds a store for the scan.
pub const CONNECTOR_STORE_URL: &str = "tributary://connector/";

/// A stream of record batches read from one split.
pub type SplitStream = BoxStream<'static, DfResult<RecordBatch>>;

/// One unit of work of a scan, as planned on the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInfo {
    /// Name of the split: a path-like string of `[A-Za-z0-9._=-]` segments separated by `/`,
    /// unique within the scan. It is all an executor receives about the split, so it must
    /// hold everything needed to read it (a file range, a key range, an offset range, …).
    pub name: String,
    /// Estimated size (bytes, or rows when bytes are unknown), for display and planning.
    pub size: u64,
}

impl SplitInfo {
    /// A split with a name and a size estimate.
    pub fn new(name: impl Into<String>, size: u64) -> Self {
        Self {
            name: name.into(),
            size,
        }
    }
}

/// Reads the splits of one table. Built on the scheduler by the table's `TableProvider::scan`
/// and rebuilt on executors by [`crate::Connector::decode_reader`].
pub trait SplitReader: Debug + Send + Sync + 'static {
    /// A short name of the source kind, shown in EXPLAIN (`file_type=…`).
    fn kind(&self) -> &'static str;

    /// The full schema of the table (before projection).
    fn table_schema(&self) -> SchemaRef;

    /// What EXPLAIN shows of a scan over `projection` (for example the remote SQL a
    /// database connector sends); `None` shows nothing.
    fn describe(&self, projection: &[usize]) -> Option<String> {
        let _ = projection;
        None
    }

    /// Encodes what [`crate::Connector::decode_reader`] needs to rebuild this reader.
    fn encode_table(&self) -> Result<Vec<u8>>;

    /// Opens one split. `projection` lists the table columns to return, in order; the
    /// batches must have exactly those columns (names may differ: the engine renames).
    /// `limit` is a hint: reading may stop once that many rows were produced.
    ///
    /// Transient failures of the source must be returned as `DataFusionError::IoError` (or
    /// an `External` wrapping an `std::io::Error`): those are the ones Ballista retries.
    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> Result<SplitStream>;
}

/// Builds the physical scan of a table from its splits.
#[derive(Debug)]
pub struct ScanBuilder {
    catalog: String,
    reader: Arc<dyn SplitReader>,
    groups: Vec<Vec<SplitInfo>>,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    statistics: Option<Statistics>,
}

impl ScanBuilder {
    /// Starts a scan of `reader`'s table in `catalog`.
    pub fn new(catalog: impl Into<String>, reader: Arc<dyn SplitReader>) -> Self {
        Self {
            catalog: catalog.into(),
            reader,
            groups: vec![],
            projection: None,
            limit: None,
            statistics: None,
        }
    }

    /// The splits to read, one output partition each.
    pub fn with_splits(mut self, splits: Vec<SplitInfo>) -> Self {
        self.groups = splits.into_iter().map(|s| vec![s]).collect();
        self
    }

    /// The splits to read, in groups: one output partition per group, whose splits are
    /// read one after another (for tables of many small files).
    pub fn with_split_groups(mut self, groups: Vec<Vec<SplitInfo>>) -> Self {
        self.groups = groups;
        self
    }

    /// Columns to read (indices into the table schema), as given to `TableProvider::scan`.
    pub fn with_projection(mut self, projection: Option<&Vec<usize>>) -> Self {
        self.projection = projection.cloned();
        self
    }

    /// Row limit, as given to `TableProvider::scan`.
    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    /// Table statistics (of the full table schema), used for join planning.
    pub fn with_statistics(mut self, statistics: Statistics) -> Self {
        self.statistics = Some(statistics);
        self
    }

    /// Builds the `DataSourceExec`.
    pub fn build(self) -> DfResult<Arc<dyn ExecutionPlan>> {
        let groups = self
            .groups
            .into_iter()
            .map(|g| {
                FileGroup::new(
                    g.into_iter()
                        .map(|s| PartitionedFile::new(s.name, s.size))
                        .collect(),
                )
            })
            .collect::<Vec<_>>();
        let source = Arc::new(ConnectorSource::new(self.catalog, self.reader));
        build_scan(source, groups, self.projection, self.limit, self.statistics)
    }
}

/// Assembles the `DataSourceExec` (shared by [`ScanBuilder`] and the codec's decoder).
pub(crate) fn build_scan(
    source: Arc<ConnectorSource>,
    mut groups: Vec<FileGroup>,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    statistics: Option<Statistics>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if groups.is_empty() {
        // A table with no splits still has one (empty) partition, so plans keep their shape.
        groups.push(FileGroup::new(vec![]));
    }
    let mut builder =
        FileScanConfigBuilder::new(ObjectStoreUrl::parse(CONNECTOR_STORE_URL)?, source)
            .with_file_groups(groups)
            .with_limit(limit);
    if let Some(statistics) = statistics {
        builder = builder.with_statistics(statistics);
    }
    let builder = builder.with_projection_indices(projection)?;
    Ok(DataSourceExec::from_data_source(builder.build()))
}
