//! A DataFusion function without the alias that is also the name of one of Trino's
//! functions (`to_char`, also called `date_format`, with other specifiers than Trino's).
//!
//! Registering Trino's function under that name is not enough: whenever DataFusion builds a
//! session state from another (as Ballista and Tributary do for each query), it registers
//! every function again, aliases included, in the order of a hash map, and its configurable
//! functions (`to_char` takes the session's time zone) come back new. So DataFusion's
//! `date_format` won over Trino's in some sessions and not others. Without the alias it
//! cannot; the function keeps its own name, which is also how it travels to executors.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};

/// `inner` answering to its own name only.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct WithoutAliases(pub(super) Arc<ScalarUDF>);

impl ScalarUDFImpl for WithoutAliases {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn aliases(&self) -> &[String] {
        &[]
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.0.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Self(Arc::new(updated))))
    }

    // Everything else is the function's own.

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.0.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.0.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.0.inner().return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.0.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.0.inner().invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.0.inner().simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.0.inner().short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.0.inner().evaluate_bounds(input)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.0.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.0.inner().preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.0.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.0.inner().documentation()
    }
}
