//! Hive catalogs (`connector.name=hive`): tables of Parquet, CSV, JSON and TEXTFILE files on
//! S3 (`s3://`, `s3a://`, `s3n://`) or local storage, described by Trino's file metastore.
//!
//! What happens to a query:
//! 1. the schema provider reads the table's `.trinoTable` ([`metastore`]) into a
//!    [`table_info::TableInfo`];
//! 2. the scan ([`table`]) lists the table's location, reads `key=value` directories into
//!    typed partition values ([`partitions`]), keeps the partitions the filters can match
//!    (filters on declared partition columns, and date filters on the column
//!    `year`/`month`/`day` directories derive from), cuts files into byte-range splits of at
//!    most `hive.max-split-size`, and builds DataFusion's own Parquet/CSV/JSON scan over them,
//!    so Ballista hands each task its splits and Parquet row groups and pages are pruned by
//!    their statistics on the executors;
//! 3. writes ([`sink`]) produce Parquet files per partition directory and become visible in
//!    one metastore update.
//!
//! Object stores are created per bucket from the catalog's S3 settings, in the scheduler and
//! in every executor, through [`tributary_connector::ConnectorStores`]: a scan names its
//! store `s3://<catalog>@<bucket>/`. With `fs.cache.enabled=true`, each process reads the
//! buckets through a file system cache on its local disks ([`fs_cache`]).
//!
//! Delta Lake catalogs (`connector.name=delta_lake`, [`delta`]) share the metastore, the
//! storage and the scan; their tables' truth is the Delta log.
//!
//! ORC tables are read by [`orc`] (orc-rust) through the connector contract's split reader;
//! writes are Parquet only. Avro, RCFile and SequenceFile are not supported; the Thrift
//! metastore (`hive.metastore.uri`) is refused with a clear message.

pub mod catalog;
pub mod config;
mod connector;
pub mod context;
pub mod delta;
pub mod error;
pub mod footers;
pub mod fs_cache;
pub mod metastore;
pub mod orc;
pub mod partitions;
pub mod scan;
pub mod sink;
pub mod storage;
pub mod table;
pub mod table_info;
mod table_spec;
pub mod types;
pub mod views;

pub use connector::{DeltaLakeConnectorFactory, HiveConnector, HiveConnectorFactory};
pub use error::{HiveError, Result};
