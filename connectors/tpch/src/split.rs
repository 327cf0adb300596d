//! How TPC-H tables are cut into splits, and the reader that generates one split.
//!
//! A split is one part of tpchgen's own partitioning (`part` of `parts`), so every split
//! generates a disjoint, deterministic slice of the table: a retried split yields the same rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use tributary_connector::{
    ConnectorError, Result, SplitInfo, SplitReader, SplitStream, conform_batch,
};

use crate::config::{ColumnNaming, TpchConfig};
use crate::error::TpchError;
use crate::table::TpchTable;

/// Cuts a table into splits: at most `splits_per_table`, none smaller than
/// `min_rows_per_split` rows (nation and region are always one split).
pub fn plan_splits(table: TpchTable, scale_factor: f64, config: &TpchConfig) -> Vec<SplitInfo> {
    let rows = table.estimated_rows(scale_factor);
    let parts = if table.splittable() {
        let by_size = (rows / config.min_rows_per_split as u64).max(1);
        by_size.min(config.splits_per_table as u64)
    } else {
        1
    };
    (1..=parts)
        .map(|part| SplitInfo::new(format!("{}/{part}-of-{parts}", table.name()), rows / parts))
        .collect()
}

fn parse_split(split: &str) -> Result<(i32, i32), TpchError> {
    let bad = || TpchError::MalformedSplit(split.to_owned());
    let (_, range) = split.rsplit_once('/').ok_or_else(bad)?;
    let (part, parts) = range.split_once("-of-").ok_or_else(bad)?;
    let part: i32 = part.parse().map_err(|_| bad())?;
    let parts: i32 = parts.parse().map_err(|_| bad())?;
    if part < 1 || part > parts {
        return Err(bad());
    }
    Ok((part, parts))
}

/// Generates the splits of one table at one scale factor.
#[derive(Debug)]
pub struct TpchReader {
    table: TpchTable,
    scale_factor: f64,
    naming: ColumnNaming,
    schema: SchemaRef,
}

impl TpchReader {
    /// A reader of `table` at `scale_factor`.
    pub fn new(table: TpchTable, scale_factor: f64, naming: ColumnNaming) -> Self {
        Self {
            table,
            scale_factor,
            naming,
            schema: table.schema(naming),
        }
    }

    /// Decodes what [`SplitReader::encode_table`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpchError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| TpchError::MalformedTable(String::from_utf8_lossy(bytes).into_owned()))?;
        let bad = || TpchError::MalformedTable(text.to_owned());
        let mut parts = text.split('/');
        let (Some(table), Some(sf), Some(naming), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let table = TpchTable::from_name(table)?;
        let scale_factor: f64 = sf.parse().map_err(|_| bad())?;
        let naming = match naming {
            "standard" => ColumnNaming::Standard,
            "simplified" => ColumnNaming::Simplified,
            _ => return Err(bad()),
        };
        Ok(Self::new(table, scale_factor, naming))
    }
}

impl SplitReader for TpchReader {
    fn kind(&self) -> &'static str {
        "tpch"
    }

    fn table_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn encode_table(&self) -> Result<Vec<u8>> {
        let naming = match self.naming {
            ColumnNaming::Standard => "standard",
            ColumnNaming::Simplified => "simplified",
        };
        Ok(format!("{}/{}/{naming}", self.table.name(), self.scale_factor).into_bytes())
    }

    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> Result<SplitStream> {
        let (part, parts) = parse_split(split).map_err(ConnectorError::from)?;
        let batches = self
            .table
            .generate(self.scale_factor, part, parts, batch_size);
        let schema = Arc::new(self.schema.project(projection)?);
        let projection = projection.to_vec();
        // Generating rows is CPU work: it runs on a blocking thread, a couple of batches
        // ahead of the consumer. When the query is cancelled the receiver is dropped and the
        // generator stops at its next batch.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let split = split.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut remaining = limit.unwrap_or(usize::MAX);
            for batch in batches {
                if remaining == 0 {
                    break;
                }
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(DataFusionError::ArrowError(
                            Box::new(e),
                            Some(format!("split '{split}'")),
                        )));
                        break;
                    }
                };
                let batch = if batch.num_rows() > remaining {
                    batch.slice(0, remaining)
                } else {
                    batch
                };
                remaining -= batch.num_rows();
                if tx
                    .blocking_send(project(&batch, &projection, &schema))
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// Selects the projected columns, turning view strings into the exposed Utf8.
fn project(
    batch: &RecordBatch,
    projection: &[usize],
    schema: &SchemaRef,
) -> datafusion::error::Result<RecordBatch> {
    Ok(conform_batch(&batch.project(projection)?, schema)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[test]
    fn splits_cover_table_once() {
        let config = TpchConfig::default();
        let splits = plan_splits(TpchTable::Orders, 0.01, &config);
        assert_eq!(splits.len(), 8);
        assert_eq!(splits[0].name, "orders/1-of-8");
        assert_eq!(plan_splits(TpchTable::Nation, 1.0, &config).len(), 1);
    }

    #[tokio::test]
    async fn parts_add_up_to_the_table() {
        let reader = TpchReader::new(TpchTable::Orders, 0.01, ColumnNaming::Standard);
        let mut total = 0;
        for split in plan_splits(TpchTable::Orders, 0.01, &TpchConfig::default()) {
            let batches: Vec<RecordBatch> = reader
                .read(&split.name, &[0, 3], 1000, None)
                .expect("open")
                .try_collect()
                .await
                .expect("read");
            total += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
            assert_eq!(batches[0].schema().field(1).name(), "o_totalprice");
        }
        assert_eq!(total, 15_000);
        let limited: Vec<RecordBatch> = reader
            .read("orders/1-of-1", &[0], 1000, Some(1500))
            .expect("open")
            .try_collect()
            .await
            .expect("read");
        assert_eq!(
            limited.iter().map(RecordBatch::num_rows).sum::<usize>(),
            1500
        );
    }

    #[test]
    fn encodes_and_decodes_table() {
        let reader = TpchReader::new(TpchTable::LineItem, 0.01, ColumnNaming::Simplified);
        let decoded = TpchReader::decode(&reader.encode_table().expect("encode")).expect("decode");
        assert_eq!(decoded.table, TpchTable::LineItem);
        assert_eq!(decoded.scale_factor, 0.01);
        assert_eq!(decoded.schema.field(0).name(), "orderkey");
        assert!(parse_split("lineitem/0-of-8").is_err());
    }
}
