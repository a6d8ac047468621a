//! Running SQL for the Flight SQL and HTTP front ends: the safety checks
//! done before planning, a read-only session on a database, and the
//! streaming execution.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SQLOptions, SessionContext};
use ingot_engine::{DEFAULT_DATABASE, Engine, statement};

use datafusion::sql::parser::{CopyToSource, DFParser, Statement as DFStatement};

use crate::error::{ApiError, Result};
use crate::format::Format;

/// Limits checked on query text before it reaches the SQL parser.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Longest query text accepted, in bytes.
    pub max_query_bytes: usize,
    /// Deepest expression accepted: operators chained in one expression plus
    /// parentheses (and `CASE ... END`) nested around it.
    pub max_expression_depth: usize,
    /// Most tables joined in one query (`JOIN`s plus the items of `FROM`
    /// lists), all subqueries together.
    pub max_joins: usize,
    /// Most `UNION` / `INTERSECT` / `EXCEPT` in one query.
    pub max_set_operations: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_query_bytes: 1 << 20,
            max_expression_depth: 256,
            max_joins: 64,
            max_set_operations: 256,
        }
    }
}

/// Words that combine expressions the way an operator does.
const OPERATOR_WORDS: [&str; 9] = [
    "and", "or", "not", "is", "at", "like", "ilike", "between", "in",
];
/// Words that end a `FROM` list.
const CLAUSE_WORDS: [&str; 12] = [
    "where",
    "group",
    "order",
    "limit",
    "having",
    "window",
    "qualify",
    "union",
    "intersect",
    "except",
    "on",
    "using",
];

/// One open bracket level of [`check_query`]'s scan.
#[derive(Debug, Default, Clone, Copy)]
struct Level {
    /// Depth of the comma-separated item being scanned.
    current: usize,
    /// Deepest finished item at this level.
    deepest: usize,
    /// Inside a `FROM` list, where commas join tables.
    in_from: bool,
}

/// Rejects query text that is too long, nests expressions too deeply, or
/// joins or unions too many relations, before DataFusion's recursive parser,
/// planner and executor see it (a left-deep `1+1+...` of 20 000 terms, a few
/// hundred joins or a few thousand unions overflow their stacks).
///
/// The check is a single pass over the text that skips string literals,
/// quoted identifiers and comments. For each comma-separated item it counts
/// the operators (`+ - * / % || = < > :: AND OR NOT IS ...`) and the
/// brackets inside it, including nested items: an upper bound on the depth
/// of the expression tree the parser would build. It also counts `JOIN`s,
/// `FROM`-list items and set operations over the whole query.
pub fn check_query(sql: &str, limits: &SqlLimits) -> Result<()> {
    if sql.len() > limits.max_query_bytes {
        return Err(ApiError::invalid(format!(
            "query text is {} bytes, over the limit of {} bytes",
            sql.len(),
            limits.max_query_bytes
        )));
    }
    if sql.trim().is_empty() {
        return Err(ApiError::invalid("empty query"));
    }
    let too_deep = || {
        ApiError::invalid(format!(
            "query expression is nested deeper than the limit of {} (operators chained in one \
             expression plus enclosing parentheses); split it up or use IN lists and functions",
            limits.max_expression_depth
        ))
    };
    let mut stack = vec![Level::default()];
    let mut joins = 0usize;
    let mut set_operations = 0usize;
    let mut previous_word = String::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == c {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => stack.push(Level::default()),
            b')' | b']' | b'}' => close_level(&mut stack),
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.deepest = top.deepest.max(top.current);
                    top.current = 0;
                    if top.in_from {
                        joins += 1;
                    }
                }
            }
            b';' => {
                if let Some(top) = stack.last_mut() {
                    *top = Level {
                        deepest: top.deepest.max(top.current),
                        ..Level::default()
                    };
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'^' | b'<' | b'>' | b'=' | b'!'
            | b'~' | b':' => {
                // Two-character operators (`<=`, `||`, `::`) count twice: a
                // harmless overestimate that keeps unary chains (`-+-+1`) in.
                if let Some(top) = stack.last_mut() {
                    top.current += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
                {
                    i += 1;
                }
                let word = sql[start..=i].to_ascii_lowercase();
                let word = word.as_str();
                if word == "case" {
                    stack.push(Level::default());
                } else if word == "end" {
                    close_level(&mut stack);
                } else if let Some(top) = stack.last_mut() {
                    if OPERATOR_WORDS.contains(&word) {
                        top.current += 1;
                    } else if word == "join" {
                        joins += 1;
                    } else if word == "from" && previous_word != "distinct" {
                        // (`IS DISTINCT FROM` is an operator, not a FROM list.)
                        top.in_from = true;
                    } else if CLAUSE_WORDS.contains(&word) {
                        top.in_from = false;
                    }
                    if matches!(word, "union" | "intersect" | "except") {
                        set_operations += 1;
                    }
                }
                previous_word = word.to_string();
            }
            _ => {}
        }
        if stack.len() > limits.max_expression_depth
            || stack.iter().map(|l| l.current).sum::<usize>() + stack.len()
                > limits.max_expression_depth
        {
            return Err(too_deep());
        }
        if joins + 1 > limits.max_joins {
            return Err(ApiError::invalid(format!(
                "query joins more than {} tables (JOINs plus FROM-list items)",
                limits.max_joins
            )));
        }
        if set_operations > limits.max_set_operations {
            return Err(ApiError::invalid(format!(
                "query has more than {} UNION/INTERSECT/EXCEPT operations",
                limits.max_set_operations
            )));
        }
        i += 1;
    }
    Ok(())
}

