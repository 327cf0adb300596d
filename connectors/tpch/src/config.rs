//! Typed configuration of a `connector.name=tpch` catalog.

use tributary_connector::{Properties, Result};

/// How columns are named (Trino's `tpch.column-naming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnNaming {
    /// `orderkey` (Trino's default).
    Simplified,
    /// `o_orderkey`, as in the TPC-H specification and DuckDB.
    Standard,
}

/// Configuration of a TPC-H catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct TpchConfig {
    /// Column naming.
    pub column_naming: ColumnNaming,
    /// Most splits (output partitions) one table is cut into.
    pub splits_per_table: usize,
    /// Fewest rows a split should have: small tables are not cut into tiny splits.
    pub min_rows_per_split: usize,
}

impl Default for TpchConfig {
    fn default() -> Self {
        Self {
            column_naming: ColumnNaming::Simplified,
            splits_per_table: 8,
            min_rows_per_split: 1000,
        }
    }
}

impl TpchConfig {
    /// Reads the configuration; unknown keys are errors.
    pub fn from_properties(props: &Properties) -> Result<Self> {
        let mut r = props.reader("tpch");
        let mut config = Self::default();
        if let Some(naming) =
            r.optional_choice("tpch.column-naming", &["SIMPLIFIED", "STANDARD"])?
        {
            config.column_naming = if naming == "STANDARD" {
                ColumnNaming::Standard
            } else {
                ColumnNaming::Simplified
            };
        }
        // Trino's name for the same knob; accepted so Trino catalog files work unchanged.
        if let Some(n) = r.optional::<usize>("tpch.splits-per-node", "a positive integer")? {
            config.splits_per_table = n;
        }
        if let Some(n) = r.optional::<usize>("tpch.splits-per-table", "a positive integer")? {
            config.splits_per_table = n;
        }
        if let Some(n) = r.optional::<usize>("tpch.min-rows-per-split", "a positive integer")? {
            config.min_rows_per_split = n;
        }
        r.finish()?;
        config.splits_per_table = config.splits_per_table.max(1);
        config.min_rows_per_split = config.min_rows_per_split.max(1);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_validates() {
        let p = Properties::from_pairs(
            "tpch.properties",
            [
                ("connector.name", "tpch"),
                ("tpch.column-naming", "standard"),
            ],
        );
        let c = TpchConfig::from_properties(&p).expect("valid");
        assert_eq!(c.column_naming, ColumnNaming::Standard);
        let p = Properties::from_pairs(
            "tpch.properties",
            [("connector.name", "tpch"), ("tpch.column-naming", "WEIRD")],
        );
        let e = TpchConfig::from_properties(&p)
            .expect_err("invalid")
            .to_string();
        assert!(
            e.contains("tpch.column-naming") && e.contains("SIMPLIFIED, STANDARD"),
            "{e}"
        );
    }
}
