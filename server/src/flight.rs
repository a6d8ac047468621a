//! Arrow Flight SQL on the gRPC port: statement queries (streamed batch by
//! batch), prepared statements with `$1` parameters, the catalog commands
//! and bulk ingestion through `CommandStatementIngest`.
//!
//! Statement and prepared-statement handles are self-contained (the query
//! text, its database and any bound parameters, serialized), so the server
//! keeps no per-client state.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TableDefinitionOptions, TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::common::ScalarValue;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use futures::{Stream, StreamExt, TryStreamExt};
use ingot_engine::{CATALOG_NAME, DEFAULT_DATABASE, KIND_METADATA_KEY, WriteSummary};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::AppState;
use crate::error::ApiError;
use crate::grpc::blocking;

type DoGetStream = <FlightSqlServer as FlightService>::DoGetStream;

/// Bytes of Arrow data a Flight SQL bulk ingest gathers into one write.
const INGEST_CHUNK_BYTES: usize = 16 << 20;

/// Metadata header naming the database a Flight SQL query runs in (default `public`).
pub const DATABASE_HEADER: &str = "database";

/// The Flight SQL service over one engine.
#[derive(Debug, Clone)]
pub struct FlightSqlServer {
    state: AppState,
}

impl FlightSqlServer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// What a statement or prepared-statement handle carries.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    database: String,
    sql: String,
    /// Bound parameters as an Arrow IPC stream of one row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<Vec<u8>>,
}

impl Handle {
    fn encode(&self) -> Result<Vec<u8>, Status> {
        serde_json::to_vec(self).map_err(|e| Status::internal(e.to_string()))
    }

    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|e| Status::invalid_argument(format!("not an Ingot statement handle: {e}")))
    }
}

fn database<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(DATABASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|d| !d.is_empty())
        .unwrap_or(DEFAULT_DATABASE)
        .to_string()
}

fn status(e: impl Into<ApiError>) -> Status {
    Status::from(e.into())
}

fn arrow_status(e: arrow::error::ArrowError) -> Status {
    Status::internal(e.to_string())
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(arrow_status)?;
    Ok(message.0)
}