/// Ends a bracket level: its depth, plus one, adds to the enclosing item.
fn close_level(stack: &mut Vec<Level>) {
    if stack.len() > 1 {
        let inner = stack.pop().unwrap_or_default();
        if let Some(top) = stack.last_mut() {
            top.current += inner.current.max(inner.deepest) + 1;
        }
    }
}

/// A session whose default schema is `database` ("" = "public"). DDL and
/// `SET` are refused: a query cannot create tables over arbitrary files.
/// `DELETE` runs (Ingot's tables take it; other DML gets "not implemented").
pub fn session(engine: &Engine, database: &str) -> Result<SessionContext> {
    let ctx = engine.session();
    if !database.is_empty() && database != DEFAULT_DATABASE {
        if !engine.databases().iter().any(|d| d == database) {
            return Err(ApiError::NotFound(format!(
                "database {database:?} does not exist"
            )));
        }
        let state = ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = database.to_string();
    }
    Ok(ctx)
}

fn statement_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(true)
        .with_allow_statements(false)
}

/// Checks, plans and starts a query; batches are produced as the stream is
/// polled, never collected here.
/// A `COPY ... TO 'file'` sent to the server: the query, and the file it
/// names, which the HTTP API streams back instead of writing on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTo {
    /// The rows: `SELECT * FROM table` or the statement's query.
    pub query: String,
    /// The file's name, without its directories.
    pub file_name: String,
    /// `STORED AS`, else the file's extension.
    pub format: Format,
}

/// Reads `sql` as a `COPY ... TO` statement; `Ok(None)` when it is not one.
pub fn copy_to(sql: &str) -> Result<Option<CopyTo>> {
    let starts_with_copy = sql
        .trim_start()
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"));
    if !starts_with_copy {
        return Ok(None);
    }
    let mut statements = DFParser::parse_sql(sql)?;
    let (Some(DFStatement::CopyTo(copy)), None) = (statements.pop_front(), statements.pop_front())
    else {
        return Ok(None);
    };
    let query = match &copy.source {
        CopyToSource::Relation(name) => format!("SELECT * FROM {name}"),
        CopyToSource::Query(query) => query.to_string(),
    };
    let file_name = copy
        .target
        .rsplit(['/', '\\'])
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("export")
        .to_string();
    let kind = copy
        .stored_as
        .clone()
        .or_else(|| file_name.rsplit_once('.').map(|(_, e)| e.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = match kind.as_str() {
        "parquet" => Format::Parquet,
        "csv" => Format::Csv,
        "json" | "ndjson" | "jsonl" => Format::JsonLines,
        other => {
            return Err(ApiError::invalid(format!(
                "COPY TO {:?}: unknown format {other:?}; say STORED AS PARQUET, CSV or JSON",
                copy.target
            )));
        }
    };
    Ok(Some(CopyTo {
        query,
        file_name,
        format,
    }))
}

pub async fn execute(
    engine: &Engine,
    database: &str,
    sql: &str,
    limits: &SqlLimits,
) -> Result<SendableRecordBatchStream> {
    check_query(sql, limits)?;
    refuse_copy(sql)?;
    if run_statement(engine, database, sql).await? {
        let schema = Arc::new(Schema::empty());
        return Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::empty(),
        )));
    }
    let ctx = session(engine, database)?;
    let df = ctx.sql_with_options(sql, statement_options()).await?;
    Ok(df.execute_stream().await?)
}

/// Runs `sql` if it is one of Ingot's own statements (`CREATE DATABASE`,
/// `ALTER DATABASE ... SET retention_period`, `DROP TABLE`, `DROP
/// DATABASE`), with `database` as the session's; false when it is not, and
/// DataFusion should plan it.
/// The server never writes query results on its own disk.
fn refuse_copy(sql: &str) -> Result<()> {
    if copy_to(sql)?.is_some() {
        return Err(ApiError::invalid(
            "COPY ... TO would write the file where the server runs: send it to \
             /api/v3/query_sql, which streams the file back, or run the query and write the \
             result yourself (`ingot export` backs up a table)",
        ));
    }
    Ok(())
}

