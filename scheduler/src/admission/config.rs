//! Trino's file-based resource-group configuration: `etc/resource-groups.properties`
//! (`resource-groups.configuration-manager=file`, `resource-groups.config-file=…`) naming a
//! JSON file of root groups and selectors, read exactly as Trino documents it.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use tributary_connector::Properties;

use crate::error::{Result, SchedulerError};

/// The properties file naming the resource-group configuration.
pub const RESOURCE_GROUPS_PROPERTIES: &str = "resource-groups.properties";

/// A group as configured (its name may be a template: `${USER}`, `${SOURCE}`, or a named
/// group of a selector's regular expression).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// Name or name template.
    pub name: String,
    /// Queries that may wait in this group (and its subgroups); more are rejected.
    pub max_queued: usize,
    /// Queries that may run at once in this group (and its subgroups).
    pub hard_concurrency_limit: Option<usize>,
    /// Trino's older name of `hardConcurrencyLimit`.
    pub max_running: Option<usize>,
    /// Accepted; not enforced (Tributary has no per-group soft concurrency yet).
    pub soft_concurrency_limit: Option<usize>,
    /// Memory the group's queries may use before new ones wait (`10GB` or `50%`); accepted,
    /// enforced once per-query memory accounting exists.
    pub soft_memory_limit: Option<String>,
    /// How subgroups take turns: `fair` (default), `weighted`, `weighted_fair`,
    /// `query_priority` (taken as `fair`).
    pub scheduling_policy: Option<String>,
    /// Share of this group among its siblings under `weighted` policies (default 1).
    pub scheduling_weight: Option<u32>,
    /// Accepted; not enforced (no CPU quotas).
    pub soft_cpu_limit: Option<String>,
    /// Accepted; not enforced (no CPU quotas).
    pub hard_cpu_limit: Option<String>,
    /// Accepted; Tributary exports metrics through Prometheus instead of JMX.
    pub jmx_export: Option<bool>,
    /// Child groups.
    #[serde(default)]
    pub sub_groups: Vec<GroupSpec>,
}

impl GroupSpec {
    /// Queries that may run at once.
    pub fn concurrency(&self) -> usize {
        self.hard_concurrency_limit
            .or(self.max_running)
            .unwrap_or(usize::MAX)
    }

    /// Whether siblings share by weight.
    pub fn weighted(&self) -> bool {
        matches!(
            self.scheduling_policy.as_deref(),
            Some("weighted" | "weighted_fair")
        )
    }
}

/// A selector as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectorSpec {
    user: Option<String>,
    user_group: Option<String>,
    source: Option<String>,
    query_type: Option<String>,
    client_tags: Option<Vec<String>>,
    group: String,
}

/// The JSON file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileSpec {
    root_groups: Vec<GroupSpec>,
    selectors: Vec<SelectorSpec>,
    cpu_quota_period: Option<String>,
}

/// Who runs what: the facts selectors look at.
#[derive(Debug, Clone)]
pub struct QueryFacts<'a> {
    /// Authenticated user.
    pub user: &'a str,
    /// The client's source (`X-Trino-Source`, user agent).
    pub source: &'a str,
    /// Trino's query type of the statement (`SELECT`, `INSERT`, `DATA_DEFINITION`, …).
    pub query_type: &'static str,
}

/// A selector, compiled.
#[derive(Debug, Clone)]
struct Selector {
    user: Option<Regex>,
    source: Option<Regex>,
    query_type: Option<String>,
    group: Vec<String>,
}

/// The group a selector chose: its path with templates filled, and as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Concrete group names, root first (`global`, `adhoc`, `ann`).
    pub path: Vec<String>,
    /// The configured names (`global`, `adhoc`, `${USER}`).
    pub template: Vec<String>,
}

impl Selected {
    /// The dotted name (`global.adhoc.ann`), as Trino shows it.
    pub fn name(&self) -> String {
        self.path.join(".")
    }
}

