//! [`ConnectorSource`]: the DataFusion `FileSource` every connector scan uses, so that each
//! split is a `PartitionedFile` that Ballista hands to exactly one task.

use std::fmt::{self, Formatter};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_plan::DisplayFormatType;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_datasource::PartitionedFile;
use datafusion_datasource::TableSchema;
use datafusion_datasource::file::FileSource;
use datafusion_datasource::file_scan_config::FileScanConfig;
use datafusion_datasource::file_stream::{FileOpenFuture, FileOpener};
use futures::StreamExt;
use object_store::ObjectStore;

use crate::split::SplitReader;

/// Default rows per batch when the session did not set one.
const DEFAULT_BATCH_SIZE: usize = 8192;

/// The `FileSource` of connector scans: reads each `PartitionedFile` (a split) with the
/// connector's [`SplitReader`].
#[derive(Debug, Clone)]
pub struct ConnectorSource {
    catalog: String,
    reader: Arc<dyn SplitReader>,
    table_schema: TableSchema,
    projection: Option<ProjectionExprs>,
    batch_size: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
    /// The span split reads are children of (the executor's task span); DataFusion polls
    /// scans on tasks of its own, where the task's span is not current.
    parent_span: Option<tracing::Span>,
}

impl ConnectorSource {
    /// A source reading `reader`'s table of `catalog`, all columns.
    pub fn new(catalog: impl Into<String>, reader: Arc<dyn SplitReader>) -> Self {
        let table_schema = TableSchema::from(reader.table_schema());
        Self {
            catalog: catalog.into(),
            reader,
            table_schema,
            projection: None,
            batch_size: None,
            metrics: ExecutionPlanMetricsSet::new(),
            parent_span: None,
        }
    }

    /// This source with split reads traced as children of `span`.
    pub fn with_parent_span(&self, span: tracing::Span) -> Self {
        Self {
            parent_span: Some(span),
            ..self.clone()
        }
    }

    /// The catalog the scanned table belongs to.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// The connector's reader.
    pub fn reader(&self) -> &Arc<dyn SplitReader> {
        &self.reader
    }

    /// Projected table columns in output order, with their output names; `None` = all.
    pub fn projected_columns(&self) -> Option<Vec<(usize, String)>> {
        self.projection.as_ref().map(|p| {
            p.iter()
                .filter_map(|e| {
                    e.expr
                        .downcast_ref::<Column>()
                        .map(|c| (c.index(), e.alias.clone()))
                })
                .collect()
        })
    }

    fn output_schema(&self) -> DfResult<SchemaRef> {
        let table = self.table_schema.table_schema();
        match &self.projection {
            None => Ok(Arc::clone(table)),
            Some(p) => Ok(Arc::new(p.project_schema(table)?)),
        }
    }
}

impl FileSource for ConnectorSource {
    fn create_file_opener(
        &self,
        _object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        _partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        let columns = match self.projected_columns() {
            Some(cols) => cols.into_iter().map(|(i, _)| i).collect(),
            None => (0..self.table_schema.table_schema().fields().len()).collect(),
        };
        Ok(Arc::new(SplitOpener {
            catalog: self.catalog.clone(),
            parent_span: self.parent_span.clone(),
            reader: Arc::clone(&self.reader),
            columns,
            output_schema: self.output_schema()?,
            batch_size: self
                .batch_size
                .or(base_config.batch_size)
                .unwrap_or(DEFAULT_BATCH_SIZE),
            limit: base_config.limit,
        }))
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        let mut source = self.clone();
        source.batch_size = Some(batch_size);
        Arc::new(source)
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        self.projection.as_ref()
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        self.reader.kind()
    }

    fn fmt_extra(&self, _t: DisplayFormatType, f: &mut Formatter) -> fmt::Result {
        write!(f, ", catalog={}", self.catalog)?;
        let columns = match self.projected_columns() {
            Some(cols) => cols.into_iter().map(|(i, _)| i).collect(),
            None => (0..self.table_schema.table_schema().fields().len()).collect::<Vec<_>>(),
        };
        match self.reader.describe(&columns) {
            Some(text) => write!(f, ", {text}"),
            None => Ok(()),
        }
    }

