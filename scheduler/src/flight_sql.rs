//! The Arrow Flight SQL front door.

mod cookies;
mod metadata;
mod prepared;
mod requests;
mod results;
mod service;
mod session_actions;
mod sql_info;
mod xdbc;

pub(crate) use cookies::CookieSessionLayer;
pub(crate) use metadata::trino_type_name;
pub use service::TributaryFlightSql;
