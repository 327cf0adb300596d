//! Join hints written in comments, as Spark and Hive users write them (Trino ignores them):
//! `SELECT /*+ BROADCAST(b) */ …`, with the synonyms `BROADCASTJOIN` and `MAPJOIN`, and
//! `SHUFFLE_HASH(t)`, `PARTITIONED(t)`, `MERGE(t)` for a partitioned join. A hint names the
//! tables or aliases it applies to. Hints that are not join hints, or cannot be read, become
//! warnings; they never fail a statement.

/// How a hinted join is to be distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// The named table is the build side, sent whole to every task of the join.
    Broadcast,
    /// Both sides are shuffled on the join keys.
    Partitioned,
}

/// One hint: `BROADCAST(a, b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinHint {
    /// The hint as written, upper-cased (`MAPJOIN`).
    pub name: String,
    /// What it asks for.
    pub distribution: Distribution,
    /// The tables or aliases named, lower-cased unless quoted.
    pub tables: Vec<String>,
}

impl std::fmt::Display for JoinHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.tables.join(", "))
    }
}

/// The join hints of a statement, and what could not be used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// In the order written.
    pub joins: Vec<JoinHint>,
    /// One line per hint that is ignored, saying why.
    pub warnings: Vec<String>,
}

/// The hints in the `/*+ … */` comments of `sql` (outside quotes).
pub fn parse(sql: &str) -> Hints {
    let mut hints = Hints::default();
    for text in super::lexer::hint_comments(sql) {
        read_comment(&text, &mut hints);
    }
    hints
}

fn distribution(name: &str) -> Option<Distribution> {
    match name {
        "BROADCAST" | "BROADCASTJOIN" | "MAPJOIN" => Some(Distribution::Broadcast),
        "SHUFFLE_HASH" | "PARTITIONED" | "MERGE" | "MERGEJOIN" | "SHUFFLE_MERGE" => {
            Some(Distribution::Partitioned)
        }
        _ => None,
    }
}

/// `BROADCAST(a, b) SHUFFLE_HASH(c)` → hints; anything else → warnings.
fn read_comment(text: &str, hints: &mut Hints) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
            continue;
        }
        if !(c.is_alphanumeric() || c == '_') {
            hints.warnings.push(format!(
                "hint comment '{}' not understood at '{}'",
                text.trim(),
                chars[i..].iter().collect::<String>().trim()
            ));
            return;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect::<String>().to_uppercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut tables = Vec::new();
        if chars.get(i) == Some(&'(') {
            let close = chars[i..].iter().position(|&c| c == ')').map(|p| p + i);
            let Some(close) = close else {
                hints
                    .warnings
                    .push(format!("hint {name}: missing ')' in '{}'", text.trim()));
                return;
            };
            let inner: String = chars[i + 1..close].iter().collect();
            tables = inner
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(identifier)
                .collect();
            i = close + 1;
        }
        match distribution(&name) {
            Some(_) if tables.is_empty() => hints
                .warnings
                .push(format!("hint {name} names no table and is ignored")),
            Some(distribution) => hints.joins.push(JoinHint {
                name,
                distribution,
                tables,
            }),
            None => hints.warnings.push(format!(
                "hint {name} is not a join hint Tributary knows and is ignored \
                 (known: BROADCAST, BROADCASTJOIN, MAPJOIN, SHUFFLE_HASH, PARTITIONED, MERGE)"
            )),
        }
    }
}

/// `"Quoted"` keeps its case, `plain` is lower-cased (as SQL names are); a qualified name
/// `s.t` names the table `t`.
fn identifier(text: &str) -> String {
    let last = text.rsplit('.').next().unwrap_or(text).trim();
    match last.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.to_owned(),
        None => last.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_join_hints() {
        let hints = parse(
            "SELECT /*+ BROADCAST(small_table) */ a.*, b.info FROM large_table a \
             JOIN small_table b ON a.key = b.key",
        );
        assert_eq!(
            hints.joins,
            vec![JoinHint {
                name: "BROADCAST".into(),
                distribution: Distribution::Broadcast,
                tables: vec!["small_table".into()],
            }]
        );
        assert!(hints.warnings.is_empty());

        let hints = parse("select /*+ mapjoin(B, \"Cc\"), shuffle_hash(s.d) */ 1 /*+ MERGE(e) */");
        let names: Vec<String> = hints.joins.iter().map(|h| h.to_string()).collect();
        assert_eq!(names, ["MAPJOIN(b, Cc)", "SHUFFLE_HASH(d)", "MERGE(e)"]);
        assert_eq!(hints.joins[2].distribution, Distribution::Partitioned);
    }

    #[test]
    fn other_comments_and_strings_are_not_hints() {
        let hints = parse("SELECT '/*+ BROADCAST(x) */' /* BROADCAST(y) */ -- +BROADCAST(z)\n");
        assert_eq!(hints, Hints::default());
    }

    #[test]
    fn unknown_hints_are_warnings() {
        let hints = parse("SELECT /*+ REPARTITION(4) BROADCAST BROADCAST(a */ 1");
        assert!(hints.joins.is_empty());
        assert_eq!(hints.warnings.len(), 3, "{:?}", hints.warnings);
        assert!(hints.warnings[0].contains("REPARTITION is not a join hint"));
        assert!(hints.warnings[1].contains("names no table"));
        assert!(hints.warnings[2].contains("missing ')'"));
    }
}
