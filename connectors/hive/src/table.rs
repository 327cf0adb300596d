//! The table provider: lists the table's files, prunes partitions (declared columns and
//! date-derived directories), cuts files into byte-range splits and hands them to
//! DataFusion's own Parquet/CSV/JSON sources. Those are file scans Ballista narrows to each
//! task's splits, so every split is read exactly once, on the executors, with row-group and
//! page pruning from Parquet statistics (the filters reach the Parquet source through
//! DataFusion's filter pushdown).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{SchemaExt, Statistics, stats::Precision};
use datafusion::datasource::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::sink::DataSinkExec;
use tributary_connector::ScanBuilder;

use crate::config::Format;
use crate::context::HiveContext;
use crate::error::HiveError;
use crate::orc::OrcReader;
use crate::partitions::{self, DataFile, ListRequest, Listing};
use crate::scan::{FileScan, ScanFile, deal, file_scan};
use crate::sink::{HiveSink, HiveWrite, check_writable};
use crate::table_info::TableInfo;

/// A Hive table.
#[derive(Debug)]
pub struct HiveTable {
    ctx: Arc<HiveContext>,
    schema_name: String,
    table_name: String,
    info: TableInfo,
    /// Read only these files (paths in the store), when the table is pinned to a version.
    only_files: Option<Arc<std::collections::BTreeSet<String>>>,
}

/// What a scan reads after pruning (also logged, and shown by `EXPLAIN`'s file groups).
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanSummary {
    /// Partitions listed / kept.
    pub partitions: (usize, usize),
    /// Files listed / kept.
    pub files: (usize, usize),
    /// Bytes of the files kept.
    pub bytes: u64,
}

impl HiveTable {
    /// A table of the catalog.
    pub fn new(
        ctx: Arc<HiveContext>,
        schema_name: &str,
        table_name: &str,
        info: TableInfo,
    ) -> Self {
        Self {
            ctx,
            schema_name: schema_name.to_owned(),
            table_name: table_name.to_owned(),
            info,
            only_files: None,
        }
    }

    /// The table reading only `files` (store paths) of those it lists: a version of its
    /// contents, or the files added between two versions.
    pub fn pinned(mut self, files: std::collections::BTreeSet<String>) -> Self {
        self.only_files = Some(Arc::new(files));
        self
    }

    /// Every data file of the table (store path → size): the version of its contents.
    pub async fn file_sizes(
        &self,
    ) -> crate::error::Result<std::collections::BTreeMap<String, u64>> {
        Ok(self
            .listing()
            .await?
            .files
            .iter()
            .map(|f| (f.meta.location.to_string(), f.meta.size))
            .collect())
    }

    /// The table's description.
    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// Begins a statement's write into the table, done by the executors' tasks.
    pub async fn begin_write(&self, overwrite: bool) -> tributary_connector::Result<HiveWrite> {
        HiveWrite::begin(
            Arc::clone(&self.ctx),
            &self.schema_name,
            &self.table_name,
            &self.info,
            overwrite,
        )
        .await
    }

    /// Lists the table's files and partitions.
    pub async fn listing(&self) -> crate::error::Result<Listing> {
        let store = self.ctx.stores.get(&self.info.location)?;
        let info = self.info.clone();
        self.ctx
            .runtime
            .run(async move {
                partitions::list(
                    &store,
                    &ListRequest {
                        table: &info.qualified,
                        location: &info.location,
                        partition_fields: &info.partition_fields,
                        pending: &info.pending,
                    },
                )
                .await
            })
            .await
            .map_err(|e| HiveError::Metadata(e.to_string()))?
    }