impl Selector {
    /// The group this selector picks for `facts`, or `None`.
    fn select(&self, facts: &QueryFacts<'_>) -> Option<Selected> {
        let mut named: Vec<(String, String)> = vec![
            ("USER".to_owned(), facts.user.to_owned()),
            ("SOURCE".to_owned(), facts.source.to_owned()),
        ];
        for (regex, value) in [(&self.user, facts.user), (&self.source, facts.source)] {
            if let Some(regex) = regex {
                let captures = regex.captures(value)?;
                for name in regex.capture_names().flatten() {
                    if let Some(m) = captures.name(name) {
                        named.push((name.to_owned(), m.as_str().to_owned()));
                    }
                }
            }
        }
        if let Some(query_type) = &self.query_type
            && !query_type.eq_ignore_ascii_case(facts.query_type)
        {
            return None;
        }
        // One pass per segment: a value holding `${…}` is not substituted again.
        let path = self
            .group
            .iter()
            .map(|segment| {
                template_variable()
                    .replace_all(segment, |c: &regex::Captures<'_>| {
                        named
                            .iter()
                            .rev()
                            .find(|(name, _)| *name == c[1])
                            .map(|(_, value)| value.clone())
                            .unwrap_or_default()
                    })
                    .into_owned()
            })
            .collect();
        Some(Selected {
            path,
            template: self.group.clone(),
        })
    }
}

/// The resource groups of a scheduler.
#[derive(Debug, Clone)]
pub struct ResourceGroupsConfig {
    /// The JSON file they came from (named in errors).
    pub file: PathBuf,
    /// Root groups.
    pub roots: Vec<GroupSpec>,
    selectors: Vec<Selector>,
}