pub async fn run_statement(engine: &Engine, database: &str, sql: &str) -> Result<bool> {
    let Some(statement) = statement::parse(sql)? else {
        return Ok(false);
    };
    let engine = engine.clone();
    let database = match database {
        "" => DEFAULT_DATABASE.to_string(),
        d => d.to_string(),
    };
    crate::grpc::blocking(move || engine.run_statement(&statement, &database)).await?;
    Ok(true)
}

/// Plans a query (for its schema or to bind parameters) without running it.
pub async fn plan(
    engine: &Engine,
    database: &str,
    sql: &str,
    limits: &SqlLimits,
) -> Result<datafusion::dataframe::DataFrame> {
    check_query(sql, limits)?;
    refuse_copy(sql)?;
    if statement::parse(sql)?.is_some() {
        return Err(ApiError::invalid(
            "CREATE DATABASE, ALTER DATABASE and DROP change the server: send them with \
             ExecuteUpdate (Flight SQL's CommandStatementUpdate) or to /api/v3/query_sql",
        ));
    }
    let ctx = session(engine, database)?;
    Ok(ctx.sql_with_options(sql, statement_options()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_to_names_its_query_file_and_format() {
        let copy = copy_to("COPY (SELECT a FROM t WHERE b > 1) TO '/tmp/out/x.parquet'")
            .unwrap()
            .unwrap();
        assert_eq!(copy.query, "SELECT a FROM t WHERE b > 1");
        assert_eq!(copy.file_name, "x.parquet");
        assert_eq!(copy.format, Format::Parquet);
        let copy = copy_to("copy readings to 'r.out' stored as csv")
            .unwrap()
            .unwrap();
        assert_eq!(copy.query, "SELECT * FROM readings");
        assert_eq!(copy.format, Format::Csv);
        assert!(copy_to("SELECT 1").unwrap().is_none());
        assert!(copy_to("COPY t TO 'x.avro'").is_err());
    }

    #[test]
    fn ordinary_queries_pass() {
        let limits = SqlLimits::default();
        for q in [
            "SELECT 1",
            "SELECT date_bin(INTERVAL '1 minute', time) AS t, avg(v) FROM r WHERE a = 'x' AND b > 2 GROUP BY 1",
            "SELECT '((((((((' FROM t -- )))))",
            "SELECT a+b, c+d, e+f FROM t WHERE (x = 1 OR y = 2) AND z <> 3",
            "SELECT CASE WHEN a IS NULL THEN 0 ELSE a::bigint END AS x FROM t JOIN u ON t.k = u.k",
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3",
        ] {
            check_query(q, &limits).unwrap();
        }
    }

    #[test]
    fn deep_expressions_are_refused() {
        let limits = SqlLimits::default();
        let chain = format!("SELECT {}", vec!["1"; 20_000].join("+"));
        assert!(check_query(&chain, &limits).is_err());
        let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(check_query(&parens, &limits).is_err());
        let unary = format!("SELECT {}1", "-+".repeat(5000));
        assert!(check_query(&unary, &limits).is_err());
        let arrays = format!("SELECT {}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(check_query(&arrays, &limits).is_err());
        let cases = format!(
            "SELECT {}1{}",
            "CASE WHEN true THEN ".repeat(300),
            " END".repeat(300)
        );
        assert!(check_query(&cases, &limits).is_err());
        let casts = format!("SELECT 1{}", "::int".repeat(300));
        assert!(check_query(&casts, &limits).is_err());
        let is_null = format!("SELECT 1{}", " IS NOT NULL".repeat(300));
        assert!(check_query(&is_null, &limits).is_err());
        let unions = vec!["SELECT 1, 2"; 300].join(" UNION ALL ");
        assert!(check_query(&unions, &limits).is_err());
        let joins: String = (1..100).map(|i| format!(" JOIN m a{i} ON true")).collect();
        assert!(check_query(&format!("SELECT * FROM m{joins}"), &limits).is_err());
        let from: Vec<String> = (0..100).map(|i| format!("m a{i}")).collect();
        assert!(check_query(&format!("SELECT a, b FROM {}", from.join(", ")), &limits).is_err());
        let ands = format!(
            "SELECT * FROM t WHERE {}",
            vec!["a = 1"; 1000].join(" AND ")
        );
        assert!(check_query(&ands, &limits).is_err());
        let long = "x".repeat(limits.max_query_bytes + 1);
        assert!(check_query(&long, &limits).is_err());
    }
}
