//! The limit a Kafka scan is measured against (bench/kafka_scan.py): one plain rdkafka
//! consumer, no consumer group, assigned every partition of a topic from its low to its
//! high-water mark, touching each payload and decoding nothing.
//!
//! `plain_consumer <brokers> <topic>` prints one JSON object: messages, bytes, wall and CPU
//! seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = text
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic) = match args.as_slice() {
        [_, b, t] => (b.clone(), t.clone()),
        _ => return Err("usage: plain_consumer <brokers> <topic>".into()),
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "plain-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "262144")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(&topic, *p, timeout)?;
        if high > low {
            ends.insert(*p, high);
            assignment.add_partition_offset(&topic, *p, Offset::Offset(low))?;
        }
    }
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    consumer.assign(&assignment)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let Some(end) = ends.get(&m.partition()).copied() else {
                    continue;
                };
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                if m.offset() + 1 >= end {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "{{\"messages\": {messages}, \"bytes\": {bytes}, \"wall_s\": {wall:.3}, \"cpu_s\": {cpu:.3}}}"
    );
    Ok(())
}
