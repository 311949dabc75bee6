//! Rows of another component's table, committed in the same transaction as
//! a history commit ([`CommitBatch::attached`](super::CommitBatch)).
//!
//! The relay uses it to write a broadcast schedule in the very transaction
//! that records the payments it creates: one commit (one fsync) instead of
//! two, and no moment where one is durable without the other. The indexer
//! knows nothing about those tables: the rows say which table and columns
//! they go to, as plain values, and every history backend inserts them
//! ("insert if absent": a row whose unique key exists is skipped, as an
//! `ON CONFLICT DO NOTHING` insert does).
//!
//! Table and column names are `&'static str` constants of the owning
//! component (never input) and are checked to be plain identifiers before
//! they reach SQL; values are always bound.

use super::StoreError;

/// One column's values, typed as both backends bind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedValues {
    /// `TEXT` (nullable).
    Text(Vec<Option<String>>),
    /// `BIGINT` / SQLite `INTEGER`.
    BigInt(Vec<i64>),
    /// `BYTEA` / SQLite `BLOB`.
    Bytes(Vec<Vec<u8>>),
}

impl AttachedValues {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::BigInt(v) => v.len(),
            Self::Bytes(v) => v.len(),
        }
    }

    /// No values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn retain_mask(&mut self, keep: &[bool]) {
        fn filter<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        match self {
            Self::Text(v) => filter(v, keep),
            Self::BigInt(v) => filter(v, keep),
            Self::Bytes(v) => filter(v, keep),
        }
    }
}

/// Rows for one table, column by column (what PostgreSQL's `UNNEST` binds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedRows {
    /// The table, a constant of the component that owns it.
    pub table: &'static str,
    /// `(column, values)`; every column holds one value per row.
    pub columns: Vec<(&'static str, AttachedValues)>,
}

impl AttachedRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep the rows whose `keep` entry is true (one entry per row).
    pub fn retain_rows(&mut self, keep: &[bool]) {
        assert_eq!(keep.len(), self.len(), "one keep flag per attached row");
        for (_, v) in &mut self.columns {
            v.retain_mask(keep);
        }
    }

    /// Refuse names that are not plain identifiers and ragged columns, before
    /// any of it reaches SQL.
    pub fn check(&self, backend: &'static str) -> Result<(), StoreError> {
        let ident = |s: &str| {
            !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !ident(self.table) {
            return Err(StoreError::rejected(
                backend,
                format!("attached rows: bad table name {:?}", self.table),
            ));
        }
        if self.columns.is_empty() {
            return Err(StoreError::rejected(backend, "attached rows: no columns"));
        }
        let n = self.len();
        for (name, values) in &self.columns {
            if !ident(name) {
                return Err(StoreError::rejected(
                    backend,
                    format!("attached rows: bad column name {name:?}"),
                ));
            }
            if values.len() != n {
                return Err(StoreError::rejected(
                    backend,
                    format!(
                        "attached rows of {}: column {name} has {} values, not {n}",
                        self.table,
                        values.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The column list, `a, b, c`.
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> AttachedRows {
        AttachedRows {
            table: "t",
            columns: vec![
                ("a", AttachedValues::BigInt(vec![1, 2, 3])),
                (
                    "b",
                    AttachedValues::Text(vec![Some("x".into()), None, Some("z".into())]),
                ),
                ("c", AttachedValues::Bytes(vec![vec![1], vec![2], vec![3]])),
            ],
        }
    }

    #[test]
    fn retain_keeps_rows_aligned() {
        let mut r = rows();
        r.retain_rows(&[true, false, true]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.columns[0].1, AttachedValues::BigInt(vec![1, 3]));
        assert_eq!(
            r.columns[1].1,
            AttachedValues::Text(vec![Some("x".into()), Some("z".into())])
        );
        assert_eq!(
            r.columns[2].1,
            AttachedValues::Bytes(vec![vec![1], vec![3]])
        );
        assert!(r.check("test").is_ok());
    }

    #[test]
    fn names_and_shapes_are_checked() {
        let mut bad = rows();
        bad.table = "t; DROP TABLE payments";
        assert!(bad.check("test").is_err());
        let mut bad = rows();
        bad.columns[1].0 = "b)";
        assert!(bad.check("test").is_err());
        let mut ragged = rows();
        ragged.columns[0].1 = AttachedValues::BigInt(vec![1]);
        assert!(ragged.check("test").is_err());
    }
}
