//! Splits and the reader of one split: a partition's fixed offset range `[start, end)`,
//! read by a plain consumer assigned to exactly that range (no consumer group, no commits),
//! so a retried split reads the same messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::DataFusionError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_connector::{ConnectorError, SplitInfo, SplitReader, SplitStream};

use crate::batch::{PartitionBatches, RawMessage};
use crate::client::{KafkaClient, PartitionOffsets};
use crate::decoder::{Buffers, RowDecoder, Value};
use crate::error::KafkaError;
use crate::rows::ColumnBuilder;
use crate::table::{Column, Internal, Source, TableSpec};

/// A partition's offsets to read: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// Partition id.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// One past the last offset read.
    pub end: i64,
}

impl OffsetRange {
    /// The split's name: `p<partition>/<start>-<end>`.
    pub fn name(&self) -> String {
        format!("p{}/{}-{}", self.partition, self.start, self.end)
    }

    /// Parses a split name.
    pub fn parse(name: &str) -> Option<Self> {
        let (partition, range) = name.strip_prefix('p')?.split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let range = Self {
            partition: partition.parse().ok()?,
            start: start.parse().ok()?,
            end: end.parse().ok()?,
        };
        (range.start >= 0 && range.start <= range.end).then_some(range)
    }
}

/// Cuts offset ranges into splits of at most `per_split` messages.
pub fn plan_splits(ranges: &[OffsetRange], per_split: u64) -> Vec<SplitInfo> {
    let per_split = i64::try_from(per_split.max(1)).unwrap_or(i64::MAX);
    let mut splits = Vec::new();
    for r in ranges {
        let mut start = r.start;
        while start < r.end {
            let end = start.saturating_add(per_split).min(r.end);
            let split = OffsetRange {
                partition: r.partition,
                start,
                end,
            };
            splits.push(SplitInfo::new(split.name(), (end - start) as u64));
            start = end;
        }
    }
    splits
}

/// Intersects each partition's readable offsets with the allowed offsets.
pub fn offset_ranges(partitions: &[PartitionOffsets], allowed: &[(i64, i64)]) -> Vec<OffsetRange> {
    let mut out = Vec::new();
    for p in partitions {
        for (lo, hi) in allowed {
            let start = p.low.max(*lo);
            let end = p.high.min(hi.saturating_add(1));
            if start < end {
                out.push(OffsetRange {
                    partition: p.partition,
                    start,
                    end,
                });
            }
        }
    }
    out
}

/// Reads the splits of one table.
#[derive(Debug)]
pub struct KafkaReader {
    spec: Arc<TableSpec>,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    client: KafkaClient,
    key: Option<Arc<RowDecoder>>,
    message: Option<Arc<RowDecoder>>,
}

impl KafkaReader {
    /// A reader of `spec`'s table through `client`.
    pub fn new(spec: TableSpec, client: KafkaClient) -> Result<Self, KafkaError> {
        let columns = spec.columns()?;
        let schema = spec.schema()?;
        let decoder = |group: Option<&crate::description::FieldGroup>| {
            group
                .map(|g| {
                    RowDecoder::new(g)
                        .map(Arc::new)
                        .map_err(|e| KafkaError::Description {
                            path: spec.qualified_name().into(),
                            message: e,
                        })
                })
                .transpose()
        };
        let key = decoder(spec.description.key.as_ref())?;
        let message = decoder(spec.description.message.as_ref())?;
        Ok(Self {
            spec: Arc::new(spec),
            columns: Arc::new(columns),
            schema,
            client,
            key,
            message,
        })
    }

    /// The table's description and settings.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }
}

impl SplitReader for KafkaReader {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn table_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn describe(&self, _projection: &[usize]) -> Option<String> {
        Some(format!("topic={}", self.spec.description.topic))
    }

