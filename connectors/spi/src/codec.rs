//! [`ConnectorCodec`]: serialises connector scans inside physical plans, and delegates every
//! other node to the codec it wraps (Ballista's, which alone knows the shuffle nodes).

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::PartitionedFile;
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::source::DataSourceExec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use tributary_proto::{ConnectorScanNode, Projection, Split, SplitGroup};

use crate::error::ConnectorError;
use crate::estimate::{EstimateExec, SizeEstimate};
use crate::registry::Catalogs;
use crate::source::ConnectorSource;
use crate::split::build_scan;
use crate::write::WriterExec;

/// First bytes of a connector scan envelope. Field number 0 is invalid in protobuf, so no
/// message of the wrapped codec can start with them.
const ENVELOPE: &[u8] = b"\0TRIB1";

/// First bytes of an [`EstimateExec`], followed by its estimate (`t`iny or `h`uge) and its
/// reason. Executors run it as its input; it is kept so that their plans have the same
/// nodes as the scheduler's (metrics are matched to nodes by position).
const ESTIMATE: &[u8] = b"\0TRIBE";

/// First bytes of a [`WriterExec`], followed by the catalog's name (length-prefixed) and its
/// connector's encoding of the write.
const WRITER: &[u8] = b"\0TRIBW";

/// The largest task the scheduler sends and an executor accepts: its plan with any in-memory
/// rows it carries (tables of the `memory` catalog travel inside the plan). Ballista's and
/// tonic's default, 16 MiB, made every launch of a task carrying more fail, which Ballista
/// takes for a lost executor: the query hung until no executor was left.
pub const MAX_TASK_BYTES: usize = 1 << 30;

/// A `PhysicalExtensionCodec` for connector scans, chained in front of another codec.
/// The same type must be used on the scheduler and on every executor.
#[derive(Debug)]
pub struct ConnectorCodec {
    catalogs: Catalogs,
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl ConnectorCodec {
    /// Encodes scans of `catalogs` and hands everything else to `inner`.
    pub fn new(catalogs: Catalogs, inner: Arc<dyn PhysicalExtensionCodec>) -> Self {
        Self { catalogs, inner }
    }

    fn encode_scan(&self, exec: &DataSourceExec, buf: &mut Vec<u8>) -> DfResult<bool> {
        let Some((config, source)) = exec.downcast_to_file_source::<ConnectorSource>() else {
            return Ok(false);
        };
        let projected = source.projected_columns();
        let node = ConnectorScanNode {
            catalog: source.catalog().to_owned(),
            table: source.reader().encode_table()?,
            schema: encode_schema(&source.reader().table_schema())?,
            projection: projected.as_ref().map(|cols| Projection {
                columns: cols.iter().map(|(i, _)| *i as u32).collect(),
            }),
            limit: config.limit.map(|l| l as u64),
            groups: config
                .file_groups
                .iter()
                .map(|g| SplitGroup {
                    splits: g
                        .iter()
                        .map(|f| Split {
                            name: f.object_meta.location.to_string(),
                            size: f.object_meta.size,
                        })
                        .collect(),
                })
                .collect(),
            output_names: projected
                .map(|cols| cols.into_iter().map(|(_, n)| n).collect())
                .unwrap_or_default(),
        };
        buf.extend_from_slice(ENVELOPE);
        node.encode(buf)
            .map_err(|e| DataFusionError::Internal(format!("cannot encode connector scan: {e}")))?;
        Ok(true)
    }

    fn decode_scan(&self, bytes: &[u8]) -> DfResult<Arc<dyn ExecutionPlan>> {
        let node = ConnectorScanNode::decode(bytes).map_err(|e| ConnectorError::Decode {
            what: "connector scan",
            reason: e.to_string(),
        })?;
        let connector = self.catalogs.get(&node.catalog)?;
        let reader = connector.decode_reader(&node.table)?;
        let source = Arc::new(ConnectorSource::new(node.catalog.clone(), reader));
        let groups = node
            .groups
            .into_iter()
            .map(|g| {
                FileGroup::new(
                    g.splits
                        .into_iter()
                        .map(|s| PartitionedFile::new(s.name, s.size))
                        .collect(),
                )
            })
            .collect();
        let projection = node
            .projection
            .map(|p| p.columns.into_iter().map(|c| c as usize).collect());
        let plan = build_scan(
            source,
            groups,
            projection,
            node.limit.map(|l| l as usize),
            None,
        )?;
        if node.output_names.is_empty() {
            return Ok(plan);
        }
        // Restore the planner's output names (aliases) where they differ from the table's.
        let renamed = plan
            .schema()
            .fields()
            .iter()
            .zip(&node.output_names)
            .any(|(f, n)| f.name() != n);
        if renamed {
            return Err(DataFusionError::Internal(format!(
                "connector scan of catalog '{}' was planned with renamed columns, which connector scans do not support",
                node.catalog
            )));
        }
        Ok(plan)
    }
}

impl ConnectorCodec {
    fn decode_writer(
        &self,
        bytes: &[u8],
        input: Arc<dyn ExecutionPlan>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let bad = || ConnectorError::Decode {
            what: "writer",
            reason: "truncated".into(),
        };
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad().into());
        }
        let (catalog, write) = rest.split_at(len);
        let catalog = String::from_utf8_lossy(catalog).into_owned();
        let write = self.catalogs.get(&catalog)?.decode_write(write)?;
        Ok(Arc::new(WriterExec::new(input, catalog, write)))
    }
}

