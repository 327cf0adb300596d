//! `INSERT INTO kafka.schema.table …`: each row becomes one message, its key and value
//! encoded with the table's description, sent by an idempotent producer (no duplicates when
//! librdkafka retries). A row's `_partition_id` and `_timestamp`, when given, choose the
//! partition and the message timestamp. The statement succeeds only when every message was
//! acknowledged by the brokers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::KafkaClient;
use crate::encoder::RowEncoder;
use crate::error::KafkaError;
use crate::table::{Column, Internal, Source, TableSpec};

/// Writes rows as messages of one topic.
#[derive(Debug)]
pub struct KafkaSink {
    client: KafkaClient,
    spec: Arc<TableSpec>,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl KafkaSink {
    /// A sink for `spec`'s topic.
    pub fn new(
        client: KafkaClient,
        spec: Arc<TableSpec>,
        schema: SchemaRef,
    ) -> Result<Self, KafkaError> {
        let columns = spec.columns()?;
        Ok(Self {
            client,
            spec,
            columns,
            schema,
        })
    }

    fn table(&self) -> String {
        format!("{}.{}", self.client.catalog(), self.spec.qualified_name())
    }

    fn encode_error(&self, part: &str, message: String) -> DataFusionError {
        KafkaError::Encode {
            table: self.table(),
            message: format!("{part}: {message}"),
        }
        .into()
    }
}

impl DisplayAs for KafkaSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KafkaSink: table={}, topic={}",
            self.table(),
            self.spec.description.topic
        )
    }
}

#[async_trait]
impl DataSink for KafkaSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let description = &self.spec.description;
        let encoder = |group: Option<&crate::description::FieldGroup>, part: &str| {
            group
                .filter(|g| !g.fields.is_empty())
                .map(|g| RowEncoder::new(g).map_err(|e| self.encode_error(part, e)))
                .transpose()
        };
        let key_encoder = encoder(description.key.as_ref(), "key")?;
        let message_encoder = encoder(description.message.as_ref(), "message")?;
        let index = |want: &dyn Fn(Source) -> bool| -> Vec<usize> {
            self.columns
                .iter()
                .enumerate()
                .filter(|(_, c)| want(c.source))
                .map(|(i, _)| i)
                .collect()
        };
        let key_columns = index(&|s| matches!(s, Source::Key(_)));
        let message_columns = index(&|s| matches!(s, Source::Message(_)));
        let partition_column = index(&|s| s == Source::Internal(Internal::PartitionId));
        let timestamp_column = index(&|s| s == Source::Internal(Internal::Timestamp));
        let producer: FutureProducer = self.client.producer_config().create().map_err(|e| {
            DataFusionError::from(self.client.broker_error("creating a producer", e))
        })?;
        let topic = description.topic.as_str();
        let mut written = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            let pick = |indices: &[usize]| -> Vec<arrow::array::ArrayRef> {
                indices
                    .iter()
                    .map(|i| Arc::clone(batch.column(*i)))
                    .collect()
            };
            let (keys, messages) = (pick(&key_columns), pick(&message_columns));
            let mut deliveries = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let key = key_encoder
                    .as_ref()
                    .map(|e| e.encode(&keys, row))
                    .transpose()
                    .map_err(|e| self.encode_error("key", e))?;
                let payload = message_encoder
                    .as_ref()
                    .map(|e| e.encode(&messages, row))
                    .transpose()
                    .map_err(|e| self.encode_error("message", e))?;
                let mut record: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(topic);
                if let Some(k) = &key {
                    record = record.key(k);
                }
                if let Some(p) = &payload {
                    record = record.payload(p);
                }
                if let Some(i) = partition_column.first()
                    && let ScalarValue::Int64(Some(p)) =
                        ScalarValue::try_from_array(batch.column(*i), row)?
                {
                    record = record.partition(i32::try_from(p).map_err(|_| {
                        self.encode_error("_partition_id", format!("{p} is not a partition"))
                    })?);
                }
                if let Some(i) = timestamp_column.first()
                    && let ScalarValue::TimestampMillisecond(Some(ts), _) =
                        ScalarValue::try_from_array(batch.column(*i), row)?
                {
                    record = record.timestamp(ts);
                }
                // Waits for room in librdkafka's queue rather than failing.
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            deliveries.push(delivery);
                            break;
                        }
                        Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => {
                            return Err(self
                                .client
                                .broker_error(format!("writing to topic '{topic}'"), e)
                                .into());
                        }
                    }
                }
            }
            for delivery in futures::future::join_all(deliveries).await {
                match delivery {
                    Ok(Ok(_)) => written += 1,
                    Ok(Err((e, _))) => {
                        return Err(self
                            .client
                            .broker_error(format!("writing to topic '{topic}'"), e)
                            .into());
                    }
                    Err(_) => {
                        return Err(self
                            .client
                            .broker_error(
                                format!("writing to topic '{topic}'"),
                                "the producer was closed",
                            )
                            .into());
                    }
                }
            }
        }
        Ok(written)
    }
}
