//! The Arrow Flight SQL front door.

mod cookies;
mod forward;
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

/// Whether `token` can be a session token the scheduler issued (a UUID, 32 hex digits).
fn session_token(token: &str) -> bool {
    token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit())
}

/// The session store's key of a JWT's session (never a valid bearer token: see
/// [`session_token`]).
fn jwt_session_key(token: &str) -> String {
    format!("jwt:{token}")
}
