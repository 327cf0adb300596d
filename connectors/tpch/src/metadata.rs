//! Catalog, schemas and tables of a TPC-H catalog.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use tributary_connector::ScanBuilder;

use crate::config::TpchConfig;
use crate::error::TpchError;
use crate::split::{TpchReader, plan_splits};
use crate::table::TpchTable;

/// Schemas listed by `SHOW SCHEMAS` (Trino's list plus sf10); any `sf<number>` also works.
const LISTED_SCHEMAS: [&str; 10] = [
    "tiny", "sf1", "sf10", "sf100", "sf300", "sf1000", "sf3000", "sf10000", "sf30000", "sf100000",
];

/// The scale factor a schema name stands for.
pub fn scale_factor(schema: &str) -> Result<f64, TpchError> {
    if schema == "tiny" {
        return Ok(0.01);
    }
    schema
        .strip_prefix("sf")
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|sf| sf.is_finite() && *sf > 0.0)
        .ok_or_else(|| TpchError::UnknownSchema(schema.to_owned()))
}

/// A TPC-H catalog: one schema per scale factor.
#[derive(Debug)]
pub struct TpchCatalog {
    name: String,
    config: Arc<TpchConfig>,
}

impl TpchCatalog {
    /// The catalog `name` with `config`.
    pub fn new(name: impl Into<String>, config: TpchConfig) -> Self {
        Self {
            name: name.into(),
            config: Arc::new(config),
        }
    }
}

impl CatalogProvider for TpchCatalog {
    fn schema_names(&self) -> Vec<String> {
        LISTED_SCHEMAS.iter().map(|s| (*s).to_owned()).collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let scale_factor = scale_factor(name).ok()?;
        Some(Arc::new(TpchSchema {
            catalog: self.name.clone(),
            scale_factor,
            config: Arc::clone(&self.config),
        }))
    }
}

/// One scale factor.
#[derive(Debug)]
struct TpchSchema {
    catalog: String,
    scale_factor: f64,
    config: Arc<TpchConfig>,
}

#[async_trait]
impl SchemaProvider for TpchSchema {
    fn table_names(&self) -> Vec<String> {
        TpchTable::ALL.iter().map(|t| t.name().to_owned()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Ok(table) = TpchTable::from_name(name) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(TpchTableProvider {
            catalog: self.catalog.clone(),
            table,
            scale_factor: self.scale_factor,
            config: Arc::clone(&self.config),
            schema: table.schema(self.config.column_naming),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        TpchTable::from_name(name).is_ok()
    }
}

/// One generated table.
#[derive(Debug)]
struct TpchTableProvider {
    catalog: String,
    table: TpchTable,
    scale_factor: f64,
    config: Arc<TpchConfig>,
    schema: SchemaRef,
}

impl TpchTableProvider {
    fn statistics(&self) -> Statistics {
        let rows = match self.table.row_count(self.scale_factor) {
            Some(n) => Precision::Exact(n as usize),
            None => Precision::Inexact(self.table.estimated_rows(self.scale_factor) as usize),
        };
        Statistics {
            num_rows: rows,
            total_byte_size: Precision::Absent,
            column_statistics: self
                .schema
                .fields()
                .iter()
                .map(|_| ColumnStatistics::new_unknown())
                .collect(),
        }
    }
}

#[async_trait]
impl TableProvider for TpchTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = Arc::new(TpchReader::new(
            self.table,
            self.scale_factor,
            self.config.column_naming,
        ));
        ScanBuilder::new(self.catalog.clone(), reader)
            .with_splits(plan_splits(self.table, self.scale_factor, &self.config))
            .with_projection(projection)
            .with_limit(limit)
            .with_statistics(self.statistics())
            .build()
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(TpchTableProvider::statistics(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_map_to_scale_factors() {
        assert_eq!(scale_factor("tiny").expect("tiny"), 0.01);
        assert_eq!(scale_factor("sf100").expect("sf100"), 100.0);
        assert_eq!(scale_factor("sf0.1").expect("sf0.1"), 0.1);
        assert!(scale_factor("sf-1").is_err());
        assert!(scale_factor("huge").is_err());
    }
}
