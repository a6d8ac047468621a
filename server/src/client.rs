//! A client of an Ingot server: queries over Flight SQL and writes over the
//! Ingest service, with the token and optional TLS. Used by `ingot sql`,
//! `ingot import` and the tests.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::{StreamExt, TryStreamExt};
use ingot_proto::v1::ingest_client::IngestClient;
use ingot_proto::v1::{WriteRequest, WriteResponse};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{0}")]
    Flight(#[from] arrow_flight::error::FlightError),
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Adds `authorization: Bearer <token>` to every Ingest call.
#[derive(Debug, Clone)]
pub struct TokenInterceptor(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection to one server.
#[derive(Debug, Clone)]
pub struct Client {
    flight: FlightSqlServiceClient<Channel>,
    ingest: IngestClient<InterceptedService<Channel, TokenInterceptor>>,
}

impl Client {
    /// Connects to `addr` (`http://host:port`, or `https://` with `ca_pem`,
    /// the PEM certificate the server's certificate is checked against).
    pub async fn connect(
        addr: &str,
        token: Option<&str>,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let mut endpoint =
            Channel::from_shared(addr.to_string()).map_err(|e| connect_err(e.to_string()))?;
        if let Some(ca) = ca_pem {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
                .map_err(|e| connect_err(e.to_string()))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_err(format!("{e:?}")))?;
        let mut flight = FlightSqlServiceClient::new(channel.clone());
        let header = match token {
            Some(t) => {
                flight.set_token(t.to_string());
                Some(
                    MetadataValue::try_from(format!("Bearer {t}"))
                        .map_err(|e| connect_err(format!("bad token: {e}")))?,
                )
            }
            None => None,
        };
        let ingest = IngestClient::with_interceptor(channel, TokenInterceptor(header))
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(64 << 20);
        Ok(Self { flight, ingest })
    }

    /// Sets a header sent with every Flight SQL call (for example `database`).
    pub fn set_flight_header(&mut self, key: &str, value: &str) {
        self.flight.set_header(key, value);
    }

    /// The Flight SQL client, for calls this wrapper does not cover.
    pub fn flight(&mut self) -> &mut FlightSqlServiceClient<Channel> {
        &mut self.flight
    }

    /// Runs a query and collects its batches from every endpoint.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
        let info = self.flight.execute(sql.to_string(), None).await?;
        let schema = std::sync::Arc::new(info.clone().try_decode_schema()?);
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.flight.do_get(ticket).await?;
            let part: Vec<RecordBatch> = stream.try_collect().await?;
            batches.extend(part);
        }
        Ok((schema, batches))
    }

    /// Runs a query and streams its batches, endpoint after endpoint, as
    /// they arrive.
    pub async fn query_stream(
        &mut self,
        sql: &str,
    ) -> Result<
        (
            SchemaRef,
            impl futures::Stream<Item = Result<RecordBatch, ClientError>> + Send + 'static,
        ),
        ClientError,
    > {
        let info = self.flight.execute(sql.to_string(), None).await?;
        let schema = std::sync::Arc::new(info.clone().try_decode_schema()?);
        let tickets: Vec<_> = info.endpoint.into_iter().filter_map(|e| e.ticket).collect();
        let flight = self.flight.clone();
        let stream = futures::stream::iter(tickets)
            .then(move |ticket| {
                let mut flight = flight.clone();
                async move { flight.do_get(ticket).await }
            })
            .map_err(ClientError::from)
            .and_then(|batches| async move { Ok(batches.map_err(ClientError::from)) })
            .try_flatten();
        Ok((schema, stream))
    }

    /// Runs a statement that changes the server (`CREATE DATABASE`, `ALTER
    /// DATABASE`) through Flight SQL's `ExecuteUpdate`; returns the rows it
    /// affected.
    pub async fn execute_update(&mut self, sql: &str) -> Result<i64, ClientError> {
        Ok(self.flight.execute_update(sql.to_string(), None).await?)
    }

    /// Sends one write request.
    pub async fn write(&mut self, request: WriteRequest) -> Result<WriteResponse, ClientError> {
        Ok(self.ingest.write(request).await?.into_inner())
    }

    /// The Ingest client, for streams.
    pub fn ingest(&mut self) -> &mut IngestClient<InterceptedService<Channel, TokenInterceptor>> {
        &mut self.ingest
    }
}

/// Encodes batches as one Arrow IPC stream (the `arrow_ipc` payload).
pub fn ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    if let Some(first) = batches.first() {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema())?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    Ok(out)
}
