//! The PostgreSQL wire protocol (`ingot serve --pg-addr`): `psql`, psycopg,
//! Grafana's PostgreSQL data source, DBeaver and BI tools run the same SQL as
//! Flight SQL.
//!
//! The protocol, `pg_catalog` and the statements clients send on connect
//! (`SET`, `SHOW`, `BEGIN`, cursors) come from `datafusion-postgres`. Ingot
//! adds what makes it one of its front ends:
//! - each connection gets a session of its own, on the database it names
//!   (`public` when it names none or `postgres`); an unknown database is
//!   refused at startup with SQLSTATE 3D000;
//! - with a token configured, the password is the token (sent in cleartext:
//!   with the server's certificate configured, the PostgreSQL port takes TLS
//!   connections only);
//! - the same limits as Flight SQL, Ingot's own statements (`CREATE
//!   DATABASE`, `CREATE MATERIALIZED VIEW`, `DROP TABLE`...), and the same
//!   refusals: no DataFusion DDL (`CREATE EXTERNAL TABLE` would read the
//!   server's files) and no `COPY ... TO` on the server's disk;
//! - errors carry the SQLSTATE a PostgreSQL client expects (42P01 for an
//!   unknown table, 42601 for a syntax error, 28P01 for a wrong password...).

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement as SqlStatement};
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, METADATA_DATABASE, PgWireConnectionState,
    PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::{TlsAcceptor, process_socket};
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, SinkExt};
use ingot_engine::{DEFAULT_DATABASE, statement};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::AppState;
use crate::error::ApiError;

mod catalog;
mod rewrite;

/// The server version reported to clients: a PostgreSQL release clients
/// know (drivers and Grafana read it to pick their SQL), then Ingot's.
const SERVER_VERSION: &str = concat!("16.0 (Ingot ", env!("CARGO_PKG_VERSION"), ")");

/// `SERVER_VERSION`'s release as a number, as `server_version_num` gives it.
const SERVER_VERSION_NUM: &str = "160000";

/// How long a shutdown lets open connections finish their statements.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A statement as parsed for the extended protocol: its text, and its
/// DataFusion plan (`None` for Ingot's own statements and empty queries).
type PgStatement = (String, Option<(SqlStatement, LogicalPlan)>);