impl ResourceGroupsConfig {
    /// Reads `<etc>/resource-groups.properties` and the JSON file it names; `None` when the
    /// properties file does not exist (no admission control, as Trino).
    pub fn load(etc: &Path) -> Result<Option<Self>> {
        let path = etc.join(RESOURCE_GROUPS_PROPERTIES);
        if !path.exists() {
            return Ok(None);
        }
        let props = Properties::load(&path).map_err(|e| SchedulerError::Config(e.to_string()))?;
        let mut reader = props.reader("resource groups");
        let manager = reader
            .optional_choice("resource-groups.configuration-manager", &["file", "db"])
            .map_err(|e| SchedulerError::Config(e.to_string()))?
            .unwrap_or("file");
        if manager == "db" {
            return Err(SchedulerError::Config(format!(
                "{}: resource-groups.configuration-manager=db is not supported; use file",
                path.display()
            )));
        }
        let file = reader
            .required_string(
                "resource-groups.config-file",
                "the path of the resource groups JSON file",
            )
            .map_err(|e| SchedulerError::Config(e.to_string()))?;
        reader
            .finish()
            .map_err(|e| SchedulerError::Config(e.to_string()))?;
        // Relative paths are read against the directory holding etc/, as Trino's are against
        // its installation directory (`etc/resource-groups.json`).
        let beside_etc = tributary_connector::installation_path(etc, &file);
        let file = if beside_etc.exists() {
            beside_etc
        } else {
            etc.join(&file)
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            SchedulerError::Config(format!(
                "{}: cannot read resource-groups.config-file {}: {e}",
                path.display(),
                file.display()
            ))
        })?;
        Self::parse(&file, &text).map(Some)
    }

    /// Parses the JSON file's text.
    pub fn parse(file: &Path, text: &str) -> Result<Self> {
        let bad =
            |message: String| SchedulerError::Config(format!("{}: {message}", file.display()));
        let spec: FileSpec = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if spec.root_groups.is_empty() {
            return Err(bad("rootGroups is empty".into()));
        }
        if spec.cpu_quota_period.is_some() {
            tracing::warn!("{}: cpuQuotaPeriod is not enforced", file.display());
        }
        fn check(
            group: &GroupSpec,
            path: &str,
            bad: &dyn Fn(String) -> SchedulerError,
        ) -> Result<()> {
            let path = if path.is_empty() {
                group.name.clone()
            } else {
                format!("{path}.{}", group.name)
            };
            if group.name.is_empty() || group.name.contains('.') {
                return Err(bad(format!(
                    "group '{path}': a name is not empty and has no '.'"
                )));
            }
            if group.hard_concurrency_limit.is_none() && group.max_running.is_none() {
                return Err(bad(format!(
                    "group '{path}': hardConcurrencyLimit is required"
                )));
            }
            if let Some(policy) = &group.scheduling_policy
                && !["fair", "weighted", "weighted_fair", "query_priority"]
                    .contains(&policy.as_str())
            {
                return Err(bad(format!(
                    "group '{path}': schedulingPolicy '{policy}' is not one of fair, weighted, \
                     weighted_fair, query_priority"
                )));
            }
            if let Some(limit) = &group.soft_memory_limit
                && !valid_memory_limit(limit)
            {
                return Err(bad(format!(
                    "group '{path}': softMemoryLimit '{limit}' is neither a size (10GB) nor a \
                     percentage (50%)"
                )));
            }
            for ignored in [
                group.soft_cpu_limit.as_ref().map(|_| "softCpuLimit"),
                group.hard_cpu_limit.as_ref().map(|_| "hardCpuLimit"),
                group.soft_concurrency_limit.map(|_| "softConcurrencyLimit"),
            ]
            .into_iter()
            .flatten()
            {
                tracing::warn!("group '{path}': {ignored} is not enforced");
            }
            for sub in &group.sub_groups {
                check(sub, &path, bad)?;
            }
            Ok(())
        }
        for root in &spec.root_groups {
            if root.name.contains("${") {
                return Err(bad(format!(
                    "root group '{}' cannot be a template",
                    root.name
                )));
            }
            check(root, "", &bad)?;
        }
        let mut selectors = Vec::new();
        for (n, s) in spec.selectors.into_iter().enumerate() {
            let regex = |field: &str, pattern: Option<String>| -> Result<Option<Regex>> {
                pattern
                    .map(|p| {
                        // Java's matches(): the whole value.
                        Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                            bad(format!(
                                "selector {}: {field} '{p}' is not a regular expression: {e}",
                                n + 1
                            ))
                        })
                    })
                    .transpose()
            };
            if s.user_group.is_some() || s.client_tags.is_some() {
                return Err(bad(format!(
                    "selector {}: userGroup and clientTags are not supported yet (Tributary has \
                     no user groups or client tags)",
                    n + 1
                )));
            }
            let group: Vec<String> = s.group.split('.').map(str::to_owned).collect();
            let user = regex("user", s.user)?;
            let source = regex("source", s.source)?;
            // Every variable of the group must be known: USER, SOURCE or a named group of
            // this selector's expressions.
            let captured: Vec<&str> = [&user, &source]
                .into_iter()
                .flatten()
                .flat_map(|r| r.capture_names().flatten())
                .collect();
            for variable in template_variable().captures_iter(&s.group) {
                let name = &variable[1];
                if name != "USER" && name != "SOURCE" && !captured.contains(&name) {
                    return Err(bad(format!(
                        "selector {}: group '{}' uses ${{{name}}}, which is neither USER, SOURCE \
                         nor a named group of its user or source expression",
                        n + 1,
                        s.group
                    )));
                }
            }
            if !template_exists(&spec.root_groups, &group) {
                return Err(bad(format!(
                    "selector {}: group '{}' is not a leaf group of rootGroups",
                    n + 1,
                    s.group
                )));
            }
            selectors.push(Selector {
                user,
                source,
                query_type: s.query_type,
                group,
            });
        }
        Ok(Self {
            file: file.to_path_buf(),
            roots: spec.root_groups,
            selectors,
        })
    }

    /// The group a query runs in: the first selector that matches (Trino's order).
    pub fn select(&self, facts: &QueryFacts<'_>) -> Option<Selected> {
        self.selectors.iter().find_map(|s| s.select(facts))
    }

    /// The configuration of the group named `template` (configured names, root first).
    pub fn spec(&self, template: &[String]) -> Option<&GroupSpec> {
        let (first, rest) = template.split_first()?;
        let mut group = self.roots.iter().find(|g| g.name == *first)?;
        for segment in rest {
            group = group.sub_groups.iter().find(|g| g.name == *segment)?;
        }
        Some(group)
    }
}