    fn encode_table(&self) -> tributary_connector::Result<Vec<u8>> {
        tributary_connector::encode_json("kafka table", self.spec.as_ref())
    }

    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> tributary_connector::Result<SplitStream> {
        let range = OffsetRange::parse(split).ok_or_else(|| ConnectorError::InvalidSplit {
            split: split.to_owned(),
            connector: "kafka".into(),
            reason: "expected p<partition>/<start>-<end>".into(),
        })?;
        let schema = Arc::new(self.schema.project(projection)?);
        let task = SplitTask {
            client: self.client.clone(),
            topic: self.spec.description.topic.clone(),
            range,
            columns: projection
                .iter()
                .map(|i| self.columns[*i].clone())
                .collect(),
            key: self.key.clone(),
            message: self.message.clone(),
            schema,
            batch_size: batch_size.max(1),
            limit: limit.unwrap_or(usize::MAX),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        // librdkafka's consumer API blocks: each split reads on a blocking thread, a couple
        // of batches ahead. When the query is cancelled the receiver goes away and the
        // loop stops at its next batch.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = task.run(&tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

type BatchSender = tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>;

/// What decoding a row needs from each message.
#[derive(Debug, Clone, Copy, Default)]
struct Needs {
    key: bool,
    message: bool,
}

struct SplitTask {
    client: KafkaClient,
    topic: String,
    range: OffsetRange,
    columns: Vec<Column>,
    key: Option<Arc<RowDecoder>>,
    message: Option<Arc<RowDecoder>>,
    schema: SchemaRef,
    batch_size: usize,
    limit: usize,
}

impl SplitTask {
    fn what(&self) -> String {
        format!(
            "reading topic '{}' partition {} offsets {}..{}",
            self.topic, self.range.partition, self.range.start, self.range.end
        )
    }

    fn run(&self, tx: &BatchSender) -> datafusion::error::Result<()> {
        if self.range.start >= self.range.end || self.limit == 0 {
            return Ok(());
        }
        let consumer: BaseConsumer = self.client.take_consumer().map_err(DataFusionError::from)?;
        self.read_range(&consumer, tx)?;
        // Only a consumer that read its range cleanly is kept for the next split.
        self.client.return_consumer(consumer);
        Ok(())
    }

    fn read_range(
        &self,
        consumer: &BaseConsumer,
        tx: &BatchSender,
    ) -> datafusion::error::Result<()> {
        // Created before the assignment, so the partition's messages go to its own queue.
        let mut batches = PartitionBatches::new(
            consumer,
            &self.topic,
            self.range.partition,
            self.batch_size.min(4096),
        )
        .ok_or_else(|| {
            DataFusionError::from(
                self.client
                    .broker_error(self.what(), "librdkafka has no queue for the partition"),
            )
        })?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                &self.topic,
                self.range.partition,
                Offset::Offset(self.range.start),
            )
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|e| DataFusionError::from(self.client.broker_error(self.what(), e)))?;
        // Decode only the parts a projected column needs; but when any field of a part is
        // read, every field of it is decoded, so `_message_corrupt` never depends on the query.
        let mut needs = Needs::default();
        for c in &self.columns {
            match c.source {
                Source::Key(_) | Source::Internal(Internal::KeyCorrupt) => needs.key = true,
                Source::Message(_) | Source::Internal(Internal::MessageCorrupt) => {
                    needs.message = true
                }
                Source::Internal(_) => {}
            }
        }
        let mut builders = self.builders();
        let mut rows = 0usize;
        let mut produced = 0usize;
        let patience = self
            .client
            .config()
            .connect_timeout
            .max(Duration::from_secs(1));
        // The clock is read only while waiting (it is not free on every machine).
        let mut idle_since: Option<Instant> = None;
        let (mut key_buffers, mut message_buffers) = (Buffers::default(), Buffers::default());
        let last = self.range.end - 1;
        let mut next = self.range.start;
        'read: loop {
            let mut arrived = false;
            for msg in batches.next(Duration::from_millis(10)) {
                arrived = true;
                if msg.is_error() {
                    // The range was fixed at planning: the partition ending first means the
                    // remaining offsets are gone (compaction, retention, transaction markers).
                    if msg.is_partition_eof() && msg.partition() == self.range.partition {
                        break 'read;
                    }
                    if idle_since.get_or_insert_with(Instant::now).elapsed() > patience {
                        return Err(DataFusionError::from(
                            self.client.broker_error(self.what(), msg.error_text()),
                        ));
                    }
                    continue;
                }
                idle_since = None;
                let offset = msg.offset();
                // librdkafka drops what a kept consumer fetched for an earlier assignment
                // (its ops carry the assignment's version); these checks guard the range.
                if msg.partition() != self.range.partition || offset < next {
                    continue;
                }
                if offset > last {
                    break 'read;
                }
                next = offset + 1;
                let key = msg.key();
                let payload = msg.payload();
                let (mut key_values, mut key_raws) = key_buffers.lend();
                let (mut message_values, mut message_raws) = message_buffers.lend();
                let key_corrupt = match (&self.key, needs.key) {
                    (Some(d), true) => d.decode(key, &mut key_values, &mut key_raws).is_err(),
                    _ => false,
                };
                let message_corrupt = match (&self.message, needs.message) {
                    (Some(d), true) => d
                        .decode(payload, &mut message_values, &mut message_raws)
                        .is_err(),
                    _ => false,
                };
                for (column, builder) in self.columns.iter().zip(builders.iter_mut()) {
                    match column.source {
                        Source::Key(i) => builder.append(key_values.get(i).unwrap_or(&Value::Null)),
                        Source::Message(i) => {
                            builder.append(message_values.get(i).unwrap_or(&Value::Null))
                        }
                        Source::Internal(Internal::Headers) => {
                            builder.append_headers(msg.headers().into_iter())
                        }
                        Source::Internal(internal) => builder.append(&internal_value(
                            internal,
                            &msg,
                            offset,
                            key_corrupt,
                            message_corrupt,
                        )),
                    }
                }
                key_buffers.give_back(key_values, key_raws);
                message_buffers.give_back(message_values, message_raws);
                rows += 1;
                produced += 1;
                if rows == self.batch_size {
                    if !self.send(tx, &mut builders, rows)? {
                        return Ok(());
                    }
                    rows = 0;
                }
                if offset >= last || produced >= self.limit {
                    break 'read;
                }
            }
            if !arrived && idle_since.get_or_insert_with(Instant::now).elapsed() > patience {
                return Err(DataFusionError::from(self.client.broker_error(
                    self.what(),
                    format!("no message arrived within {patience:?}"),
                )));
            }
        }
        if rows > 0 {
            self.send(tx, &mut builders, rows)?;
        }
        Ok(())
    }

