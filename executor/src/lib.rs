//! The Tributary executor: Ballista's executor with Tributary's connector codec and runtime.
//!
//! An executor loads the same `etc/catalog` as the scheduler, so that it can rebuild every
//! connector scan it is sent ([`tributary_connector::ConnectorCodec`]).

mod client_pool;
mod error;
mod observe;
mod process;

pub use error::ExecutorError;
pub use observe::ExecutorMetrics;
pub use process::{ExecutorOptions, run_executor};
