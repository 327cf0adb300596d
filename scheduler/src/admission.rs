//! Admission control: Trino's resource groups. Each query is placed by the first matching
//! selector into a group and waits (QUEUED) until every group on its path has room; past a
//! group's `maxQueued` it is rejected. Configured in `etc/resource-groups.properties`
//! (`config.rs`); the live tree is `groups.rs`.

mod config;
mod groups;

pub use config::{
    GroupSpec, QueryFacts, RESOURCE_GROUPS_PROPERTIES, ResourceGroupsConfig, Selected, query_type,
};
pub use groups::{Admission, ResourceGroups, Running, Waiting};