/// Accepts PostgreSQL connections until `stopped`, each served by handlers
/// of its own.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = async { let _ = stopped.wait_for(|stop| *stop).await; } => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = Arc::new(Connection::new(state.clone(), tls.is_some()));
                    let tls = tls.clone();
                    connections.spawn(async move {
                        if let Err(e) = process_socket(socket, tls, handlers).await {
                            debug!(%peer, error = %e, "PostgreSQL connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a PostgreSQL connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Idle clients would hold the shutdown forever: statements running now
    // get a grace period, then every connection is closed.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

/// One client connection's handlers. The session is made at startup, once
/// the client has named its database and given its password.
struct Connection {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
}

impl Connection {
    fn new(state: AppState, tls: bool) -> Self {
        let session = Arc::new(OnceLock::new());
        Self {
            startup: Arc::new(Startup {
                state: state.clone(),
                tls,
                session: session.clone(),
            }),
            queries: Arc::new(Queries {
                parser: Arc::new(Parser {
                    state: state.clone(),
                    session: session.clone(),
                }),
                state,
                session,
            }),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(SqlStates)
    }
}

/// A started connection: its database and its session.
struct Started {
    database: String,
    service: DfSessionService,
}

/// The connection's session, set once started up.
type Session = Arc<OnceLock<Started>>;

fn started(session: &Session) -> PgWireResult<&Started> {
    session
        .get()
        .ok_or_else(|| pg_error("08P01", "the connection has not finished its startup"))
}

/// Startup: TLS (when the server has a certificate), the password (when a
/// token is set) and the database.
struct Startup {
    state: AppState,
    tls: bool,
    session: Session,
}

impl Startup {
    /// Opens the session on the client's database and tells the client it
    /// may send queries.
    async fn open<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let named = client.metadata().get(METADATA_DATABASE).cloned();
        let database = database_of(&self.state.engine.databases(), named.as_deref());
        let ctx = crate::sql::session(&self.state.engine, &database).map_err(|e| {
            self.state.metrics.pg_connection("refused");
            let names = self.state.engine.databases().join(", ");
            pg_fatal(
                "3D000",
                format!("{e}; the databases are: {names} (the PostgreSQL database name picks one)"),
            )
        })?;
        catalog::register(&ctx, &self.state.engine, &database).map_err(|e| {
            pg_fatal(
                "XX000",
                format!("cannot set up the session's catalogs: {e}"),
            )
        })?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(Guard {
                database: database.clone(),
            }),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let service = DfSessionService::new_with_hooks(Arc::new(ctx), hooks);
        let _ = self.session.set(Started { database, service });
        self.state.metrics.pg_connection("ok");
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        finish_authentication(client, &parameters).await
    }
}

/// `SHOW name` for the settings that are Ingot's own (`datafusion-postgres`
/// answers the others, those a `SET` can change among them): one row, one
/// text column named after the setting, as PostgreSQL answers.
fn show(database: &str, statement: &SqlStatement) -> Option<PgWireResult<Response>> {
    use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, QueryResponse};
    let SqlStatement::ShowVariable { variable } = statement else {
        return None;
    };
    let [name] = variable.as_slice() else {
        return None;
    };
    let name = name.value.to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "server_version" | "server_version_num" | "search_path"
    ) {
        return None;
    }
    let value = catalog::setting(database, &name);
    let fields = Arc::new(vec![FieldInfo::new(
        name,
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut row = DataRowEncoder::new(fields.clone());
    if let Err(e) = row.encode_field(&value) {
        return Some(Err(e));
    }
    let row = row.take_row();
    let rows = futures::stream::once(async move { Ok(row) });
    Some(Ok(Response::Query(QueryResponse::new(
        fields,
        Box::pin(rows),
    ))))
}

/// The Ingot database a PostgreSQL database name picks: `public` for none,
/// and for `postgres` (what tools connect to by default) unless Ingot has a
/// database of that name.
fn database_of(databases: &[String], named: Option<&str>) -> String {
    match named {
        None | Some("") => DEFAULT_DATABASE.to_string(),
        Some("postgres") if !databases.iter().any(|d| d == "postgres") => {
            DEFAULT_DATABASE.to_string()
        }
        Some(name) => name.to_string(),
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.tls && !client.is_secure() {
                    self.state.metrics.pg_connection("refused");
                    return Err(pg_fatal(
                        "28000",
                        "this server takes PostgreSQL connections over TLS only: connect with \
                         sslmode=require (or verify-full with its certificate)",
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.state.auth.token().is_some() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.open(client).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                if let Err(e) = self.state.auth.check_password(&password.password) {
                    self.state.metrics.pg_connection("unauthenticated");
                    return Err(pg_fatal("28P01", e.to_string()));
                }
                self.open(client).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Simple and extended queries, through the connection's session.
struct Queries {
    state: AppState,
    session: Session,
    parser: Arc<Parser>,
}

impl Queries {
    /// Runs `sql` when it is one of Ingot's own statements.
    async fn ingot_statement(&self, sql: &str) -> PgWireResult<Option<Response>> {
        let Some(parsed) = statement::parse(sql).map_err(|e| from_api(e.into()))? else {
            return Ok(None);
        };
        let database = &started(&self.session)?.database;
        crate::sql::run_statement(&self.state.engine, database, sql)
            .await
            .map_err(from_api)?;
        Ok(Some(Response::Execution(Tag::new(statement_tag(&parsed)))))
    }
}

/// The command tag PostgreSQL answers a statement of this kind with.
fn statement_tag(parsed: &statement::Statement) -> &'static str {
    use statement::Statement as S;
    match parsed {
        S::CreateDatabase { .. } => "CREATE DATABASE",
        S::SetRetention { .. } => "ALTER DATABASE",
        S::DropTable { .. } => "DROP TABLE",
        S::DropDatabase { .. } => "DROP DATABASE",
        S::CreateRollup { .. } => "CREATE MATERIALIZED VIEW",
        S::DropRollup { .. } => "DROP MATERIALIZED VIEW",
    }
}

/// Runs a statement, counted in `ingot_queries_total{protocol="postgres"}`.
async fn counted<T>(
    state: &AppState,
    statement: impl Future<Output = PgWireResult<T>>,
) -> PgWireResult<T> {
    let started_at = Instant::now();
    let result = statement.await;
    state
        .metrics
        .query("postgres", result.is_ok(), started_at.elapsed());
    result
}

/// What a query must pass before it is parsed: the server's limits (a
/// query nested deep enough would overflow the parser's stack) and the
/// refusal of `COPY ... TO`.
fn check(state: &AppState, sql: &str) -> PgWireResult<()> {
    crate::sql::check_query(sql, &state.limits).map_err(|e| pg_error("54001", e.to_string()))?;
    if crate::sql::copy_to(sql).map_err(from_api)?.is_some() {
        return Err(pg_error(
            "0A000",
            "COPY ... TO would write the file where the server runs: run the query and write \
             the result yourself, or use /api/v3/query_sql, which streams the file back",
        ));
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        counted(&self.state, async {
            check(&self.state, query)?;
            if let Some(response) = self.ingot_statement(query).await? {
                return Ok(vec![response]);
            }
            let started = started(&self.session)?;
            let query = rewrite::client_sql(query, &started.database);
            SimpleQueryHandler::do_query(&started.service, client, &query).await
        })
        .await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        counted(&self.state, async {
            let (sql, plan) = &portal.statement.statement;
            if plan.is_none()
                && let Some(response) = self.ingot_statement(sql).await?
            {
                return Ok(response);
            }
            ExtendedQueryHandler::do_query(
                &started(&self.session)?.service,
                client,
                portal,
                max_rows,
            )
            .await
        })
        .await
    }
}

/// Parses extended-protocol statements: Ingot's own statements are kept
/// as text, everything else is planned by the session.
struct Parser {
    state: AppState,
    session: Session,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check(&self.state, sql)?;
        if statement::parse(sql)
            .map_err(|e| from_api(e.into()))?
            .is_some()
        {
            return Ok(Some((sql.to_string(), None)));
        }
        let started = started(&self.session)?;
        let sql = rewrite::client_sql(sql, &started.database);
        let parser = started.service.query_parser();
        parser.parse_sql(client, &sql, types).await
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        if statement.1.is_none() {
            return Ok(vec![]);
        }
        started(&self.session)?
            .service
            .query_parser()
            .get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        if statement.1.is_none() {
            return Ok(vec![]);
        }
        started(&self.session)?
            .service
            .query_parser()
            .get_result_schema(statement, format)
    }
}

/// The first hook every statement meets: it refuses what the server does
/// not run for a client, takes `DELETE` (answered with PostgreSQL's
/// `DELETE n`), answers `SHOW` for Ingot's own settings, and applies `SET
/// TIME ZONE` to the session.
#[derive(Debug)]
struct Guard {
    /// The session's Ingot database.
    database: String,
}

impl Guard {
    /// Why `statement` is refused, if it is.
    fn refusal(statement: &SqlStatement) -> Option<PgWireError> {
        use SqlStatement as S;
        match statement {
            S::Query(_)
            | S::Explain { .. }
            | S::Delete(_)
            | S::ShowVariable { .. }
            | S::ShowVariables { .. }
            | S::ShowStatus { .. }
            | S::ShowTables { .. }
            | S::ShowColumns { .. }
            | S::ShowCatalogs { .. }
            | S::ShowSchemas { .. }
            | S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Declare { .. }
            | S::Fetch { .. }
            | S::Close { .. }
            | S::Discard { .. }
            | S::Deallocate { .. } => None,
            S::Set(set) => {
                let variable = match set {
                    Set::SingleAssignment { variable, .. } => variable.to_string(),
                    _ => String::new(),
                };
                // A session setting of DataFusion's runtime would take the
                // connection out of the engine's memory pool.
                variable
                    .to_ascii_lowercase()
                    .starts_with("datafusion.runtime")
                    .then(|| {
                        pg_error(
                            "42501",
                            format!("SET {variable}: the server's runtime settings are its own"),
                        )
                    })
            }
            other => {
                let text = other.to_string();
                let kind: Vec<&str> = text.split_whitespace().take(2).collect();
                Some(pg_error(
                    "0A000",
                    format!(
                        "{} is not run over the PostgreSQL protocol: Ingot takes queries, \
                         EXPLAIN, DELETE, SET, SHOW and its own statements (CREATE DATABASE, \
                         CREATE MATERIALIZED VIEW, DROP TABLE...); tables are created by writes",
                        kind.join(" ").to_uppercase()
                    ),
                ))
            }
        }
    }
}

/// The zone a `SET TIME ZONE 'zone'` or `SET timezone = 'zone'` names.
fn time_zone_set(statement: &SqlStatement) -> Option<String> {
    let value = match statement {
        SqlStatement::Set(Set::SetTimeZone { value, .. }) => value.to_string(),
        SqlStatement::Set(Set::SingleAssignment {
            variable, values, ..
        }) if variable.to_string().eq_ignore_ascii_case("timezone") => values.first()?.to_string(),
        _ => return None,
    };
    Some(value.trim_matches(['\'', '"']).to_string())
}

#[async_trait]
impl QueryHook for Guard {
    async fn handle_simple_query(
        &self,
        statement: &SqlStatement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(refusal) = Guard::refusal(statement) {
            return Some(Err(refusal));
        }
        if let Some(zone) = time_zone_set(statement) {
            set_time_zone(ctx, &zone);
            // SetShowHook answers it and tells the client.
            return None;
        }
        if let SqlStatement::Delete(_) = statement {
            return Some(delete(ctx, &statement.to_string()).await);
        }
        show(&self.database, statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &SqlStatement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Guard::refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &SqlStatement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(zone) = time_zone_set(statement) {
            set_time_zone(ctx, &zone);
        }
        show(&self.database, statement)
    }
}

/// Makes `zone` the session's time zone (what `now()` and casts of
/// timestamps without a zone use).
fn set_time_zone(ctx: &SessionContext, zone: &str) {
    let state = ctx.state_ref();
    let mut state = state.write();
    state.config_mut().options_mut().execution.time_zone = Some(zone.to_string());
}

/// Runs a `DELETE` and answers `DELETE n`, as PostgreSQL does.
async fn delete(ctx: &SessionContext, sql: &str) -> PgWireResult<Response> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(from_datafusion)?
        .collect()
        .await
        .map_err(from_datafusion)?;
    let rows = batches
        .first()
        .and_then(|b| b.column_by_name("count"))
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(Response::Execution(
        Tag::new("DELETE").with_rows(rows as usize),
    ))
}

/// Gives every error the SQLSTATE its cause calls for, before it is sent.
struct SqlStates;

impl ErrorHandler for SqlStates {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(cause) = error {
            let mapped = if let Some(e) = cause.downcast_ref::<DataFusionError>() {
                datafusion_info(e)
            } else if let Some(e) = cause.downcast_ref::<ParserError>() {
                ErrorInfo::new("ERROR".into(), "42601".into(), e.to_string())
            } else if let Some(e) = cause.downcast_ref::<ApiError>() {
                api_info(e)
            } else {
                ErrorInfo::new("ERROR".into(), "XX000".into(), cause.to_string())
            };
            *error = PgWireError::UserError(Box::new(mapped));
        }
    }
}

fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// An error that ends the connection (a failed startup).
fn pg_fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

fn from_api(e: ApiError) -> PgWireError {
    PgWireError::UserError(Box::new(api_info(&e)))
}

fn from_datafusion(e: DataFusionError) -> PgWireError {
    PgWireError::UserError(Box::new(datafusion_info(&e)))
}

fn api_info(e: &ApiError) -> ErrorInfo {
    let message = e.to_string();
    let about_database = message.contains("database");
    let code = match e {
        ApiError::InvalidArgument { .. } => "22023",
        ApiError::NotFound(_) if about_database => "3D000",
        ApiError::NotFound(_) => "42P01",
        ApiError::AlreadyExists(_) if about_database => "42P04",
        ApiError::AlreadyExists(_) => "42P07",
        ApiError::PayloadTooLarge(_) => "54000",
        ApiError::Unauthenticated(_) => "28P01",
        ApiError::ResourceExhausted(_) => "53000",
        ApiError::ReadOnly(_) => "25006",
        ApiError::InsufficientStorage(_) => "53100",
        _ => "XX000",
    };
    ErrorInfo::new("ERROR".into(), code.into(), message)
}

/// The SQLSTATE of a DataFusion error, from its root cause.
fn datafusion_info(e: &DataFusionError) -> ErrorInfo {
    use datafusion::arrow::error::ArrowError;
    use datafusion::common::SchemaError;
    let root = e.find_root();
    let code = match root {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703",
            SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42000",
        },
        DataFusionError::Plan(m) if m.contains("not found") && m.contains("table") => "42P01",
        DataFusionError::Plan(m) if m.contains("function") => "42883",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::DivideByZero => "22012",
            ArrowError::ArithmeticOverflow(_) => "22003",
            ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
            _ => "XX000",
        },
        // The engine's own errors, raised inside a plan.
        DataFusionError::External(inner) => match inner.downcast_ref::<ingot_engine::Error>() {
            Some(ingot_engine::Error::ReadOnly { .. }) => "25006",
            Some(e) if e.is_storage_full() => "53100",
            Some(e) if e.is_invalid_input() => "22023",
            _ => "XX000",
        },
        _ => "XX000",
    };
    ErrorInfo::new("ERROR".into(), code.into(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_picks_the_database() {
        let names = vec!["public".to_string(), "plant".to_string()];
        assert_eq!(database_of(&names, None), "public");
        assert_eq!(database_of(&names, Some("")), "public");
        assert_eq!(database_of(&names, Some("postgres")), "public");
        assert_eq!(database_of(&names, Some("plant")), "plant");
        assert_eq!(database_of(&names, Some("nope")), "nope");
        let with_postgres = vec!["public".to_string(), "postgres".to_string()];
        assert_eq!(database_of(&with_postgres, Some("postgres")), "postgres");
    }

    #[test]
    fn errors_carry_postgres_sqlstates() {
        let code = |e: DataFusionError| datafusion_info(&e).code;
        assert_eq!(
            code(DataFusionError::Plan(
                "table 'ingot.public.nope' not found".into()
            )),
            "42P01"
        );
        assert_eq!(code(DataFusionError::NotImplemented("x".into())), "0A000");
        assert_eq!(
            api_info(&ApiError::NotFound("database \"x\" does not exist".into())).code,
            "3D000"
        );
        assert_eq!(
            api_info(&ApiError::ReadOnly("replica".into())).code,
            "25006"
        );
    }
}
