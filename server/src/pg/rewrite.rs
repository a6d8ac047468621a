//! Client queries that DataFusion cannot run as the client sends them,
//! rewritten into what they mean on Ingot.
//!
//! `datafusion-postgres` already rewrites most of what tools send on connect;
//! these are the fragments where Ingot knows better: each is matched token by
//! token (whitespace and layout do not matter) and replaced in place.

use std::borrow::Cow;
use std::sync::OnceLock;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// What a matched fragment becomes.
enum Replacement {
    /// The session's database, as a string literal.
    Database,
    /// Fixed SQL.
    Sql(&'static str),
}

/// A fragment of a client's query, a word of it that a cheap substring test
/// finds first, and its replacement.
struct Rewrite {
    marker: &'static str,
    fragment: &'static str,
    replacement: Replacement,
}

const REWRITES: &[Rewrite] = &[
    // Grafana's PostgreSQL data source asks which schemas are on the
    // search path by splitting `current_setting('search_path')` into rows;
    // its table and column pickers filter on the answer. DataFusion cannot
    // run the subquery, and `datafusion-postgres` replaces it with `''`,
    // which leaves Grafana's column list empty. Ingot's search path is the
    // session's database alone.
    Rewrite {
        marker: "search_path",
        fragment: r#"SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s"#,
        replacement: Replacement::Database,
    },
    // The PostgreSQL JDBC driver (DBeaver, BI tools on the JVM) asks whether
    // a type is an array by comparing `typinput` with a `regproc` cast,
    // which DataFusion plans as a cast of the function's name to an integer.
    // `pg_type.typinput` holds the function's name.
    Rewrite {
        marker: "array_in",
        fragment: "typinput='pg_catalog.array_in'::regproc",
        replacement: Replacement::Sql("typinput='array_in'"),
    },
];

/// `sql` with every fragment of [`REWRITES`] it holds replaced, for a session
/// on `database`; borrowed as it is when it holds none.
pub(super) fn client_sql<'a>(sql: &'a str, database: &str) -> Cow<'a, str> {
    static FRAGMENTS: OnceLock<Vec<Vec<Token>>> = OnceLock::new();
    if !REWRITES.iter().any(|r| sql.contains(r.marker)) {
        return sql.into();
    }
    let fragments = FRAGMENTS.get_or_init(|| {
        REWRITES
            .iter()
            .map(|r| {
                let tokens = Tokenizer::new(&PostgreSqlDialect {}, r.fragment).tokenize();
                let tokens = tokens.expect("a rewrite's fragment is valid SQL");
                tokens.into_iter().filter(significant).collect()
            })
            .collect()
    });
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        // The parser reports the error.
        return sql.into();
    };
    let at: Vec<usize> = (0..tokens.len())
        .filter(|&i| significant(&tokens[i]))
        .collect();
    let mut out = String::with_capacity(sql.len());
    let (mut copied, mut i) = (0, 0);
    'tokens: while i < at.len() {
        for (rewrite, fragment) in REWRITES.iter().zip(fragments) {
            let n = fragment.len();
            if i + n <= at.len() && (0..n).all(|k| tokens[at[i + k]] == fragment[k]) {
                tokens[copied..at[i]]
                    .iter()
                    .for_each(|t| out += &t.to_string());
                match rewrite.replacement {
                    Replacement::Database => {
                        out += &format!("'{}'", database.replace('\'', "''"));
                    }
                    Replacement::Sql(sql) => out += sql,
                }
                copied = at[i + n - 1] + 1;
                i += n;
                continue 'tokens;
            }
        }
        i += 1;
    }
    if copied == 0 {
        return sql.into();
    }
    tokens[copied..].iter().for_each(|t| out += &t.to_string());
    out.into()
}

fn significant(token: &Token) -> bool {
    !matches!(token, Token::Whitespace(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn grafanas_search_path_subquery_names_the_database() {
        // As Grafana lays it out, with its own indentation.
        let grafana = r#"SELECT quote_ident(column_name) AS "column" FROM information_schema.columns
            WHERE quote_ident(table_schema) IN (
              SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s
              ) ORDER BY 1"#;
        assert_eq!(
            words(&client_sql(grafana, "plant")),
            "SELECT quote_ident(column_name) AS \"column\" FROM information_schema.columns \
             WHERE quote_ident(table_schema) IN ( 'plant' ) ORDER BY 1"
        );
        let other = "SELECT current_setting('search_path')";
        assert!(matches!(client_sql(other, "plant"), Cow::Borrowed(_)));
    }

    #[test]
    fn jdbcs_array_type_test_compares_names() {
        let jdbc = "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype \
                    FROM pg_catalog.pg_type WHERE pg_type.oid = 1034";
        assert_eq!(
            words(&client_sql(jdbc, "public")),
            "SELECT typinput='array_in' as is_array, typtype \
             FROM pg_catalog.pg_type WHERE pg_type.oid = 1034"
        );
    }
}
