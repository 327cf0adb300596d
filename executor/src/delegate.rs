//! Operators that stand in for the operator they wrap: our executors wrap some of a stage
//! plan's operators (`compact.rs`, `broadcast/join.rs`) and the wrapper must keep the plan's
//! shape for the scheduler's metrics (aligned by position) and for Ballista's and DataFusion's
//! plan inspection (downcasts follow `downcast_delegate`). [`delegate_plan_to`] writes the
//! `ExecutionPlan` methods that only pass through to the wrapped operator; a wrapper writes
//! `execute`, `metrics` and `replace_children` itself.

/// The pass-through `ExecutionPlan` methods of a wrapper whose field `$inner` holds the
/// wrapped `Arc<dyn ExecutionPlan>`: name, downcasts, properties, children, expressions and
/// statistics are the wrapped operator's; `with_new_children` is `replace_children`
/// recomputing properties. Also `DisplayAs` when given the wrapper's type.
macro_rules! delegate_plan_to {
    ($inner:ident) => {
        fn name(&self) -> &str {
            self.$inner.name()
        }

        fn downcast_delegate(&self) -> Option<&dyn ::datafusion::physical_plan::ExecutionPlan> {
            Some(self.$inner.as_ref())
        }

        fn properties(&self) -> &::std::sync::Arc<::datafusion::physical_plan::PlanProperties> {
            self.$inner.properties()
        }

        fn children(
            &self,
        ) -> Vec<&::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>> {
            self.$inner.children()
        }

        fn apply_expressions(
            &self,
            f: &mut dyn FnMut(
                &::std::sync::Arc<dyn ::datafusion::physical_expr::PhysicalExpr>,
            ) -> ::datafusion::error::Result<
                ::datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> ::datafusion::error::Result<::datafusion::common::tree_node::TreeNodeRecursion> {
            self.$inner.apply_expressions(f)
        }

        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
        ) -> ::datafusion::error::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            self.replace_children(
                children,
                ::datafusion::physical_plan::ReplaceChildrenOptions::new(
                    ::datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }

        fn statistics_from_inputs(
            &self,
            input_stats: &[::std::sync::Arc<::datafusion::physical_plan::Statistics>],
            args: &::datafusion::physical_plan::statistics::StatisticsArgs,
        ) -> ::datafusion::error::Result<::std::sync::Arc<::datafusion::physical_plan::Statistics>>
        {
            self.$inner.statistics_from_inputs(input_stats, args)
        }
    };
    ($wrapper:ty, $inner:ident) => {
        impl ::datafusion::physical_plan::DisplayAs for $wrapper {
            fn fmt_as(
                &self,
                t: ::datafusion::physical_plan::DisplayFormatType,
                f: &mut ::std::fmt::Formatter,
            ) -> ::std::fmt::Result {
                self.$inner.fmt_as(t, f)
            }
        }
    };
}

pub(crate) use delegate_plan_to;