    /// A split is the unit of work; cutting it into byte ranges would read rows twice.
    fn supports_repartitioning(&self) -> bool {
        false
    }

    /// Accepts projections of plain columns only; computed expressions stay above the scan.
    fn try_pushdown_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> DfResult<Option<Arc<dyn FileSource>>> {
        let merged = match &self.projection {
            Some(current) => current.try_merge(projection)?,
            None => projection.clone(),
        };
        // Plain columns under their own names only: scans travel to executors as column
        // indices, so a renaming projection (`a AS b`, `a AS x, a AS y`) stays above the scan.
        let fields = self.table_schema.table_schema().fields();
        if !merged.iter().all(|e| {
            e.expr
                .downcast_ref::<Column>()
                .is_some_and(|c| fields.get(c.index()).is_some_and(|f| f.name() == &e.alias))
        }) {
            return Ok(None);
        }
        let mut source = self.clone();
        source.projection = Some(merged);
        Ok(Some(Arc::new(source)))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        match &self.projection {
            Some(p) => datafusion::physical_plan::apply_expression_roots(p.iter(), f),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }
}

/// Opens one split at a time for a partition's `FileStream`.
struct SplitOpener {
    catalog: String,
    parent_span: Option<tracing::Span>,
    reader: Arc<dyn SplitReader>,
    columns: Vec<usize>,
    output_schema: SchemaRef,
    batch_size: usize,
    limit: Option<usize>,
}

impl FileOpener for SplitOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let split = file.object_meta.location.to_string();
        // One span per split read (a child of the task's span in a query's trace), open
        // until the split's stream is dropped.
        let span = match &self.parent_span {
            Some(parent) => {
                tracing::info_span!(parent: parent, "split", catalog = %self.catalog, split = %split)
            }
            None => tracing::info_span!("split", catalog = %self.catalog, split = %split),
        };
        let stream = {
            let _entered = span.enter();
            self.reader
                .read(&split, &self.columns, self.batch_size, self.limit)?
        };
        let schema = Arc::clone(&self.output_schema);
        let renamed = stream.map(move |batch| {
            let batch = batch?;
            // Readers return the projected columns; give them the plan's names and nullability.
            crate::conform::conform_batch(&batch, &schema).map_err(|e| {
                DataFusionError::ArrowError(Box::new(e), Some(format!("split '{split}'")))
            })
        });
        let mut renamed = renamed.boxed();
        let traced = futures::stream::poll_fn(move |cx| {
            let _entered = span.enter();
            renamed.poll_next_unpin(cx)
        });
        Ok(Box::pin(futures::future::ready(Ok(traced.boxed()))))
    }
}

/// The catalog a leaf of a physical plan reads, when it is a scan Tributary knows: a
/// connector scan (`ConnectorSource`) or a file scan on a catalog's store
/// (`s3://<catalog>@<bucket>/`). Used to count input per catalog.
pub fn scan_catalog(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Option<String> {
    let exec = plan.downcast_ref::<datafusion_datasource::source::DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    if let Some(source) = config.file_source().downcast_ref::<ConnectorSource>() {
        return Some(source.catalog().to_owned());
    }
    let url = url::Url::parse(config.object_store_url.as_str()).ok()?;
    match url.username() {
        "" => Some(url.scheme().to_owned()),
        catalog => Some(catalog.to_owned()),
    }
}

/// `plan` with every connector scan's split reads traced under `span` (the executor calls
/// this with its task span).
pub fn trace_scans_under(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    span: &tracing::Span,
) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion_datasource::source::DataSourceExec;
    plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        let Some(source) = config.file_source().downcast_ref::<ConnectorSource>() else {
            return Ok(Transformed::no(node));
        };
        let mut config = config.clone();
        config.file_source = Arc::new(source.with_parent_span(span.clone()));
        Ok(Transformed::yes(DataSourceExec::from_data_source(config)
            as Arc<dyn datafusion::physical_plan::ExecutionPlan>))
    })
    .map(|t| t.data)
}
