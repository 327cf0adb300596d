//! The `tpch` connector: the TPC-H tables generated on the fly (by `tpchgen`, identical to
//! dbgen) at any scale factor, cut into splits that executors generate in parallel.
//!
//! Schemas are scale factors (`tiny` = 0.01, `sf1`, `sf100`, …), as in Trino's connector.

mod config;
mod connector;
mod error;
mod metadata;
mod split;
mod table;

pub use config::{ColumnNaming, TpchConfig};
pub use connector::{TpchConnector, TpchConnectorFactory};
pub use error::TpchError;
pub use metadata::{TpchCatalog, scale_factor};
pub use split::{TpchReader, plan_splits};
pub use table::TpchTable;
