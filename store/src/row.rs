//! One result row, read the same way from either SQL backend, so that a
//! record's mapping from its columns is written once (blocks, broadcasts,
//! attempts, webhook deliveries), not once per backend. Columns are read by
//! position: each mapping comes with the column list its queries select.

use nexus_core::decode::BlockRef;

use crate::codec::Codec;
use crate::{BlockRecord, StoreError};

/// The column reads the mappings need; each failure is the backend's
/// error (`corrupt` where a value does not fit).
pub(crate) trait Row {
    fn codec(&self) -> Codec;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError>;

    /// An integer column that must hold a `u64`.
    fn uint(&self, i: usize) -> Result<u64, StoreError> {
        self.codec().read_int(self.int(i)?)
    }

    /// An integer column that must hold a `u32` (attempt counts).
    fn small(&self, i: usize) -> Result<u32, StoreError> {
        u32::try_from(self.int(i)?).map_err(|e| StoreError::corrupt(self.codec().0, e))
    }
}

impl Row for sqlx::postgres::PgRow {
    fn codec(&self) -> Codec {
        Codec(crate::postgres::BACKEND)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        sqlx::Row::try_get(self, i).map_err(crate::postgres::pg_err)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        sqlx::Row::try_get(self, i).map_err(crate::postgres::pg_err)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| {
            StoreError::corrupt(crate::postgres::BACKEND, format!("column {i} is NULL"))
        })
    }
    /// `BIGINT` or `INTEGER`: sqlx decodes each only as its own width, so
    /// the column's type picks the decoder (no failed decode per row).
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        use sqlx::{Column, TypeInfo};
        let int4 = sqlx::Row::columns(self)
            .get(i)
            .is_some_and(|c| c.type_info().name() == "INT4");
        if int4 {
            sqlx::Row::try_get::<Option<i32>, _>(self, i).map(|v| v.map(i64::from))
        } else {
            sqlx::Row::try_get::<Option<i64>, _>(self, i)
        }
        .map_err(crate::postgres::pg_err)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        sqlx::Row::try_get(self, i).map_err(crate::postgres::pg_err)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        sqlx::Row::try_get(self, i).map_err(crate::postgres::pg_err)
    }
}

impl Row for rusqlite::Row<'_> {
    fn codec(&self) -> Codec {
        Codec(crate::sqlite::BACKEND)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.get(i).map_err(crate::sqlite::sq_err)
    }
}

/// Columns read by [`block`], in its order (unqualified, so they also work
/// with the alias `b`).
pub(crate) const BLOCK_COLS: &str =
    "index_block_hash, parent_index_block_hash, block_hash, height, \
     burn_height, burn_hash, time, canonical";

/// A `blocks` row selected as [`BLOCK_COLS`].
pub(crate) fn block(r: &impl Row) -> Result<BlockRecord, StoreError> {
    Ok(BlockRecord {
        block: BlockRef {
            index_block_hash: r.text(0)?,
            parent_index_block_hash: r.text(1)?,
            block_hash: r.text(2)?,
            height: r.uint(3)?,
            burn_height: r.uint(4)?,
            burn_hash: r.text(5)?,
            time: r.uint(6)?,
        },
        canonical: r.flag(7)?,
    })
}
