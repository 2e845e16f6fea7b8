//! What the SAM's integration tests share: a fresh PostgreSQL database per test.

#![allow(dead_code)]

/// The environment variable naming the PostgreSQL server of the tests (an admin URL).
pub const PG_ENV: &str = "CSC_TEST_POSTGRES_URL";

/// A fresh PostgreSQL database, dropped afterwards.
pub struct PgDb {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PgDb {
    /// Creates it on the server named by [`PG_ENV`].
    pub fn create() -> PgDb {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
            panic!(
                "{PG_ENV} is not set. These tests need a PostgreSQL server: start a server (e.g. initdb -A trust -U csc; pg_ctl -o '-p 54329 -c \
                 listen_addresses=127.0.0.1' start) and export \
                 {PG_ENV}=postgresql://csc@127.0.0.1:54329/postgres (an account that may \
                 CREATE DATABASE)"
            )
        });
        let name = format!("csc_sam_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("CREATE DATABASE");
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b.to_owned(), format!("?{q}")),
            None => (admin_url.clone(), String::new()),
        };
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[after_scheme..]
            .find('/')
            .map_or(base.len(), |i| after_scheme + i);
        let url = format!("{}/{name}{query}", &base[..host_end]);
        PgDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}
