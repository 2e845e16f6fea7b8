//! What the operator's monitoring reads from the database: a bounded readiness round trip
//! (`GET /ready`) and the live SAD and token counts (`GET /metrics`), each one cheap query.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::connection::{Conn, Store};
use crate::error::StorageError;

/// SADs and service tokens that could still be used now: not revoked, not expired (and, for a
/// SAD, with signatures left).
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
        let sads = s::sads
            .filter(s::revoked.eq(false))
            .filter(s::remaining.gt(0))
            .filter(s::expires_at.gt(now))
            .count()
            .get_result(c)?;
        let tokens = |kind: &str, c: &mut _| -> Result<i64, StorageError> {
            Ok(t::auth_tokens
                .filter(t::kind.eq(kind))
                .filter(t::revoked.eq(false))
                .filter(t::expires_at.gt(now))
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
