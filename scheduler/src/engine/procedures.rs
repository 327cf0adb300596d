//! `CALL` procedures: `system.runtime.kill_query`.

use super::{Engine, Outcome};
use crate::error::{Result, SchedulerError};
use crate::monitor::KillOutcome;
use crate::session::Session;

impl Engine {
    /// `CALL system.runtime.kill_query(query_id => '…', message => '…')`.
    pub(super) fn call(
        &self,
        session: &Session,
        procedure: &[String],
        args: &[(Option<String>, String)],
    ) -> Result<Outcome> {
        let name = procedure.join(".");
        if name != "system.runtime.kill_query" {
            return Err(SchedulerError::NotFound(format!(
                "procedure '{name}' does not exist (procedures: system.runtime.kill_query)"
            )));
        }
        let mut query_id = None;
        let mut message = None;
        for (n, (arg, value)) in args.iter().enumerate() {
            match (arg.as_deref(), n) {
                (Some("query_id"), _) | (None, 0) => query_id = Some(value.clone()),
                (Some("message"), _) | (None, 1) => message = Some(value.clone()),
                (Some(other), _) => {
                    return Err(SchedulerError::InvalidQuery(format!(
                        "kill_query has no argument '{other}' (arguments: query_id, message)"
                    )));
                }
                (None, _) => {
                    return Err(SchedulerError::InvalidQuery(
                        "kill_query takes two arguments: query_id, message".into(),
                    ));
                }
            }
        }
        let query_id = query_id
            .ok_or_else(|| SchedulerError::InvalidQuery("kill_query needs query_id".into()))?;
        let message = message.unwrap_or_else(|| format!("killed by {}", session.user));
        match self.monitor.queries.kill(&query_id, &message, true) {
            KillOutcome::Killed => Ok(Outcome::Update(0)),
            KillOutcome::NotRunning => Err(SchedulerError::NotFound(format!(
                "query '{query_id}' is not running"
            ))),
            KillOutcome::Committing => Err(SchedulerError::InvalidQuery(format!(
                "query '{query_id}' is committing its write and can no longer be killed"
            ))),
        }
    }
}
