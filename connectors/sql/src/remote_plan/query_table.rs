//! A remote query's result as a DataFusion table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use tributary_connector::{ScanBuilder, SplitInfo};

use crate::client::SqlClient;
use crate::reader::{SqlReader, TableHandle};

/// A remote query's result as a table: read as one split.
#[derive(Debug)]
pub(crate) struct SqlQueryTable {
    client: Arc<SqlClient>,
    handle: TableHandle,
    schema: SchemaRef,
}

impl SqlQueryTable {
    pub(crate) fn new(client: Arc<SqlClient>, handle: TableHandle) -> Self {
        Self {
            client,
            schema: handle.arrow_schema(),
            handle,
        }
    }
}

#[async_trait]
impl TableProvider for SqlQueryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = Arc::new(SqlReader::new(
            Arc::clone(&self.client),
            self.handle.clone(),
        ));
        ScanBuilder::new(self.client.config().catalog.clone(), reader)
            .with_splits(vec![SplitInfo::new("all", 0)])
            .with_projection(projection)
            .with_limit(limit)
            .build()
    }
}