    /// The files a scan with `filters` reads.
    pub async fn pruned(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> DfResult<(Listing, Vec<DataFile>, ScanSummary)> {
        let listing = self.listing().await?;
        let names: Vec<&str> = self
            .info
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let declared: Vec<Expr> = filters
            .iter()
            .filter(|f| partitions::only_columns(f, &names))
            .cloned()
            .collect();
        let mut keep = partitions::prune_declared(
            state,
            &listing.partitions,
            &self.info.partition_fields,
            &declared,
        )?;
        if let Some(column) = self.info.derived_date_column()
            && let Some(range) = partitions::day_range(filters, column)
        {
            for (k, p) in keep.iter_mut().zip(&listing.partitions) {
                if let Some(days) = partitions::partition_days(p) {
                    *k &= partitions::overlaps(days, range);
                }
            }
        }
        let files: Vec<DataFile> = listing
            .files
            .iter()
            .filter(|f| keep[f.partition])
            .filter(|f| {
                self.only_files
                    .as_ref()
                    .is_none_or(|only| only.contains(f.meta.location.as_ref()))
            })
            .cloned()
            .collect();
        let summary = ScanSummary {
            partitions: (
                listing.partitions.len(),
                keep.iter().filter(|k| **k).count(),
            ),
            files: (listing.files.len(), files.len()),
            bytes: files.iter().map(|f| f.meta.size).sum(),
        };
        Ok((listing, files, summary))
    }

    fn file_format(&self, state: &dyn Session) -> DfResult<Arc<dyn FileFormat>> {
        let text = self.info.text;
        Ok(match self.info.format {
            Format::Parquet => Arc::new(
                ParquetFormat::default().with_options(state.table_options().parquet.clone()),
            ),
            Format::Csv | Format::Textfile => Arc::new(
                CsvFormat::default()
                    .with_has_header(text.header)
                    .with_delimiter(text.separator)
                    .with_quote(text.quote)
                    .with_escape(text.escape),
            ),
            Format::Json => Arc::new(JsonFormat::default()),
            Format::Orc => {
                return Err(DataFusionError::Internal(format!(
                    "table {}: ORC files are read by the ORC split reader",
                    self.info.qualified
                )));
            }
        })
    }

    /// The scan of an ORC table: the connector contract's split reader over the files kept.
    fn orc_scan(
        &self,
        state: &dyn Session,
        listing: &Listing,
        files: &[DataFile],
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
        statistics: Statistics,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = OrcReader::new(Arc::clone(&self.ctx), &self.info, listing, files)?;
        let splits = reader
            .splits(self.ctx.config.max_split_size)
            .into_iter()
            .map(|s| (s.size, s))
            .collect();
        let groups = deal(splits, state.config().target_partitions());
        ScanBuilder::new(self.ctx.catalog(), Arc::new(reader))
            .with_split_groups(groups)
            .with_projection(projection)
            .with_limit(limit)
            .with_statistics(statistics)
            .build()
    }
}

#[async_trait]
impl TableProvider for HiveTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.info.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.info.definition)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(partitions::filter_pushdown(
            filters,
            &self.info.partition_fields,
        ))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (listing, files, summary) = self.pruned(state, filters).await?;
        tracing::info!(
            table = %self.info.qualified,
            partitions = summary.partitions.1,
            partitions_listed = summary.partitions.0,
            files = summary.files.1,
            files_listed = summary.files.0,
            bytes = summary.bytes,
            "hive scan"
        );
        let splittable = self.info.format != Format::Csv && self.info.format != Format::Textfile
            || !self.info.text.header;
        let mut statistics = Statistics::new_unknown(&self.info.schema);
        let mut file_statistics = vec![None; files.len()];
        if self.info.format == Format::Parquet {
            let store = self.ctx.stores.get(&self.info.location)?;
            let (rows, per_file) = self.ctx.footers.check(&store, &self.info, &files).await?;
            file_statistics = per_file;
            #[allow(clippy::cast_possible_truncation)]
            {
                statistics.num_rows = Precision::Inexact(rows as usize);
            }
        }
        let scan_files: Vec<ScanFile> = files
            .iter()
            .zip(file_statistics)
            .map(|(f, statistics)| ScanFile {
                meta: f.meta.clone(),
                partition_values: listing.partitions[f.partition].values.clone(),
                statistics,
            })
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        {
            statistics.total_byte_size = Precision::Inexact(summary.bytes as usize);
        }
        if self.info.format == Format::Orc {
            return self.orc_scan(state, &listing, &files, projection, limit, statistics);
        }
        file_scan(
            state,
            FileScan {
                format: self.file_format(state)?,
                store_url: self.info.location.store_url(self.ctx.catalog()),
                data_schema: Arc::clone(&self.info.data_schema),
                partition_fields: self.info.partition_fields.clone(),
                files: scan_files,
                max_split_size: self.ctx.config.max_split_size,
                splittable,
                statistics,
            },
            projection,
            limit,
        )
        .await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let table = &self.info.qualified;
        check_writable(&self.ctx, &self.info, op != InsertOp::Append)?;
        self.info
            .schema
            .logically_equivalent_names_and_types(&input.schema())
            .map_err(|e| DataFusionError::Plan(format!("table {table}: {e}")))?;
        let sink = HiveSink::new(
            Arc::clone(&self.ctx),
            &self.schema_name,
            &self.table_name,
            self.info.clone(),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