/// Whether a selector's group (with its templates) names a leaf group.
fn template_exists(roots: &[GroupSpec], path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(mut group) = roots.iter().find(|g| g.name == *first) else {
        return false;
    };
    for segment in rest {
        match group.sub_groups.iter().find(|g| g.name == *segment) {
            Some(g) => group = g,
            None => return false,
        }
    }
    group.sub_groups.is_empty()
}

/// `${NAME}` in a group name.
fn template_variable() -> &'static Regex {
    static VARIABLE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    VARIABLE.get_or_init(|| {
        #[allow(clippy::unwrap_used)] // a constant, valid pattern
        Regex::new(r"\$\{([A-Za-z0-9_]+)\}").unwrap()
    })
}

fn valid_memory_limit(limit: &str) -> bool {
    let limit = limit.trim();
    if let Some(percent) = limit.strip_suffix('%') {
        return percent
            .trim()
            .parse::<f64>()
            .is_ok_and(|p| (0.0..=100.0).contains(&p));
    }
    let digits: String = limit
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = limit[digits.len()..].trim().to_ascii_uppercase();
    !digits.is_empty() && ["B", "KB", "MB", "GB", "TB", "PB"].contains(&unit.as_str())
}

/// Trino's query type of a statement, from its first keyword.
pub fn query_type(sql: &str) -> &'static str {
    let text = strip_comments(sql);
    let keyword = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase();
    match keyword.as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => "SELECT",
        "EXPLAIN" => "EXPLAIN",
        "DESCRIBE" | "DESC" | "SHOW" => "DESCRIBE",
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "MERGE" => "MERGE",
        "ANALYZE" => "ANALYZE",
        // CREATE TABLE … AS SELECT writes rows: Trino counts it as INSERT.
        "CREATE" if is_ctas(&text) => "INSERT",
        _ => "DATA_DEFINITION",
    }
}

