//! The Tributary executor: Ballista's executor with Tributary's connector codec and runtime.
//!
//! An executor loads the same `etc/catalog` as the scheduler, so that it can rebuild every
//! connector scan it is sent ([`tributary_connector::ConnectorCodec`]). It drains before it
//! exits ([`drain`]).

mod broadcast;
mod client_pool;
mod compact;
mod delegate;
mod direct;
pub mod drain;
mod error;
mod flight;
pub mod memory;
mod observe;
mod presort;
mod process;
mod skew;
mod tail;
mod uncompressed;

pub use drain::{DrainControl, NodeState, intercept_sigterm};
pub use error::ExecutorError;
pub use memory::MemoryConfig;
pub use observe::ExecutorMetrics;
pub use process::{ExecutorOptions, remove_work_dir, run_executor, temporary_work_dir};
