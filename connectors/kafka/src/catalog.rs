//! The catalog, schemas and tables of a Kafka catalog, and how a scan is planned: the
//! partitions' offsets are fixed now (start to the high-water mark), narrowed by the
//! filters on `_partition_id`, `_partition_offset` and `_timestamp`, and cut into splits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use tributary_connector::ScanBuilder;

use crate::client::KafkaClient;
use crate::description::{Descriptions, TableDescription};
use crate::error::KafkaError;
use crate::pushdown::NarrowingColumns;
use crate::reader::{KafkaReader, OffsetRange, offset_ranges, plan_splits};
use crate::sink::KafkaSink;
use crate::table::TableSpec;

/// A Kafka catalog: schemas and tables from `kafka.table-names` and description files.
#[derive(Debug)]
pub struct KafkaCatalog {
    client: KafkaClient,
    descriptions: Arc<Descriptions>,
}

impl KafkaCatalog {
    /// The catalog of `client`'s configuration.
    pub fn new(client: KafkaClient) -> Self {
        let config = client.config();
        let descriptions = Descriptions::new(
            config.table_description_dir.clone(),
            config.default_schema.clone(),
            config.table_names.clone(),
        );
        Self {
            client,
            descriptions: Arc::new(descriptions),
        }
    }

    fn spec(&self, description: TableDescription) -> TableSpec {
        TableSpec {
            description,
            internal_prefix: self.client.config().internal_column_prefix.clone(),
            hide_internal: self.client.config().hide_internal_columns,
        }
    }
}