/// The schema as clients receive it: the encoder sends dictionary columns
/// (tags) as their plain value type, and a FlightInfo must say the same.
fn wire_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => {
                f.as_ref().clone().with_data_type(value.as_ref().clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(&wire_schema(schema))
        .map_err(arrow_status)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// Streams record batches as Flight data.
fn batch_stream<S>(schema: SchemaRef, batches: S) -> Response<DoGetStream>
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
{
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(Arc::new(wire_schema(&schema)))
        .build(batches)
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn one_batch(batch: RecordBatch) -> Response<DoGetStream> {
    batch_stream(batch.schema(), futures::stream::once(async { Ok(batch) }))
}

/// What `GetSqlInfo` reports (an error only if arrow-flight rejects a value: a bug).
static SQL_INFO: LazyLock<Result<SqlInfoData, String>> = LazyLock::new(|| {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Ingot");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    builder.append(SqlInfo::FlightSqlServerReadOnly, false);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.append(SqlInfo::SqlDdlCatalog, false);
    builder.append(SqlInfo::SqlDdlSchema, false);
    builder.append(SqlInfo::SqlDdlTable, false);
    builder.build().map_err(|e| e.to_string())
});

fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO
        .as_ref()
        .map_err(|e| Status::internal(format!("building the Flight SQL info failed: {e}")))
}

impl FlightSqlServer {
    /// Plans a handle's query, with its bound parameters.
    async fn plan(&self, handle: &Handle) -> Result<DataFrame, Status> {
        let df = crate::sql::plan(
            &self.state.engine,
            &handle.database,
            &handle.sql,
            &self.state.limits,
        )
        .await
        .map_err(status)?;
        let Some(params) = &handle.params else {
            return Ok(df);
        };
        let values = decode_params(params)?;
        df.with_param_values(values).map_err(status)
    }

    /// Runs a handle's query and streams its batches.
    async fn run(&self, handle: &Handle) -> Result<Response<DoGetStream>, Status> {
        let mut timer = crate::metrics::QueryTimer::start(self.state.metrics.clone(), "flight");
        let result = async {
            let df = self.plan(handle).await?;
            df.execute_stream().await.map_err(status)
        }
        .await;
        let stream = match result {
            Ok(s) => s,
            Err(e) => {
                timer.ok = false;
                return Err(e);
            }
        };
        let schema = stream.schema();
        let batches = stream.map(move |b| {
            // Use the whole timer so that the closure owns it: it records the
            // query when the stream is dropped.
            let timer = &mut timer;
            timer.ok &= b.is_ok();
            b.map_err(|e| FlightError::Tonic(Box::new(status(e))))
        });
        Ok(batch_stream(schema, batches))
    }

    async fn ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<WriteSummary, ApiError> {
        let database = command
            .schema
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| database(&request));
        let table = command.table.clone();
        if table.is_empty() {
            return Err(ApiError::invalid("CommandStatementIngest names no table"));
        }
        if command.transaction_id.is_some() {
            return Err(ApiError::invalid(
                "Ingot has no transactions; ingest without one",
            ));
        }
        let exists = self.state.engine.tables(&database).contains(&table);
        check_table_options(command.table_definition_options, &database, &table, exists)?;
        let mut stream = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        // Batches are written in chunks of about INGEST_CHUNK_BYTES, each one
        // atomic, so that a bulk load of any size streams through.
        let mut total = WriteSummary::default();
        let mut chunk: Vec<RecordBatch> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut index = 0usize;
        let mut chunk_start = 0usize;
        loop {
            let next = stream.try_next().await.map_err(|e| {
                ApiError::invalid(format!(
                    "bad Arrow data in the ingest stream at batch {index}: {e}"
                ))
            })?;
            let schema_changed = match (&next, chunk.first()) {
                (Some(b), Some(first)) => b.schema() != first.schema(),
                _ => false,
            };
            if !chunk.is_empty()
                && (next.is_none() || schema_changed || chunk_bytes >= INGEST_CHUNK_BYTES)
            {
                let summary = self
                    .write_chunk(&database, &table, std::mem::take(&mut chunk))
                    .await
                    .map_err(|e| {
                        e.context(format!(
                            "ingest batches {chunk_start}..{index} (the {chunk_start} before were written)"
                        ))
                    })?;
                total.rows += summary.rows;
                total.points += summary.points;
                chunk_bytes = 0;
            }
            let Some(batch) = next else { break };
            if chunk.is_empty() {
                chunk_start = index;
            }
            index += 1;
            if batch.num_rows() > 0 {
                chunk_bytes += batch.get_array_memory_size();
                chunk.push(batch);
            }
        }
        Ok(total)
    }

    async fn write_chunk(
        &self,
        database: &str,
        table: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<WriteSummary, ApiError> {
        let Some(first) = batches.first() else {
            return Ok(WriteSummary::default());
        };
        let batch = crate::convert::concat(&first.schema(), &batches)
            .map_err(|e| ApiError::invalid(e.0))?;
        let engine = self.state.engine.clone();
        let (database, table) = (database.to_string(), table.to_string());
        blocking(move || engine.write_batch(&database, &table, &batch)).await
    }
}

/// The result schema of `GetPrimaryKeys`, as the Flight SQL spec fixes it.
fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// Applies ADBC's ingest modes: `create` fails on an existing table,
/// `append` on a missing one; `replace` is not supported (tables cannot be
/// dropped). Without options, a missing table is created and an existing one
/// appended to.
fn check_table_options(
    options: Option<TableDefinitionOptions>,
    database: &str,
    table: &str,
    exists: bool,
) -> Result<(), ApiError> {
    let Some(options) = options else {
        return Ok(());
    };
    let if_exists = TableExistsOption::try_from(options.if_exists).unwrap_or_default();
    let if_not_exist = TableNotExistOption::try_from(options.if_not_exist).unwrap_or_default();
    match (exists, if_exists, if_not_exist) {
        (true, TableExistsOption::Fail, _) => Err(ApiError::AlreadyExists(format!(
            "table {database}.{table} already exists; append to it instead (ADBC mode \"append\")"
        ))),
        (true, TableExistsOption::Replace, _) => Err(ApiError::invalid(format!(
            "table {database}.{table} exists and Ingot cannot replace a table; append to it instead"
        ))),
        (false, _, TableNotExistOption::Fail) => Err(ApiError::NotFound(format!(
            "table {database}.{table} does not exist; create it (ADBC mode \"create\")"
        ))),
        _ => Ok(()),
    }
}

fn encode_params(batch: &RecordBatch) -> Result<Vec<u8>, Status> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).map_err(arrow_status)?;
    writer.write(batch).map_err(arrow_status)?;
    writer.finish().map_err(arrow_status)?;
    drop(writer);
    Ok(out)
}

