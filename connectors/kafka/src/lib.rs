//! The `kafka` connector: topics as tables, described by Trino's topic description files
//! and decoded with Trino's decoders, read as bounded, exactly-once offset ranges.
//!
//! | part | here |
//! | --- | --- |
//! | catalog properties (`kafka.nodes`, …) | [`config`] |
//! | topic description files (`etc/kafka/*.json`) | [`description`] |
//! | key and message decoders (json, csv, raw, avro) | [`decoder`] |
//! | columns: described fields, then internal columns (`_partition_id`, …) | [`table`] |
//! | broker requests: partitions, watermarks, offsets for times | [`client`] |
//! | filters that narrow offset ranges | [`pushdown`] |
//! | splits and the reader of one split | [`reader`] |
//! | `INSERT`: rows encoded as messages by an idempotent producer | [`encoder`], [`sink`] |
//!
//! ## Types
//!
//! | description type | Arrow type |
//! | --- | --- |
//! | `boolean` | Boolean |
//! | `tinyint`, `smallint`, `integer`, `bigint` | Int8, Int16, Int32, Int64 |
//! | `real`, `double` | Float32, Float64 |
//! | `decimal(p,s)` | Decimal128(p,s) |
//! | `varchar[(n)]`, `char(n)`, `json` | Utf8 |
//! | `varbinary` | Binary |
//! | `date`, `time` | Date32, Time64(µs) |
//! | `timestamp[(p)]`, `timestamp[(p)] with time zone` | Timestamp(ms, or µs for p > 3) [UTC] |
//!
//! Internal columns: `_partition_id`, `_partition_offset` (also `_offset`), `_message_corrupt`,
//! `_message`, `_message_length`, `_headers` (map of varchar to array of varbinary),
//! `_key_corrupt`, `_key`, `_key_length`, `_timestamp` (timestamp(3), UTC).

mod batch;
pub mod catalog;
pub mod client;
pub mod config;
mod connector;
pub mod decoder;
pub mod description;
pub mod encoder;
mod error;
pub mod pushdown;
pub mod reader;
mod rows;
pub mod sink;
pub mod table;
pub mod types;

pub use connector::{KafkaConnector, KafkaConnectorFactory};
pub use error::{KafkaError, Result};
