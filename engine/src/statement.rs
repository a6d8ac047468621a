//! Ingot's own SQL statements: the ones that manage databases and drop
//! tables, which DataFusion's SQL does not have for Ingot's catalog.
//!
//! ```sql
//! CREATE DATABASE [IF NOT EXISTS] plant [WITH (retention_period = '30d')]
//! ALTER DATABASE plant SET retention_period = '90d'
//! ALTER DATABASE plant UNSET retention_period      -- keep rows forever
//! DROP TABLE [IF EXISTS] [plant.]readings
//! DROP DATABASE [IF EXISTS] plant
//! ```
//!
//! `ttl` is read as another name for `retention_period` (GreptimeDB's
//! spelling, as in `ALTER DATABASE plant SET 'ttl' = '7d'`), and a period of
//! `none` or `forever` keeps rows forever. [`parse`] recognizes these by
//! their first words and leaves every other statement to DataFusion.

use std::time::Duration;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};
use crate::retention::parse_period;

/// A statement Ingot runs itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE DATABASE`; `retention` is `None` when the statement names no
    /// period (the database then gets [`crate::Options::default_retention`]),
    /// `Some(None)` for a period of `none`.
    CreateDatabase {
        name: String,
        if_not_exists: bool,
        retention: Option<Option<Duration>>,
    },
    /// `ALTER DATABASE ... SET` / `UNSET retention_period`.
    SetRetention {
        database: String,
        retention: Option<Duration>,
    },
    /// `DROP TABLE`; `database` is `None` when the table is not qualified
    /// (the session's database is meant).
    DropTable {
        database: Option<String>,
        table: String,
        if_exists: bool,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
    },
    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] [database.]name AS query`:
    /// a continuous rollup ([`crate::Engine::create_rollup`]); `database` is
    /// `None` when the name is not qualified.
    CreateRollup {
        database: Option<String>,
        name: String,
        if_not_exists: bool,
        query: String,
    },
    /// `DROP MATERIALIZED VIEW [IF EXISTS] [database.]name`.
    DropRollup {
        database: Option<String>,
        name: String,
        if_exists: bool,
    },
}

/// Reads `sql` as one of Ingot's own statements: `Ok(None)` when it is not
/// one (DataFusion plans it), an error when it starts like one but is wrong.
pub fn parse(sql: &str) -> Result<Option<Statement>> {
    let words = leading_words(sql, 3);
    let kind = match words.as_slice() {
        [a, b, ..] if a == "create" && b == "database" => Kind::Create,
        [a, b, ..] if a == "alter" && b == "database" => Kind::Alter,
        [a, b, ..] if a == "drop" && b == "table" => Kind::DropTable,
        [a, b, ..] if a == "drop" && (b == "database" || b == "schema") => Kind::DropDatabase,
        [a, b, c] if a == "create" && b == "materialized" && c == "view" => {
            return create_rollup(sql).map(Some);
        }
        [a, b, c] if a == "drop" && b == "materialized" && c == "view" => Kind::DropRollup,
        _ => return Ok(None),
    };
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::InvalidInput(format!("SQL error: {e}")))?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
        .collect();
    let at = if kind == Kind::DropRollup { 3 } else { 2 };
    let mut p = Parser { tokens, at };
    let statement = match kind {
        Kind::Create => p.create()?,
        Kind::Alter => p.alter()?,
        Kind::DropTable => {
            let if_exists = p.keywords(&["if", "exists"]);
            let (database, table) = p.qualified_name("a table name")?;
            Statement::DropTable {
                database,
                table,
                if_exists,
            }
        }
        Kind::DropRollup => {
            let if_exists = p.keywords(&["if", "exists"]);
            let (database, name) = p.qualified_name("a view name")?;
            Statement::DropRollup {
                database,
                name,
                if_exists,
            }
        }
        Kind::DropDatabase => Statement::DropDatabase {
            if_exists: p.keywords(&["if", "exists"]),
            name: p.name("a database name")?,
        },
    };
    if let Some(t) = p.tokens.get(p.at) {
        return Err(p.unexpected(t, "the end of the statement"));
    }
    Ok(Some(statement))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Alter,
    DropTable,
    DropDatabase,
    DropRollup,
}

/// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] [database.]name AS query`: the
/// query is kept as written, from the first token after `AS`.
fn create_rollup(sql: &str) -> Result<Statement> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::InvalidInput(format!("SQL error: {e}")))?;
    let (tokens, starts): (Vec<Token>, Vec<_>) = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| (t.token, t.span.start))
        .unzip();
    let mut p = Parser { tokens, at: 3 };
    let if_not_exists = p.keywords(&["if", "not", "exists"]);
    let (database, name) = p.qualified_name("a view name")?;
    if !p.keywords(&["as"]) {
        return Err(p.unexpected_here("AS followed by the view's SELECT"));
    }
    let Some(start) = starts.get(p.at) else {
        return Err(p.unexpected_here("the view's SELECT"));
    };
    // Locations count lines and characters from 1.
    let offset: usize = sql
        .split_inclusive('\n')
        .take(start.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum::<usize>()
        + sql
            .split_inclusive('\n')
            .nth(start.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .chars()
            .take(start.column.saturating_sub(1) as usize)
            .map(char::len_utf8)
            .sum::<usize>();
    let query = sql[offset..]
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    Ok(Statement::CreateRollup {
        database,
        name,
        if_not_exists,
        query,
    })
}

/// The first `n` words of `sql`, lowercased, skipping comments.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(n)
        .map_while(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

const SYNTAX: &str = "CREATE DATABASE [IF NOT EXISTS] name [WITH (retention_period = '30d')], \
                      ALTER DATABASE name SET retention_period = '30d', \
                      ALTER DATABASE name UNSET retention_period, \
                      DROP TABLE [IF EXISTS] [database.]table, \
                      DROP DATABASE [IF EXISTS] name, \
                      CREATE MATERIALIZED VIEW [IF NOT EXISTS] [database.]name AS SELECT ..., \
                      DROP MATERIALIZED VIEW [IF EXISTS] [database.]name";

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn create(&mut self) -> Result<Statement> {
        let if_not_exists = self.keywords(&["if", "not", "exists"]);
        let name = self.name("a database name")?;
        let mut retention = None;
        if self.keywords(&["with"]) {
            self.expect(&Token::LParen, "(")?;
            loop {
                self.option_key()?;
                self.expect(&Token::Eq, "=")?;
                retention = Some(parse_period(&self.string()?)?);
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
            self.expect(&Token::RParen, ")")?;
        }
        Ok(Statement::CreateDatabase {
            name,
            if_not_exists,
            retention,
        })
    }

    fn alter(&mut self) -> Result<Statement> {
        let database = self.name("a database name")?;
        let retention = if self.keywords(&["set"]) {
            self.option_key()?;
            self.expect(&Token::Eq, "=")?;
            parse_period(&self.string()?)?
        } else if self.keywords(&["unset"]) {
            self.option_key()?;
            None
        } else {
            return Err(self.unexpected_here("SET or UNSET"));
        };
        Ok(Statement::SetRetention {
            database,
            retention,
        })
    }

    /// `retention_period` or `ttl`, bare or quoted.
    fn option_key(&mut self) -> Result<()> {
        let key = match self.tokens.get(self.at) {
            Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
            Some(Token::SingleQuotedString(s)) => s.to_ascii_lowercase(),
            _ => return Err(self.unexpected_here("retention_period")),
        };
        if key != "retention_period" && key != "ttl" {
            return Err(Error::InvalidInput(format!(
                "unknown database option {key:?}: the one option is retention_period (or ttl)"
            )));
        }
        self.at += 1;
        Ok(())
    }

    /// `name` or `database.name`.
    fn qualified_name(&mut self, what: &str) -> Result<(Option<String>, String)> {
        let first = self.name(what)?;
        Ok(if self.eat(&Token::Period) {
            (Some(first), self.name(what)?)
        } else {
            (None, first)
        })
    }

    /// A name, as SQL reads identifiers: lowercased unless quoted.
    fn name(&mut self, what: &str) -> Result<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(match w.quote_style {
                    Some(_) => w.value.clone(),
                    None => w.value.to_ascii_lowercase(),
                })
            }
            _ => Err(self.unexpected_here(what)),
        }
    }

    fn string(&mut self) -> Result<String> {
        match self.tokens.get(self.at) {
            Some(Token::SingleQuotedString(s)) => {
                self.at += 1;
                Ok(s.clone())
            }
            _ => Err(self.unexpected_here("a quoted period such as '30d'")),
        }
    }

    /// Consumes the words `words` (case-insensitive) if they come next.
    fn keywords(&mut self, words: &[&str]) -> bool {
        let all = words.iter().enumerate().all(|(i, word)| {
            matches!(self.tokens.get(self.at + i),
                Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
        });
        if all {
            self.at += words.len();
        }
        all
    }

    fn eat(&mut self, token: &Token) -> bool {
        let next = self.tokens.get(self.at) == Some(token);
        if next {
            self.at += 1;
        }
        next
    }

    fn expect(&mut self, token: &Token, shown: &str) -> Result<()> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected_here(shown))
        }
    }

    fn unexpected_here(&self, wanted: &str) -> Error {
        match self.tokens.get(self.at) {
            Some(t) => self.unexpected(t, wanted),
            None => Error::InvalidInput(format!(
                "SQL error: the statement ends where {wanted} was expected; the forms are {SYNTAX}"
            )),
        }
    }

    fn unexpected(&self, found: &Token, wanted: &str) -> Error {
        Error::InvalidInput(format!(
            "SQL error: expected {wanted}, found {found}; the forms are {SYNTAX}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    #[test]
    fn reads_the_database_statements() {
        assert_eq!(
            parse("CREATE DATABASE plant").unwrap(),
            Some(Statement::CreateDatabase {
                name: "plant".into(),
                if_not_exists: false,
                retention: None
            })
        );
        assert_eq!(
            parse("create database if not exists \"Plant-2\" with (retention_period = '30d');")
                .unwrap(),
            Some(Statement::CreateDatabase {
                name: "Plant-2".into(),
                if_not_exists: true,
                retention: Some(Some(days(30)))
            })
        );
        assert_eq!(
            parse("ALTER DATABASE plant SET 'ttl' = '7d'").unwrap(),
            Some(Statement::SetRetention {
                database: "plant".into(),
                retention: Some(days(7))
            })
        );
        assert_eq!(
            parse("-- keep it all\nALTER DATABASE plant SET retention_period = 'none'").unwrap(),
            Some(Statement::SetRetention {
                database: "plant".into(),
                retention: None
            })
        );
        assert_eq!(
            parse("alter database plant unset ttl").unwrap(),
            Some(Statement::SetRetention {
                database: "plant".into(),
                retention: None
            })
        );
    }

    #[test]
    fn reads_drops() {
        assert_eq!(
            parse("DROP TABLE readings").unwrap(),
            Some(Statement::DropTable {
                database: None,
                table: "readings".into(),
                if_exists: false
            })
        );
        assert_eq!(
            parse("drop table if exists plant.\"Cpu\";").unwrap(),
            Some(Statement::DropTable {
                database: Some("plant".into()),
                table: "Cpu".into(),
                if_exists: true
            })
        );
        assert_eq!(
            parse("DROP DATABASE IF EXISTS plant").unwrap(),
            Some(Statement::DropDatabase {
                name: "plant".into(),
                if_exists: true
            })
        );
        assert_eq!(
            parse("DROP SCHEMA plant").unwrap(),
            Some(Statement::DropDatabase {
                name: "plant".into(),
                if_exists: false
            })
        );
        let err = parse("DROP TABLE a, b").unwrap_err().to_string();
        assert!(err.contains("end of the statement"), "{err}");
    }

    #[test]
    fn reads_materialized_views() {
        let sql = "CREATE MATERIALIZED VIEW IF NOT EXISTS archive.r_1m AS\n  SELECT date_bin(INTERVAL '1 minute', time) AS time, avg(t) AS t\n  FROM r GROUP BY 1;";
        assert_eq!(
            parse(sql).unwrap(),
            Some(Statement::CreateRollup {
                database: Some("archive".into()),
                name: "r_1m".into(),
                if_not_exists: true,
                query: "SELECT date_bin(INTERVAL '1 minute', time) AS time, avg(t) AS t\n  FROM r GROUP BY 1".into(),
            })
        );
        assert_eq!(
            parse("drop materialized view if exists r_1m").unwrap(),
            Some(Statement::DropRollup {
                database: None,
                name: "r_1m".into(),
                if_exists: true,
            })
        );
        let err = parse("CREATE MATERIALIZED VIEW v SELECT 1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected AS followed by the view's SELECT"),
            "{err}"
        );
    }

    #[test]
    fn leaves_other_sql_to_datafusion() {
        for sql in [
            "SELECT 1",
            "CREATE TABLE t (a INT)",
            "select 'create database x'",
            "",
        ] {
            assert_eq!(parse(sql).unwrap(), None, "{sql}");
        }
    }

    #[test]
    fn says_what_is_wrong() {
        for (sql, says) in [
            (
                "ALTER DATABASE plant SET colour = 'red'",
                "unknown database option",
            ),
            ("ALTER DATABASE plant SET ttl = 'soon'", "not a duration"),
            ("ALTER DATABASE plant RENAME TO x", "expected SET or UNSET"),
            (
                "CREATE DATABASE plant WITH (ttl = '1d'",
                "ends where ) was expected",
            ),
            ("CREATE DATABASE plant extra", "end of the statement"),
        ] {
            let err = parse(sql).unwrap_err().to_string();
            assert!(err.contains(says), "{sql}: {err}");
        }
    }
}
