//! Table schemas: which columns a table has and what role and type each plays.
//!
//! Schema on write: the first write creates a table; later writes may add
//! tags and fields. A column keeps its role and type forever; a write that
//! disagrees is rejected with both types named. [`Catalog::resolve`] checks a
//! whole request before it changes anything, so a rejected request leaves the
//! catalog as it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rollup::RollupDef;

/// Arrow field metadata key naming a column's role: `time`, `tag` or `field`.
pub const KIND_METADATA_KEY: &str = "ingot.kind";

/// The name of every table's time column.
pub const TIME_COLUMN: &str = "time";

/// The value type of a field column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    Boolean,
    String,
}

impl FieldType {
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::Float => DataType::Float64,
            FieldType::Integer => DataType::Int64,
            FieldType::UInteger => DataType::UInt64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::String => DataType::Utf8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::UInteger => "unsigned integer",
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
        }
    }
}

/// The role of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ColumnKind {
    Time,
    Tag,
    Field(FieldType),
}

impl ColumnKind {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Time => time_type(),
            ColumnKind::Tag => tag_type(),
            ColumnKind::Field(t) => t.data_type(),
        }
    }

    /// "tag", "time" or "float field" and so on, for messages.
    pub fn describe(self) -> String {
        match self {
            ColumnKind::Time => "the time column".to_string(),
            ColumnKind::Tag => "a tag".to_string(),
            ColumnKind::Field(t) => {
                let article = if t.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {} field", t.name())
            }
        }
    }

    fn metadata_value(self) -> &'static str {
        match self {
            ColumnKind::Time => "time",
            ColumnKind::Tag => "tag",
            ColumnKind::Field(_) => "field",
        }
    }
}

/// Arrow type of the time column: nanoseconds since the epoch, UTC.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Arrow type of tag columns in memory and in files.
pub fn tag_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// An Arrow field for a column of the given role, with its `ingot.kind` metadata.
pub fn arrow_field(name: &str, kind: ColumnKind) -> Field {
    Field::new(name, kind.data_type(), kind != ColumnKind::Time).with_metadata(HashMap::from([(
        KIND_METADATA_KEY.to_string(),
        kind.metadata_value().to_string(),
    )]))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

/// The schema of one table: `time` first, then tags and fields in the order
/// they first appeared.
#[derive(Debug, Clone)]
pub struct TableSchema {
    name: String,
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    arrow: SchemaRef,
}

impl TableSchema {
    fn new(name: &str) -> Self {
        Self::from_columns(
            name,
            vec![Column {
                name: TIME_COLUMN.to_string(),
                kind: ColumnKind::Time,
            }],
        )
    }

    pub(crate) fn from_columns(name: &str, columns: Vec<Column>) -> Self {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let arrow = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| arrow_field(&c.name, c.kind))
                .collect::<Vec<_>>(),
        ));
        Self {
            name: name.to_string(),
            columns,
            index,
            arrow,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|&i| &self.columns[i])
    }

    /// Positions of the tag columns, in schema order: the series key.
    pub fn tag_indices(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == ColumnKind::Tag)
            .map(|(i, _)| i)
            .collect()
    }

    /// Position of the time column (always 0).
    pub fn time_index(&self) -> usize {
        0
    }
}

/// Every database's tables, and each database's retention period.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    databases: BTreeMap<String, BTreeMap<String, Arc<TableSchema>>>,
    /// Databases that keep rows for a limited time; absent = forever.
    retention: BTreeMap<String, Duration>,
    /// The retention a database gets when a write or a `CREATE DATABASE`
    /// without one creates it ([`crate::Options::default_retention`]).
    default_retention: Option<Duration>,
    /// Counts the drops since open: a write resolved against an older count
    /// may name a table that is gone, and is resolved again before it commits.
    drops: u64,
    /// Continuous rollups, by (database, name).
    rollups: BTreeMap<(String, String), RollupDef>,
}

/// The persisted form of a catalog (inside the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CatalogSnapshot {
    pub databases: BTreeMap<String, BTreeMap<String, Vec<Column>>>,
    /// Retention periods in nanoseconds, by database; absent in manifests
    /// written before Ingot had retention.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retention_ns: BTreeMap<String, u64>,
    /// Continuous rollups and how far each has caught up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollups: Vec<RollupDef>,
}