    fn builders(&self) -> Vec<ColumnBuilder> {
        self.columns
            .iter()
            .map(|c| ColumnBuilder::new(c.field.data_type(), self.batch_size))
            .collect()
    }

    /// Sends a batch; `false` when the consumer of the stream has gone away.
    fn send(
        &self,
        tx: &BatchSender,
        builders: &mut [ColumnBuilder],
        rows: usize,
    ) -> datafusion::error::Result<bool> {
        let arrays = builders.iter_mut().map(ColumnBuilder::finish).collect();
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(tx.blocking_send(Ok(batch)).is_ok())
    }
}

/// The value of an internal column (all but `_headers`) for one message.
fn internal_value<'m>(
    internal: Internal,
    msg: &RawMessage<'m>,
    offset: i64,
    key_corrupt: bool,
    message_corrupt: bool,
) -> Value<'m> {
    let (key, payload) = (msg.key(), msg.payload());
    match internal {
        Internal::PartitionId => Value::Int(i64::from(msg.partition())),
        Internal::PartitionOffset | Internal::Offset => Value::Int(offset),
        Internal::MessageCorrupt => Value::Bool(message_corrupt),
        Internal::KeyCorrupt => Value::Bool(key_corrupt),
        Internal::Message => text(payload),
        Internal::Key => text(key),
        Internal::MessageLength => Value::Int(payload.map_or(0, <[u8]>::len) as i64),
        Internal::KeyLength => Value::Int(key.map_or(0, <[u8]>::len) as i64),
        Internal::Timestamp => msg.timestamp().map_or(Value::Null, Value::Int),
        Internal::Headers => Value::Null,
    }
}

/// `_message` / `_key`: the bytes as text (invalid UTF-8 replaced), NULL when absent.
fn text(bytes: Option<&[u8]>) -> Value<'_> {
    match bytes {
        None => Value::Null,
        Some(b) => Value::Text(String::from_utf8_lossy(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_ranges() {
        let parts = [
            PartitionOffsets {
                partition: 0,
                low: 0,
                high: 250,
            },
            PartitionOffsets {
                partition: 1,
                low: 100,
                high: 120,
            },
        ];
        let ranges = offset_ranges(&parts, &[(i64::MIN, i64::MAX)]);
        let splits = plan_splits(&ranges, 100);
        let names: Vec<_> = splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["p0/0-100", "p0/100-200", "p0/200-250", "p1/100-120"]
        );
        let narrowed = offset_ranges(&parts, &[(110, 114), (240, 300)]);
        assert_eq!(
            narrowed,
            vec![
                OffsetRange {
                    partition: 0,
                    start: 110,
                    end: 115
                },
                OffsetRange {
                    partition: 0,
                    start: 240,
                    end: 250
                },
                OffsetRange {
                    partition: 1,
                    start: 110,
                    end: 115
                },
            ]
        );
        assert_eq!(OffsetRange::parse("p1/110-115"), Some(narrowed[2]));
        assert_eq!(OffsetRange::parse("p1/115-110"), None);
    }
}
