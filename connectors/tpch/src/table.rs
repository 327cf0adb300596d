//! The eight TPC-H tables: schemas, row counts and generators.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use crate::config::ColumnNaming;
use crate::error::TpchError;

/// A TPC-H table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpchTable {
    /// `nation`
    Nation,
    /// `region`
    Region,
    /// `part`
    Part,
    /// `supplier`
    Supplier,
    /// `partsupp`
    PartSupp,
    /// `customer`
    Customer,
    /// `orders`
    Orders,
    /// `lineitem`
    LineItem,
}

/// A batch iterator of one generated part of a table.
pub(crate) type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

impl TpchTable {
    /// All tables, in the order Trino lists them.
    pub const ALL: [TpchTable; 8] = [
        Self::Customer,
        Self::LineItem,
        Self::Nation,
        Self::Orders,
        Self::Part,
        Self::PartSupp,
        Self::Region,
        Self::Supplier,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nation => "nation",
            Self::Region => "region",
            Self::Part => "part",
            Self::Supplier => "supplier",
            Self::PartSupp => "partsupp",
            Self::Customer => "customer",
            Self::Orders => "orders",
            Self::LineItem => "lineitem",
        }
    }

    /// Looks a table up by SQL name.
    pub fn from_name(name: &str) -> Result<Self, TpchError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| TpchError::UnknownTable(name.to_owned()))
    }

    /// The schema as generated (standard names, view strings).
    fn generated_schema(self) -> SchemaRef {
        match self {
            Self::Nation => NationArrow::schema_ref(),
            Self::Region => RegionArrow::schema_ref(),
            Self::Part => PartArrow::schema_ref(),
            Self::Supplier => SupplierArrow::schema_ref(),
            Self::PartSupp => PartSuppArrow::schema_ref(),
            Self::Customer => CustomerArrow::schema_ref(),
            Self::Orders => OrderArrow::schema_ref(),
            Self::LineItem => LineItemArrow::schema_ref(),
        }
    }

    /// The schema Tributary exposes: `varchar` columns as Utf8 (what every Flight SQL client
    /// reads, and what Ballista's shuffle handles best), names per `naming`.
    pub fn schema(self, naming: ColumnNaming) -> SchemaRef {
        let fields = self
            .generated_schema()
            .fields()
            .iter()
            .map(|f| {
                let data_type = match f.data_type() {
                    DataType::Utf8View => DataType::Utf8,
                    other => other.clone(),
                };
                let name = match naming {
                    ColumnNaming::Standard => f.name().clone(),
                    ColumnNaming::Simplified => simplified(f.name()).to_owned(),
                };
                Field::new(name, data_type, f.is_nullable())
            })
            .collect::<Vec<_>>();
        Arc::new(Schema::new(fields))
    }

    /// Whether the generator can cut the table into parts (nation and region cannot).
    pub fn splittable(self) -> bool {
        !matches!(self, Self::Nation | Self::Region)
    }

    /// Exact row count at a scale factor, where the generator knows it in advance.
    pub fn row_count(self, scale_factor: f64) -> Option<u64> {
        let n = match self {
            Self::Nation => 25,
            Self::Region => 5,
            Self::Part => PartGenerator::calculate_row_count(scale_factor, 1, 1),
            Self::Supplier => SupplierGenerator::calculate_row_count(scale_factor, 1, 1),
            Self::PartSupp => PartSuppGenerator::calculate_row_count(scale_factor, 1, 1),
            Self::Customer => CustomerGenerator::calculate_row_count(scale_factor, 1, 1),
            Self::Orders => OrderGenerator::calculate_row_count(scale_factor, 1, 1),
            Self::LineItem => return None,
        };
        u64::try_from(n).ok()
    }

    /// Rows the planner should expect (exact where known; lineitem averages 4 per order).
    pub fn estimated_rows(self, scale_factor: f64) -> u64 {
        self.row_count(scale_factor)
            .unwrap_or_else(|| Self::Orders.row_count(scale_factor).unwrap_or(0) * 4)
    }

    /// Generates part `part` (1-based) of `parts`.
    pub(crate) fn generate(
        self,
        scale_factor: f64,
        part: i32,
        parts: i32,
        batch_size: usize,
    ) -> Batches {
        match self {
            Self::Nation => Box::new(
                NationArrow::new(NationGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::Region => Box::new(
                RegionArrow::new(RegionGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::Part => Box::new(
                PartArrow::new(PartGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::Supplier => Box::new(
                SupplierArrow::new(SupplierGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::PartSupp => Box::new(
                PartSuppArrow::new(PartSuppGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::Customer => Box::new(
                CustomerArrow::new(CustomerGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::Orders => Box::new(
                OrderArrow::new(OrderGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
            Self::LineItem => Box::new(
                LineItemArrow::new(LineItemGenerator::new(scale_factor, part, parts))
                    .with_batch_size(batch_size),
            ),
        }
    }
}

/// `l_orderkey` → `orderkey`, `ps_partkey` → `partkey`.
fn simplified(name: &str) -> &str {
    name.split_once('_').map(|(_, rest)| rest).unwrap_or(name)
}
