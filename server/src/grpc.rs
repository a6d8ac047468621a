//! The `ingot.v1.Ingest` gRPC service: `Write` and `WriteStream` with
//! columnar rows, Arrow IPC streams or line protocol.

use futures::StreamExt;
use ingot_engine::{DEFAULT_DATABASE, Precision, WriteSummary};
use ingot_proto::v1::ingest_server::Ingest;
use ingot_proto::v1::{self, WriteRequest, WriteResponse, write_request::Payload};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::AppState;
use crate::convert::{ipc_to_batch, rows_to_batch};
use crate::error::{ApiError, Result};

/// The Ingest service over one engine.
#[derive(Debug, Clone)]
pub struct IngestService {
    state: AppState,
}

impl IngestService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Applies one write request atomically.
    async fn write_one(&self, request: WriteRequest) -> Result<WriteSummary> {
        let bytes = request.encoded_len() as u64;
        let protocol = match &request.payload {
            Some(Payload::Rows(_)) => "grpc_rows",
            Some(Payload::ArrowIpc(_)) => "grpc_arrow",
            Some(Payload::LineProtocol(_)) => "grpc_lp",
            None => "grpc",
        };
        let result = self.apply(request).await;
        self.state.metrics.write(protocol, &result, bytes);
        result
    }

    async fn apply(&self, request: WriteRequest) -> Result<WriteSummary> {
        let database = if request.database.is_empty() {
            DEFAULT_DATABASE.to_string()
        } else {
            request.database
        };
        let table = request.table;
        let engine = self.state.engine.clone();
        match request.payload {
            None => Err(ApiError::invalid(
                "the request has no payload: set rows, arrow_ipc or line_protocol",
            )),
            Some(Payload::Rows(rows)) => {
                require_table(&table)?;
                blocking(move || {
                    let batch = rows_to_batch(&rows).map_err(|e| ApiError::invalid(e.0))?;
                    Ok::<_, ApiError>(engine.write_batch(&database, &table, &batch)?)
                })
                .await
            }
            Some(Payload::ArrowIpc(bytes)) => {
                require_table(&table)?;
                blocking(move || {
                    let Some(batch) = ipc_to_batch(&bytes).map_err(|e| ApiError::invalid(e.0))?
                    else {
                        return Ok::<_, ApiError>(WriteSummary::default());
                    };
                    Ok(engine.write_batch(&database, &table, &batch)?)
                })
                .await
            }
            Some(Payload::LineProtocol(text)) => {
                let precision = precision(request.precision)?;
                blocking(move || engine.write_lines(&database, &text, precision)).await
            }
        }
    }
}

fn require_table(table: &str) -> Result<()> {
    if table.is_empty() {
        return Err(ApiError::invalid(
            "table is empty: rows and arrow_ipc writes name their table",
        ));
    }
    Ok(())
}

fn precision(value: i32) -> Result<Precision> {
    match v1::Precision::try_from(value) {
        Ok(v1::Precision::Nanosecond) => Ok(Precision::Nanosecond),
        Ok(v1::Precision::Microsecond) => Ok(Precision::Microsecond),
        Ok(v1::Precision::Millisecond) => Ok(Precision::Millisecond),
        Ok(v1::Precision::Second) => Ok(Precision::Second),
        Err(_) => Err(ApiError::invalid(format!("unknown precision {value}"))),
    }
}

/// Runs a synchronous engine call on the blocking pool.
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("write task failed: {e}")))?
        .map_err(Into::into)
}

fn response(summary: WriteSummary) -> Response<WriteResponse> {
    Response::new(WriteResponse {
        rows: summary.rows,
        points: summary.points,
    })
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let summary = self.write_one(request.into_inner()).await?;
        Ok(response(summary))
    }

    async fn write_stream(
        &self,
        request: Request<Streaming<WriteRequest>>,
    ) -> Result<Response<WriteResponse>, Status> {
        let mut stream = request.into_inner();
        let mut total = WriteSummary::default();
        let mut index = 0usize;
        while let Some(message) = stream.next().await {
            let message = message?;
            let summary = self.write_one(message).await.map_err(|e| {
                Status::from(e.context(format!(
                    "message {index} of the stream (counting from 0; the {index} before it were written)"
                )))
            })?;
            total.rows += summary.rows;
            total.points += summary.points;
            index += 1;
        }
        Ok(response(total))
    }
}
