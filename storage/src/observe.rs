//! What the operator's monitoring reads from the database: a bounded readiness round trip
//! (`GET /ready`) and the live SAD and token counts (`GET /metrics`), each one cheap query.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::connection::{Conn, Store};
use crate::error::StorageError;
use crate::models::{sad_usable_sql, token_active_sql};

/// SADs and service tokens that could still be used now: not revoked, not expired (and, for a
/// SAD, with signatures left): [`crate::Sad::is_usable`], [`crate::Token::is_active`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub sads: i64,
    pub access_tokens: i64,
    pub refresh_tokens: i64,
}

impl Store {
    /// One round trip to the database on a pooled connection, waiting at most `wait` for one
    /// (a database that accepts no connection fails within `wait`, not the pool's 30 s).
    /// BLOCKING.
    pub fn ping(&self, wait: Duration) -> Result<(), StorageError> {
        let mut pooled = self.pool_get(wait)?;
        pooled.batch_execute("SELECT 1")?;
        Ok(())
    }
}

impl Conn<'_> {
    /// [`LiveCounts`] at `now`: three `count(*)` over the rows not yet purged.
    pub fn live_counts(&mut self, now: NaiveDateTime) -> Result<LiveCounts, StorageError> {
        use crate::schema::auth_tokens::dsl as t;
        use crate::schema::sads::dsl as s;
        let c = &mut *self.conn;
        let sads = s::sads.filter(sad_usable_sql(now)).count().get_result(c)?;
        let tokens = |kind: &str, c: &mut _| -> Result<i64, StorageError> {
            Ok(t::auth_tokens
                .filter(t::kind.eq(kind))
                .filter(token_active_sql(now))
                .count()
                .get_result(c)?)
        };
        Ok(LiveCounts {
            sads,
            access_tokens: tokens("access", c)?,
            refresh_tokens: tokens("refresh", c)?,
        })
    }
}