fn is_ctas(text: &str) -> bool {
    static CTAS: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    CTAS.get_or_init(|| {
        Regex::new(r"(?is)^\s*create\s+(or\s+replace\s+)?table\b.*\bas\s*\(?\s*(select|with|values|table)\b").ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(text))
}

fn strip_comments(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start();
        if let Some(line) = trimmed.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(block) = trimmed.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, r)| r);
        } else {
            out.push_str(trimmed);
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trino's documented example, shortened.
    const EXAMPLE: &str = r#"{
      "rootGroups": [
        {"name": "global", "softMemoryLimit": "80%", "hardConcurrencyLimit": 100,
         "maxQueued": 1000, "schedulingPolicy": "weighted", "jmxExport": true,
         "subGroups": [
           {"name": "data_definition", "softMemoryLimit": "10%", "hardConcurrencyLimit": 5,
            "maxQueued": 100, "schedulingWeight": 1},
           {"name": "adhoc", "softMemoryLimit": "10%", "hardConcurrencyLimit": 50,
            "maxQueued": 1, "schedulingWeight": 10, "subGroups": [
              {"name": "${USER}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 2,
               "maxQueued": 1},
              {"name": "team_${team}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 4,
               "maxQueued": 5}]}
         ]},
        {"name": "admin", "softMemoryLimit": "100%", "hardConcurrencyLimit": 50,
         "maxQueued": 100, "schedulingPolicy": "query_priority"}
      ],
      "selectors": [
        {"user": "bob", "group": "admin"},
        {"source": ".*pipeline.*", "queryType": "DATA_DEFINITION", "group": "global.data_definition"},
        {"user": "(?<team>[a-z]+)_.*", "group": "global.adhoc.team_${team}"},
        {"group": "global.adhoc.${USER}"}
      ],
      "cpuQuotaPeriod": "1h"
    }"#;

    fn config() -> ResourceGroupsConfig {
        ResourceGroupsConfig::parse(Path::new("rg.json"), EXAMPLE).expect("parses")
    }

    fn facts<'a>(user: &'a str, source: &'a str, sql: &str) -> QueryFacts<'a> {
        QueryFacts {
            user,
            source,
            query_type: query_type(sql),
        }
    }

    fn name(c: &ResourceGroupsConfig, user: &str, source: &str, sql: &str) -> Option<String> {
        c.select(&facts(user, source, sql)).map(|s| s.name())
    }

    #[test]
    fn selectors_pick_groups_in_order_with_templates() {
        let c = config();
        assert_eq!(name(&c, "bob", "", "SELECT 1").as_deref(), Some("admin"));
        assert_eq!(
            name(&c, "x", "my-pipeline", "CREATE TABLE t (a int)").as_deref(),
            Some("global.data_definition")
        );
        assert_eq!(
            name(&c, "x", "my-pipeline", "SELECT 1").as_deref(),
            Some("global.adhoc.x")
        );
        let team = c
            .select(&facts("sales_ann", "", "/* hi */ SELECT 1"))
            .expect("selected");
        assert_eq!(team.name(), "global.adhoc.team_sales");
        let spec = c.spec(&team.template).expect("group");
        assert_eq!((spec.concurrency(), spec.max_queued), (4, 5));
        let user = c.select(&facts("ann", "", "SELECT 1")).expect("selected");
        let spec = c.spec(&user.template).expect("group");
        assert_eq!((spec.concurrency(), spec.max_queued), (2, 1));
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let err = |text: &str| {
            ResourceGroupsConfig::parse(Path::new("rg.json"), text)
                .expect_err("invalid")
                .to_string()
        };
        assert!(
            err(r#"{"rootGroups": [{"name": "g", "maxQueued": 1}], "selectors": []}"#)
                .contains("group 'g': hardConcurrencyLimit is required")
        );
        assert!(err(r#"{"rootGroups": [{"name": "g", "maxQueued": 1, "hardConcurrencyLimit": 1, "maxQueud": 2}], "selectors": []}"#)
            .contains("unknown field `maxQueud`"));
        assert!(err(r#"{"rootGroups": [{"name": "g", "maxQueued": 1, "hardConcurrencyLimit": 1}], "selectors": [{"group": "nope"}]}"#)
            .contains("selector 1: group 'nope' is not a leaf group"));
        assert!(err(r#"{"rootGroups": [{"name": "g", "maxQueued": 1, "hardConcurrencyLimit": 1, "subGroups": [{"name": "t_${tem}", "maxQueued": 1, "hardConcurrencyLimit": 1}]}], "selectors": [{"user": "(?<team>.*)", "group": "g.t_${tem}"}]}"#)
            .contains("uses ${tem}"));
        assert!(err(r#"{"rootGroups": [{"name": "g", "maxQueued": 1, "hardConcurrencyLimit": 1}], "selectors": [{"user": "(", "group": "g"}]}"#)
            .contains("selector 1: user '(' is not a regular expression"));
    }

    #[test]
    fn query_types_follow_trino() {
        assert_eq!(
            query_type("  -- c\n with x as (select 1) select * from x"),
            "SELECT"
        );
        assert_eq!(query_type("INSERT INTO t SELECT 1"), "INSERT");
        assert_eq!(query_type("show tables"), "DESCRIBE");
        assert_eq!(query_type("CREATE TABLE t AS SELECT 1"), "INSERT");
        assert_eq!(query_type("CREATE TABLE t (a int)"), "DATA_DEFINITION");
        assert_eq!(query_type("CREATE VIEW v AS SELECT 1"), "DATA_DEFINITION");
        assert_eq!(query_type("SET SESSION a = 'b'"), "DATA_DEFINITION");
    }
}
