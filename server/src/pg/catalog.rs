//! The catalogs a PostgreSQL client reads on connect, in Ingot's terms.
//!
//! `datafusion-postgres` provides `pg_catalog` and the functions psql,
//! DBeaver and Grafana call. Ingot answers these itself:
//! - `information_schema.columns` in PostgreSQL's type names. DataFusion
//!   names Arrow types (`Timestamp(ns, "UTC")`, `Dictionary(Int32, Utf8)`);
//!   Grafana's column picker, DBeaver and BI tools expect `timestamp with
//!   time zone` and `text`, and read `udt_name` as well;
//! - `pg_catalog.pg_database` lists Ingot's databases, since the PostgreSQL
//!   database name picks one;
//! - `current_database()`, `current_schema()` and `current_schemas()` name
//!   the session's database, whose tables are its schema;
//! - `version()` says PostgreSQL first, as drivers and SQLAlchemy parse it;
//! - `current_setting()` answers the settings clients read.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, ListArray, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::information_schema::{INFORMATION_SCHEMA, InformationSchemaProvider};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, ViewTable, provider_as_source};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarUDF, Volatility, col, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    create_current_database_udf, setup_pg_catalog,
};
use datafusion_postgres::pgwire::api::Type;
use ingot_engine::{CATALOG_NAME, Engine};

use super::{SERVER_VERSION, SERVER_VERSION_NUM};

/// Sets up the catalogs and functions of a PostgreSQL session on
/// `database`.
pub(super) fn register(ctx: &SessionContext, engine: &Engine, database: &str) -> Result<()> {
    setup_pg_catalog(ctx, CATALOG_NAME, EmptyContextProvider).map_err(|e| *e)?;
    let catalog = ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| DataFusionError::Internal(format!("no catalog {CATALOG_NAME}")))?;
    let pg_catalog = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Internal("pg_catalog was not registered".into()))?;
    let engine = engine.clone();
    catalog.register_schema(
        "pg_catalog",
        Arc::new(Replacing {
            inner: pg_catalog,
            table: "pg_database",
            replace: Box::new(move |table| Ok(Arc::new(pg_database(&table, &engine.databases())?))),
        }),
    )?;

    let inner = InformationSchemaProvider::new(ctx.state().catalog_list().clone());
    // DataFusion answers `information_schema` itself while the setting is
    // on, before it asks the catalog.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .information_schema = false;
    catalog.register_schema(
        INFORMATION_SCHEMA,
        Arc::new(Replacing {
            inner: Arc::new(inner),
            table: "columns",
            replace: Box::new(|table| Ok(Arc::new(postgres_columns(table)?))),
        }),
    )?;

    ctx.register_udf(create_current_database_udf(database));
    ctx.register_udf(constant("current_schema", database));
    ctx.register_udf(current_schemas(database));
    ctx.register_udf(constant(
        "version",
        &format!(
            "PostgreSQL {SERVER_VERSION} on {}-{}, Apache DataFusion {}",
            std::env::consts::ARCH,
            std::env::consts::OS,
            datafusion::DATAFUSION_VERSION
        ),
    ));
    ctx.register_udf(current_setting(database));
    Ok(())
}

/// The value of the setting `name` as `current_setting()` reads it.
pub(super) fn setting(database: &str, name: &str) -> Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "search_path" => Some(database.to_string()),
        "server_version" => Some(SERVER_VERSION.to_string()),
        "server_version_num" => Some(SERVER_VERSION_NUM.to_string()),
        "server_encoding" | "client_encoding" => Some("UTF8".to_string()),
        "timezone" => Some("UTC".to_string()),
        "datestyle" => Some("ISO, MDY".to_string()),
        _ => None,
    }
}

/// `current_setting(name)`: the settings clients read on connect (Grafana
/// reads `server_version_num` and `search_path`); NULL for the others.
fn current_setting(database: &str) -> ScalarUDF {
    let database = database.to_string();
    text_function("current_setting", Volatility::Stable, move |name| {
        setting(&database, name)
    })
}

/// A function of one text argument that answers `f` of it (NULL for NULL).
fn text_function(
    name: &str,
    volatility: Volatility,
    f: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    let map = move |args: &[ColumnarValue]| {
        let values = ColumnarValue::values_to_arrays(args)?;
        let values = datafusion::common::cast::as_string_array(&values[0])?;
        let out: StringArray = (0..values.len())
            .map(|i| (!values.is_null(i)).then(|| f(values.value(i)))?)
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    };
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        volatility,
        Arc::new(map),
    )
}

/// A function of no arguments that answers `value`.
fn constant(name: &str, value: &str) -> ScalarUDF {
    let value = value.to_string();
    let answer = move |_: &[ColumnarValue]| {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(Some(value.clone())),
        ))
    };
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(answer),
    )
}

