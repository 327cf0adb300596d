//! The catalog's Kafka client settings and the broker requests planning needs: partitions,
//! watermarks and offsets for times. Every request is bounded by `kafka.connect-timeout`;
//! failures name the catalog, the topic and the brokers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};

/// One partition's offsets at planning time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition id.
    pub partition: i32,
    /// First offset still stored.
    pub low: i64,
    /// High-water mark: one past the last readable message.
    pub high: i64,
}

/// Consumers kept for the next split: creating one costs a connection and a metadata
/// round trip, reassigning a kept one costs nothing.
const POOLED_CONSUMERS: usize = 16;

/// Talks to the brokers of one catalog.
#[derive(Clone)]
pub struct KafkaClient {
    catalog: String,
    config: Arc<KafkaConfig>,
    idle: Arc<Mutex<Vec<BaseConsumer>>>,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("catalog", &self.catalog)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// A client for `catalog`.
    pub fn new(catalog: &str, config: Arc<KafkaConfig>) -> Self {
        Self {
            catalog: catalog.to_owned(),
            config,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The catalog's configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The catalog's name.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// librdkafka settings every client of the catalog has: brokers, timeouts, and the
    /// settings of `kafka.config.resources` (security, …) last.
    pub fn common_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        let timeout_ms = self.config.connect_timeout.as_millis();
        c.set("bootstrap.servers", self.config.bootstrap_servers())
            .set("client.id", format!("tributary-{}", self.catalog))
            .set(
                "socket.connection.setup.timeout.ms",
                timeout_ms.clamp(1000, 2_147_483_647).to_string(),
            )
            .set(
                "socket.timeout.ms",
                timeout_ms.clamp(10, 300_000).to_string(),
            )
            .set("log_level", "3");
        c
    }

    fn with_resources(&self, mut c: ClientConfig) -> ClientConfig {
        for (key, value) in &self.config.client_settings {
            c.set(key, value);
        }
        c
    }

    /// Consumer settings for planning and reading: no consumer group joined, no commits.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = self.common_config();
        // librdkafka's assign() wants a group id; no group is joined and nothing is
        // committed (offsets come from the plan).
        c.set("group.id", format!("tributary-{}", self.catalog))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false")
            .set("fetch.wait.max.ms", "100")
            // A split reads one partition: fetch it in large pieces (librdkafka's default,
            // 1 MB per partition and request, made reads 3x slower in bench/kafka_scan.py).
            .set("fetch.message.max.bytes", "8388608")
            .set("queued.max.messages.kbytes", "65536");
        self.with_resources(c)
    }

    /// Producer settings for INSERT: idempotent (no duplicates when librdkafka retries).
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.common_config();
        c.set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        self.with_resources(c)
    }

    /// An error while doing `what`.
    pub fn broker_error(&self, what: impl Into<String>, e: impl std::fmt::Display) -> KafkaError {
        KafkaError::Broker {
            catalog: self.catalog.clone(),
            what: what.into(),
            brokers: self.config.bootstrap_servers(),
            message: e.to_string(),
        }
    }

    /// A new consumer (see [`Self::take_consumer`]).
    fn consumer(&self) -> Result<BaseConsumer> {
        self.client_config().create::<BaseConsumer>().map_err(|e| {
            self.broker_error("creating a Kafka client (check kafka.config.resources)", e)
        })
    }

    /// A consumer for reading one split: a kept one when there is one.
    pub fn take_consumer(&self) -> Result<BaseConsumer> {
        let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some(c) => Ok(c),
            None => self.consumer(),
        }
    }

    /// Keeps a consumer that finished its split cleanly, without its assignment.
    pub fn return_consumer(&self, consumer: BaseConsumer) {
        if consumer.unassign().is_err() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOLED_CONSUMERS {
            idle.push(consumer);
        }
    }

    fn timeout(&self) -> Duration {
        self.config.connect_timeout
    }

    /// The partitions of a topic with their offsets. Blocking: call from a blocking thread.
    pub fn partition_offsets(&self, topic: &str, table: &str) -> Result<Vec<PartitionOffsets>> {
        let consumer = self.take_consumer()?;
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout())
            .map_err(|e| self.broker_error(format!("reading metadata of topic '{topic}'"), e))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(self.missing(topic, table));
        };
        if let Some(err) = t.error() {
            let code: RDKafkaErrorCode = err.into();
            if code == RDKafkaErrorCode::UnknownTopicOrPartition
                || code == RDKafkaErrorCode::UnknownTopic
            {
                return Err(self.missing(topic, table));
            }
            return Err(self.broker_error(format!("reading metadata of topic '{topic}'"), code));
        }
        if t.partitions().is_empty() {
            return Err(self.missing(topic, table));
        }
        let mut offsets = Vec::with_capacity(t.partitions().len());
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), self.timeout())
                .map_err(|e| {
                    self.broker_error(
                        format!("reading offsets of topic '{topic}' partition {}", p.id()),
                        e,
                    )
                })?;
            offsets.push(PartitionOffsets {
                partition: p.id(),
                low,
                high,
            });
        }
        offsets.sort_by_key(|p| p.partition);
        self.return_consumer(consumer);
        Ok(offsets)
    }

    fn missing(&self, topic: &str, table: &str) -> KafkaError {
        KafkaError::MissingTopic {
            catalog: self.catalog.clone(),
            topic: topic.to_owned(),
            table: table.to_owned(),
            brokers: self.config.bootstrap_servers(),
        }
    }

    /// Per partition, the first offset whose timestamp is at or after `millis` (`None`: no
    /// such message yet). Blocking.
    pub fn offsets_for_time(
        &self,
        topic: &str,
        partitions: &[i32],
        millis: i64,
    ) -> Result<HashMap<i32, Option<i64>>> {
        let consumer = self.take_consumer()?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(topic, *p, Offset::Offset(millis))
                .map_err(|e| self.broker_error("building an offsets-for-times request", e))?;
        }
        let found = consumer
            .offsets_for_times(tpl, self.timeout())
            .map_err(|e| {
                self.broker_error(format!("looking up offsets by time in topic '{topic}'"), e)
            })?;
        let mut result = HashMap::new();
        for e in found.elements() {
            if let Err(err) = e.error() {
                return Err(self.broker_error(
                    format!(
                        "looking up offsets by time in topic '{topic}' partition {}",
                        e.partition()
                    ),
                    err,
                ));
            }
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            result.insert(e.partition(), offset);
        }
        self.return_consumer(consumer);
        Ok(result)
    }
}