impl Catalog {
    pub(crate) fn from_snapshot(s: &CatalogSnapshot) -> Self {
        let databases = s
            .databases
            .iter()
            .map(|(db, tables)| {
                let tables = tables
                    .iter()
                    .map(|(t, cols)| {
                        (
                            t.clone(),
                            Arc::new(TableSchema::from_columns(t, cols.clone())),
                        )
                    })
                    .collect();
                (db.clone(), tables)
            })
            .collect();
        let retention = s
            .retention_ns
            .iter()
            .map(|(db, ns)| (db.clone(), Duration::from_nanos(*ns)))
            .collect();
        let rollups = s
            .rollups
            .iter()
            .map(|r| ((r.database.clone(), r.name.clone()), r.clone()))
            .collect();
        Self {
            databases,
            retention,
            default_retention: None,
            drops: 0,
            rollups,
        }
    }

    pub(crate) fn snapshot(&self) -> CatalogSnapshot {
        CatalogSnapshot {
            databases: self
                .databases
                .iter()
                .map(|(db, tables)| {
                    (
                        db.clone(),
                        tables
                            .iter()
                            .map(|(t, s)| (t.clone(), s.columns.clone()))
                            .collect(),
                    )
                })
                .collect(),
            retention_ns: self
                .retention
                .iter()
                .map(|(db, d)| (db.clone(), u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
                .collect(),
            rollups: self.rollups.values().cloned().collect(),
        }
    }

    /// The rollup `name` of `database`, if there is one.
    pub(crate) fn rollup(&self, database: &str, name: &str) -> Option<&RollupDef> {
        self.rollups.get(&(database.to_string(), name.to_string()))
    }

    pub(crate) fn rollups(&self) -> Vec<RollupDef> {
        self.rollups.values().cloned().collect()
    }

    /// Names of the rollups of `database`.
    pub(crate) fn rollup_names(&self, database: &str) -> Vec<String> {
        self.rollups
            .keys()
            .filter(|(d, _)| d == database)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub(crate) fn add_rollup(&mut self, def: RollupDef) {
        self.ensure_database(&def.database);
        self.rollups
            .insert((def.database.clone(), def.name.clone()), def);
    }

    pub(crate) fn remove_rollup(&mut self, database: &str, name: &str) -> bool {
        self.rollups
            .remove(&(database.to_string(), name.to_string()))
            .is_some()
    }

    /// Records that every write to the rollup's source up to `seq` is in it.
    pub(crate) fn set_rollup_caught_up(&mut self, database: &str, name: &str, seq: u64) {
        if let Some(def) = self
            .rollups
            .get_mut(&(database.to_string(), name.to_string()))
        {
            def.caught_up_seq = def.caught_up_seq.max(seq);
        }
    }

    /// Sets the retention that databases created from now on get.
    pub(crate) fn set_default_retention(&mut self, retention: Option<Duration>) {
        self.default_retention = retention;
    }

    pub fn has_database(&self, database: &str) -> bool {
        self.databases.contains_key(database)
    }

    /// How long `database` keeps rows; `None` is forever. A database that
    /// does not exist yet would be created with the default period.
    pub fn retention(&self, database: &str) -> Option<Duration> {
        if self.databases.contains_key(database) {
            self.retention.get(database).copied()
        } else {
            self.default_retention
        }
    }

    /// Sets how long `database` keeps rows, creating it if need be.
    pub(crate) fn set_retention(&mut self, database: &str, retention: Option<Duration>) {
        self.databases.entry(database.to_string()).or_default();
        match retention {
            Some(d) => self.retention.insert(database.to_string(), d),
            None => self.retention.remove(database),
        };
    }

    /// How many drops this catalog has seen since open.
    pub(crate) fn drops(&self) -> u64 {
        self.drops
    }

    /// Removes `table` of `database`, or the whole database when `table` is
    /// `None` (with its retention period); false if there was nothing to
    /// remove.
    pub(crate) fn drop(&mut self, database: &str, table: Option<&str>) -> bool {
        let removed = match table {
            Some(table) => self
                .databases
                .get_mut(database)
                .is_some_and(|tables| tables.remove(table).is_some()),
            None => {
                self.retention.remove(database);
                self.rollups.retain(|(d, _), _| d != database);
                self.databases.remove(database).is_some()
            }
        };
        self.drops += 1;
        removed
    }

    pub fn database_names(&self) -> Vec<String> {
        self.databases.keys().cloned().collect()
    }

    pub fn table_names(&self, database: &str) -> Vec<String> {
        self.databases
            .get(database)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn table(&self, database: &str, table: &str) -> Option<Arc<TableSchema>> {
        self.databases.get(database)?.get(table).cloned()
    }

    /// Creates `database` if it does not exist, with the default retention.
    pub(crate) fn ensure_database(&mut self, database: &str) {
        if !self.databases.contains_key(database) {
            self.databases.insert(database.to_string(), BTreeMap::new());
            if let Some(d) = self.default_retention {
                self.retention.insert(database.to_string(), d);
            }
        }
    }

    /// [`Catalog::resolve`] for the batches of one write request.
    pub(crate) fn resolve_writes(
        &mut self,
        database: &str,
        writes: &[crate::write::TableWrite],
    ) -> Result<()> {
        let schemas: Vec<_> = writes
            .iter()
            .map(|w| (w.table.as_str(), w.batch.schema()))
            .collect();
        let refs: Vec<_> = schemas.iter().map(|(t, s)| (*t, s.as_ref())).collect();
        self.resolve(database, &refs)
    }

    /// Checks that every table write agrees with the catalog and adds what is
    /// new. All or nothing: on error the catalog is unchanged.
    pub(crate) fn resolve(&mut self, database: &str, writes: &[(&str, &Schema)]) -> Result<()> {
        let mut updated = Vec::new();
        for (table, schema) in writes {
            let existing = self.table(database, table);
            let base = existing
                .clone()
                .unwrap_or_else(|| Arc::new(TableSchema::new(table)));
            let mut added: Vec<Column> = Vec::new();
            for field in schema.fields() {
                let kind = kind_of_normalized(field)?;
                let known = base
                    .column(field.name())
                    .or_else(|| added.iter().find(|c| c.name == *field.name()));
                match known {
                    Some(c) if c.kind == kind => {}
                    Some(c) => {
                        return Err(Error::TypeConflict {
                            table: table.to_string(),
                            column: field.name().clone(),
                            existing: c.kind.describe(),
                            incoming: kind.describe(),
                            line: None,
                        });
                    }
                    None => added.push(Column {
                        name: field.name().clone(),
                        kind,
                    }),
                }
            }
            if existing.is_none() || !added.is_empty() {
                let mut columns = base.columns.clone();
                columns.extend(added);
                updated.push((table.to_string(), columns));
            }
        }
        self.ensure_database(database);
        let tables = self.databases.entry(database.to_string()).or_default();
        for (table, columns) in updated {
            let schema = Arc::new(TableSchema::from_columns(&table, columns));
            tables.insert(table, schema);
        }
        Ok(())
    }
}

/// The role of a column of a batch that [`crate::write`] has normalized
/// (it always carries `ingot.kind` metadata and a canonical type).
pub(crate) fn kind_of_normalized(field: &Field) -> Result<ColumnKind> {
    match field.metadata().get(KIND_METADATA_KEY).map(String::as_str) {
        Some("time") => Ok(ColumnKind::Time),
        Some("tag") => Ok(ColumnKind::Tag),
        Some("field") => {
            let t = match field.data_type() {
                DataType::Float64 => FieldType::Float,
                DataType::Int64 => FieldType::Integer,
                DataType::UInt64 => FieldType::UInteger,
                DataType::Boolean => FieldType::Boolean,
                DataType::Utf8 => FieldType::String,
                other => {
                    return Err(Error::Internal(format!(
                        "normalized field {} has type {other}",
                        field.name()
                    )));
                }
            };
            Ok(ColumnKind::Field(t))
        }
        other => Err(Error::Internal(format!(
            "normalized column {} has kind {other:?}",
            field.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(cols: &[(&str, ColumnKind)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, k)| arrow_field(n, *k))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn evolves_and_rejects_conflicts_atomically() {
        let mut c = Catalog::default();
        let s1 = schema(&[
            ("time", ColumnKind::Time),
            ("plant", ColumnKind::Tag),
            ("t", ColumnKind::Field(FieldType::Float)),
        ]);
        c.resolve("public", &[("readings", &s1)]).unwrap();
        let s2 = schema(&[
            ("time", ColumnKind::Time),
            ("rpm", ColumnKind::Field(FieldType::Integer)),
        ]);
        c.resolve("public", &[("readings", &s2)]).unwrap();
        let t = c.table("public", "readings").unwrap();
        let names: Vec<_> = t.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["time", "plant", "t", "rpm"]);

        // One good table and one conflicting: nothing changes.
        let s3 = schema(&[("time", ColumnKind::Time), ("x", ColumnKind::Tag)]);
        let bad = schema(&[
            ("time", ColumnKind::Time),
            ("t", ColumnKind::Field(FieldType::Integer)),
        ]);
        let err = c
            .resolve("public", &[("other", &s3), ("readings", &bad)])
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"readings\"") && msg.contains("\"t\""),
            "{msg}"
        );
        assert!(msg.contains("float") && msg.contains("integer"), "{msg}");
        assert!(c.table("public", "other").is_none());
    }
}