/// The first row of the bound parameter batch, as positional `$1, $2, ...` values.
fn decode_params(bytes: &[u8]) -> Result<Vec<ScalarValue>, Status> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        if batch.num_rows() == 0 {
            continue;
        }
        for column in batch.columns() {
            rows.push(ScalarValue::try_from_array(column, 0).map_err(status)?);
        }
        break;
    }
    Ok(rows)
}

/// The schema of `$1, $2, ...` in a plan, in parameter order.
fn parameter_schema(df: &DataFrame) -> Result<Schema, Status> {
    let types = df.logical_plan().get_parameter_types().map_err(status)?;
    let mut params: Vec<(usize, String, DataType)> = types
        .into_iter()
        .map(|(name, t)| {
            let index = name.trim_start_matches('$').parse().unwrap_or(usize::MAX);
            (index, name, t.unwrap_or(DataType::Null))
        })
        .collect();
    params.sort();
    Ok(Schema::new(
        params
            .into_iter()
            .map(|(_, name, t)| Field::new(name, t, true))
            .collect::<Vec<_>>(),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // The interceptor has already checked the credentials (Basic with the
        // token as password, or Bearer); answer with the bearer token to use.
        drop(request);
        let token = self.state.auth.token().unwrap_or_default().to_string();
        let payload = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let stream = futures::stream::once(async move { Ok(payload) });
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(stream));
        if !token.is_empty() {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|e| Status::internal(e.to_string()))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle {
            database: database(&request),
            sql: query.query,
            params: None,
        };
        let df = self.plan(&handle).await?;
        let schema = df.schema().as_arrow().clone();
        let ticket = TicketStatementQuery {
            statement_handle: handle.encode()?.into(),
        };
        flight_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = Handle::decode(&ticket.statement_handle)?;
        self.run(&handle).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let handle = Handle {
            database: database(&request),
            sql: query.query,
            params: None,
        };
        let df = self.plan(&handle).await?;
        let dataset = df.schema().as_arrow().clone();
        let params = parameter_schema(&df)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode()?.into(),
            dataset_schema: schema_bytes(&wire_schema(&dataset))?,
            parameter_schema: schema_bytes(&params)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let mut handle = Handle::decode(&query.prepared_statement_handle)?;
        let stream = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("bad parameter batch: {e}")))?;
        handle.params = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => Some(encode_params(&batch.slice(0, 1))?),
            None => None,
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode()?.into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let df = self.plan(&handle).await?;
        let schema = df.schema().as_arrow().clone();
        flight_info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        self.run(&handle).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        Ok(one_batch(builder.build().map_err(Status::from)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for database in self.databases() {
            builder.append(CATALOG_NAME, database);
        }
        Ok(one_batch(builder.build().map_err(Status::from)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        let ctx = self.state.engine.session();
        for database in self.databases() {
            for table in self.state.engine.tables(&database) {
                let reference =
                    TableReference::full(CATALOG_NAME, database.as_str(), table.as_str());
                let schema = match ctx.table_provider(reference).await {
                    Ok(provider) => provider.schema(),
                    Err(_) => Arc::new(Schema::empty()),
                };
                builder
                    .append(CATALOG_NAME, &database, &table, "TABLE", &schema)
                    .map_err(Status::from)?;
            }
        }
        Ok(one_batch(builder.build().map_err(Status::from)?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("TABLE");
        Ok(one_batch(builder.build().map_err(Status::from)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()?).schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(sql_info()?)
            .build()
            .map_err(Status::from)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        flight_info(
            &primary_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    /// A table's key is its series (the tags) and its time.
    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let database = query
            .db_schema
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let mut key_columns = Vec::new();
        let wrong_catalog = query.catalog.as_deref().is_some_and(|c| c != CATALOG_NAME);
        if !wrong_catalog && self.state.engine.tables(&database).contains(&query.table) {
            let reference =
                TableReference::full(CATALOG_NAME, database.as_str(), query.table.as_str());
            let provider = self
                .state
                .engine
                .session()
                .table_provider(reference)
                .await
                .map_err(status)?;
            key_columns = provider
                .schema()
                .fields()
                .iter()
                .filter(|f| {
                    matches!(
                        f.metadata().get(KIND_METADATA_KEY).map(String::as_str),
                        Some("tag" | "time")
                    )
                })
                .map(|f| f.name().clone())
                .collect();
        }
        let n = key_columns.len();
        let batch = RecordBatch::try_new(
            Arc::new(primary_keys_schema()),
            vec![
                Arc::new(StringArray::from(vec![CATALOG_NAME; n])),
                Arc::new(StringArray::from(vec![database.as_str(); n])),
                Arc::new(StringArray::from(vec![query.table.as_str(); n])),
                Arc::new(StringArray::from(key_columns)),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(Int32Array::from_iter_values(1..=n as i32)),
            ],
        )
        .map_err(arrow_status)?;
        Ok(one_batch(batch))
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let result = self.ingest(command, request).await;
        // (The Arrow data arrives already decoded: no request byte count.)
        self.state.metrics.write("flight_ingest", &result, 0);
        let summary = result?;
        Ok(i64::try_from(summary.rows).unwrap_or(i64::MAX))
    }

    /// `ExecuteUpdate`: `DELETE` (answering the rows it removed) and Ingot's
    /// own statements (`CREATE DATABASE`, `ALTER DATABASE ... SET
    /// retention_period`, `DROP TABLE`, `DROP DATABASE`, answering 0).
    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        crate::sql::check_query(&command.query, &self.state.limits).map_err(status)?;
        if crate::sql::run_statement(&self.state.engine, &database(&request), &command.query)
            .await
            .map_err(status)?
        {
            return Ok(0);
        }
        let handle = Handle {
            database: database(&request),
            sql: command.query,
            params: None,
        };
        let batches = self.plan(&handle).await?.collect().await.map_err(status)?;
        // DML answers one row with its count; anything else, the rows it made.
        let count = batches
            .first()
            .filter(|b| b.num_columns() == 1 && b.schema().field(0).name() == "count")
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .map(|c| c.value(0))
            });
        Ok(match count {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            None => batches.iter().map(|b| b.num_rows() as i64).sum(),
        })
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "Ingot does not implement {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl FlightSqlServer {
    /// The databases, with the default one always listed.
    fn databases(&self) -> Vec<String> {
        let mut databases = self.state.engine.databases();
        if !databases.iter().any(|d| d == DEFAULT_DATABASE) {
            databases.insert(0, DEFAULT_DATABASE.to_string());
        }
        databases
    }
}