impl CatalogProvider for KafkaCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self
            .descriptions
            .list()
            .tables
            .into_keys()
            .map(|(schema, _)| schema)
            .collect();
        names.insert(self.client.config().default_schema.clone());
        names.into_iter().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schema_names().iter().any(|s| s == name).then(|| {
            Arc::new(KafkaSchema {
                name: name.to_owned(),
                catalog: KafkaCatalog {
                    client: self.client.clone(),
                    descriptions: Arc::clone(&self.descriptions),
                },
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One schema of a Kafka catalog.
#[derive(Debug)]
struct KafkaSchema {
    name: String,
    catalog: KafkaCatalog,
}

#[async_trait]
impl SchemaProvider for KafkaSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .descriptions
            .list()
            .tables
            .into_keys()
            .filter(|(schema, _)| *schema == self.name)
            .map(|(_, table)| table)
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let mut listing = self.catalog.descriptions.list();
        let Some(description) = listing.tables.remove(&(self.name.clone(), name.to_owned())) else {
            if listing.problems.is_empty() {
                return Ok(None);
            }
            // The table may be described by a file that could not be used: say which.
            return Err(DataFusionError::Plan(format!(
                "table {}.{}.{name} does not exist; description files that could not be used: {}",
                self.catalog.client.catalog(),
                self.name,
                listing.problems.join("; ")
            )));
        };
        let spec = self.catalog.spec(description);
        let reader = KafkaReader::new(spec, self.catalog.client.clone())?;
        Ok(Some(Arc::new(KafkaTable {
            reader: Arc::new(reader),
            client: self.catalog.client.clone(),
            pin: None,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|t| t == name)
    }
}

/// A topic as a table.
#[derive(Debug)]
pub struct KafkaTable {
    reader: Arc<KafkaReader>,
    client: KafkaClient,
    /// Read only these offsets (partition → [start, end)): the messages up to a version, or
    /// those added between two versions.
    pin: Option<BTreeMap<i32, (i64, i64)>>,
}

impl KafkaTable {
    /// The table reading, per partition, only offsets in `[start, end)`; partitions not named
    /// are not read.
    pub fn pinned(mut self, pin: BTreeMap<i32, (i64, i64)>) -> Self {
        self.pin = Some(pin);
        self
    }

    /// The same topic, all offsets.
    pub fn clone_unpinned(&self) -> Self {
        Self {
            reader: Arc::clone(&self.reader),
            client: self.client.clone(),
            pin: None,
        }
    }

    /// The next offset of every partition of the topic (its version).
    pub async fn high_water_marks(&self) -> DfResult<BTreeMap<i32, i64>> {
        let spec = self.reader.spec();
        let topic = spec.description.topic.clone();
        let table = format!("{}.{}", self.client.catalog(), spec.qualified_name());
        let client = self.client.clone();
        let offsets = tokio::task::spawn_blocking(move || client.partition_offsets(&topic, &table))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(DataFusionError::from)?;
        Ok(offsets.iter().map(|p| (p.partition, p.high)).collect())
    }

    fn narrowing(&self) -> NarrowingColumns {
        NarrowingColumns::new(&self.reader.spec().internal_prefix)
    }

    /// Fixes the offset ranges to read now: the partitions' offsets, narrowed by filters.
    async fn ranges(&self, filters: &[Expr]) -> DfResult<Vec<OffsetRange>> {
        let bounds = self.narrowing().bounds(filters);
        let spec = self.reader.spec();
        let topic = spec.description.topic.clone();
        let table = format!("{}.{}", self.client.catalog(), spec.qualified_name());
        let client = self.client.clone();
        let force_upper = client.config().timestamp_upper_bound_push_down;
        let pin = self.pin.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<OffsetRange>, KafkaError> {
            let mut partitions = client.partition_offsets(&topic, &table)?;
            if let Some(pin) = &pin {
                partitions.retain(|p| pin.contains_key(&p.partition));
                for p in &mut partitions {
                    if let Some((start, end)) = pin.get(&p.partition) {
                        p.low = p.low.max(*start);
                        p.high = p.high.min(*end).max(p.low);
                    }
                }
            }
            if let Some(allowed) = &bounds.partitions {
                partitions.retain(|p| {
                    allowed
                        .iter()
                        .any(|(lo, hi)| (*lo..=*hi).contains(&i64::from(p.partition)))
                });
            }
            let ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
            if let Some(times) = &bounds.timestamps
                && let (Some((lo, _)), Some((_, hi))) = (times.first(), times.last())
            {
                // Kafka's lookup gives the first offset at or after a time: a lower bound
                // on where matching messages start (the filter still runs on every row).
                if *lo > i64::MIN && !ids.is_empty() {
                    let starts = client.offsets_for_time(&topic, &ids, *lo)?;
                    for p in &mut partitions {
                        match starts.get(&p.partition) {
                            Some(Some(start)) => p.low = p.low.max(*start),
                            Some(None) => p.low = p.high,
                            None => {}
                        }
                    }
                }
                if force_upper && *hi < i64::MAX && !ids.is_empty() {
                    let ends = client.offsets_for_time(&topic, &ids, hi.saturating_add(1))?;
                    for p in &mut partitions {
                        if let Some(Some(end)) = ends.get(&p.partition) {
                            p.high = p.high.min(*end);
                        }
                    }
                }
            }
            let all = [(i64::MIN, i64::MAX)];
            let allowed = bounds.offsets.as_deref().unwrap_or(&all);
            Ok(offset_ranges(&partitions, allowed))
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .map_err(DataFusionError::from)
    }
}

#[async_trait]
impl TableProvider for KafkaTable {
    fn schema(&self) -> SchemaRef {
        tributary_connector::SplitReader::table_schema(self.reader.as_ref())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let narrowing = self.narrowing();
        Ok(filters
            .iter()
            .map(|f| {
                if narrowing.narrows(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::Plan(format!(
                "{insert_op} is not supported for Kafka tables: topics are append-only; use INSERT INTO"
            )));
        }
        let spec = Arc::new(self.reader.spec().clone());
        let sink = KafkaSink::new(self.client.clone(), spec, self.schema())?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let ranges = self.ranges(filters).await?;
        let messages: u64 = ranges.iter().map(|r| (r.end - r.start) as u64).sum();
        let splits = plan_splits(&ranges, self.client.config().messages_per_split);
        let statistics = Statistics {
            num_rows: Precision::Inexact(messages as usize),
            ..Statistics::new_unknown(&self.schema())
        };
        ScanBuilder::new(self.client.catalog(), Arc::clone(&self.reader) as _)
            .with_splits(splits)
            .with_projection(projection)
            .with_limit(limit)
            .with_statistics(statistics)
            .build()
    }
}