/// Encodes a schema as DataFusion's protobuf `Schema` (for connectors' table descriptions).
pub fn encode_schema(schema: &Schema) -> DfResult<Vec<u8>> {
    let proto: datafusion_proto::protobuf::Schema = schema.try_into()?;
    Ok(proto.encode_to_vec())
}

/// Decodes a schema written by [`encode_schema`].
pub fn decode_schema(bytes: &[u8]) -> Result<Schema, ConnectorError> {
    let proto =
        datafusion_proto::protobuf::Schema::decode(bytes).map_err(|e| ConnectorError::Decode {
            what: "schema",
            reason: e.to_string(),
        })?;
    Schema::try_from(&proto).map_err(|e| ConnectorError::Decode {
        what: "schema",
        reason: e.to_string(),
    })
}

/// A connector's description of a table, split or written part as JSON, for the plans and
/// reports sent between scheduler and executors; `what` names it if it cannot be written.
pub fn encode_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, ConnectorError> {
    serde_json::to_vec(value).map_err(|e| ConnectorError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// JSON written by [`encode_json`] read back; `what` names it if it cannot be.
pub fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| ConnectorError::Decode {
        what,
        reason: e.to_string(),
    })
}

impl PhysicalExtensionCodec for ConnectorCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(rest) = buf.strip_prefix(ESTIMATE) {
            let [input] = inputs else {
                return Err(DataFusionError::Internal(
                    "an estimate node needs one input".into(),
                ));
            };
            let (estimate, reason) = match rest.split_first() {
                Some((b't', reason)) => (SizeEstimate::Tiny, reason),
                Some((b'h', reason)) => (SizeEstimate::Huge, reason),
                _ => {
                    return Err(DataFusionError::Internal(
                        "an estimate node has no estimate".into(),
                    ));
                }
            };
            return Ok(Arc::new(EstimateExec::new(
                Arc::clone(input),
                estimate,
                String::from_utf8_lossy(reason).into_owned(),
            )));
        }
        if let Some(rest) = buf.strip_prefix(WRITER) {
            let [input] = inputs else {
                return Err(DataFusionError::Internal(
                    "a writer node needs one input".into(),
                ));
            };
            return self.decode_writer(rest, Arc::clone(input));
        }
        match buf.strip_prefix(ENVELOPE) {
            Some(scan) => self.decode_scan(scan),
            None => self.inner.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && self.encode_scan(exec, buf)?
        {
            return Ok(());
        }
        if let Some(writer) = node.downcast_ref::<WriterExec>() {
            let catalog = writer.catalog().as_bytes();
            buf.extend_from_slice(WRITER);
            buf.extend_from_slice(
                &u32::try_from(catalog.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            buf.extend_from_slice(catalog);
            buf.extend_from_slice(&writer.write().encode()?);
            return Ok(());
        }
        if let Some(estimate) = node.downcast_ref::<EstimateExec>() {
            buf.extend_from_slice(ESTIMATE);
            buf.push(match estimate.estimate() {
                SizeEstimate::Tiny => b't',
                SizeEstimate::Huge => b'h',
            });
            buf.extend_from_slice(estimate.reason().as_bytes());
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }

    /// Our own functions that run on executors (Trino's JSON functions) travel by name.
    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        match crate::json_functions::json_function(name) {
            Some(function) => Ok(function),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}