/// `current_schemas(implicit)`: the database, after `pg_catalog` when the
/// implicit schemas are asked for too, as PostgreSQL orders them.
fn current_schemas(database: &str) -> ScalarUDF {
    let database = database.to_string();
    let answer = move |args: &[ColumnarValue]| {
        let implicit = ColumnarValue::values_to_arrays(args)?;
        let implicit = datafusion::common::cast::as_boolean_array(&implicit[0])?;
        let lists = (0..implicit.len()).map(|i| {
            let mut schemas = Vec::new();
            if implicit.is_valid(i) && implicit.value(i) {
                schemas.push(Some("pg_catalog".to_string()));
            }
            schemas.push(Some(database.clone()));
            Some(schemas)
        });
        let mut builder = datafusion::arrow::array::ListBuilder::new(
            datafusion::arrow::array::StringBuilder::new(),
        );
        for list in lists {
            builder.append_option(list);
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    };
    create_udf(
        "current_schemas",
        vec![DataType::Boolean],
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Volatility::Stable,
        Arc::new(answer),
    )
}

/// A schema's tables, with one of them replaced by what `replace` makes of
/// it: `pg_catalog` with Ingot's `pg_database`, `information_schema` with
/// PostgreSQL's `columns`.
struct Replacing {
    inner: Arc<dyn SchemaProvider>,
    table: &'static str,
    replace: Box<Replace>,
}

/// What makes a schema's replacement table of its own.
type Replace = dyn Fn(Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> + Send + Sync;

impl std::fmt::Debug for Replacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replacing")
            .field("inner", &self.inner)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SchemaProvider for Replacing {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.inner.table(name).await? {
            Some(table) if name.eq_ignore_ascii_case(self.table) => {
                Ok(Some((self.replace)(table)?))
            }
            table => Ok(table),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `pg_database` (in the shape of `datafusion-postgres`' `table`) with a
/// row for each of `databases`.
fn pg_database(table: &Arc<dyn TableProvider>, databases: &[String]) -> Result<MemTable> {
    let schema = table.schema();
    let n = databases.len();
    let text = |value: &str| Arc::new(StringArray::from(vec![value; n])) as ArrayRef;
    let int = |value: i32| Arc::new(Int32Array::from(vec![value; n])) as ArrayRef;
    let flag = |value: bool| Arc::new(BooleanArray::from(vec![value; n])) as ArrayRef;
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match field.name().as_str() {
            "oid" => Arc::new(Int32Array::from_iter_values(
                databases.iter().map(|d| database_oid(d)),
            )) as ArrayRef,
            "datname" => Arc::new(StringArray::from_iter_values(databases)) as ArrayRef,
            "datdba" => int(10),
            "encoding" => int(6), // UTF8
            "datlocprovider" => text("libc"),
            "datcollate" | "datctype" => text("C.UTF-8"),
            "datistemplate" => flag(false),
            "datallowconn" => flag(true),
            "datconnlimit" => int(-1),
            "datlastsysoid" => int(16383),
            "datfrozenxid" | "datminmxid" => int(1),
            "dattablespace" => int(1663), // pg_default
            "datacl" => Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|_| None::<Vec<Option<i32>>>),
            )) as ArrayRef,
            _ => new_null_array(field.data_type(), n),
        };
        columns.push(column);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

/// A database's object id: a hash of its name, the same in every session,
/// above the ids PostgreSQL keeps for itself.
fn database_oid(name: &str) -> i32 {
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    16384 + (hash % (i32::MAX as u32 - 16384)) as i32
}

/// DataFusion's `columns` with `data_type` in PostgreSQL's words, and
/// PostgreSQL's `udt_name` after it.
fn postgres_columns(columns: Arc<dyn TableProvider>) -> Result<ViewTable> {
    let schema = columns.schema();
    let data_type = udf("pg_data_type", |t| sql_name(t).to_string());
    let udt_name = udf("pg_udt_name", |t| t.name().to_string());
    let mut exprs: Vec<Expr> = Vec::new();
    for field in schema.fields() {
        let column = col(field.name().as_str());
        if field.name() == "data_type" {
            exprs.push(data_type.call(vec![column.clone()]).alias("data_type"));
            exprs.push(udt_name.call(vec![column]).alias("udt_name"));
        } else {
            exprs.push(column);
        }
    }
    let plan = LogicalPlanBuilder::scan("columns", provider_as_source(columns), None)?
        .project(exprs)?
        .build()?;
    Ok(ViewTable::new(plan, None))
}

/// A function of DataFusion's type names (`DataType`'s `Display`) that
/// names the PostgreSQL type the wire protocol sends for it; names that do
/// not parse pass through.
fn udf(name: &str, describe: fn(&Type) -> String) -> ScalarUDF {
    text_function(name, Volatility::Immutable, move |arrow| {
        Some(match arrow.parse::<DataType>().map(|t| into_pg_type(&t)) {
            Ok(Ok(pg)) => describe(&pg),
            _ => arrow.to_string(),
        })
    })
}

/// The SQL-standard name `information_schema.columns.data_type` shows.
fn sql_name(pg: &Type) -> &str {
    match *pg {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::INTERVAL => "interval",
        // PostgreSQL names array types after their element, `_text`.
        _ if pg.name().starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_types_get_postgres_names() {
        let named = |arrow: &DataType| {
            let pg = into_pg_type(&arrow.to_string().parse().unwrap()).unwrap();
            (sql_name(&pg).to_string(), pg.name().to_string())
        };
        let time = DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Nanosecond,
            Some("UTC".into()),
        );
        assert_eq!(
            named(&time),
            ("timestamp with time zone".into(), "timestamptz".into())
        );
        let tag = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(named(&tag), ("text".into(), "text".into()));
        assert_eq!(
            named(&DataType::Float64),
            ("double precision".into(), "float8".into())
        );
        assert_eq!(named(&DataType::Int64), ("bigint".into(), "int8".into()));
        assert_eq!(named(&DataType::Boolean), ("boolean".into(), "bool".into()));
    }
}
