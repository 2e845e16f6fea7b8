//! The PostgreSQL rows' database: a throwaway database created on the server `--postgres`
//! names (an admin URL such as `postgresql://csc@127.0.0.1:54329/postgres`) for one run and
//! dropped at its end, also when the run fails.

use anyhow::Context;
use diesel::{Connection, PgConnection, RunQueryDsl};

/// A database of this run, dropped (`WITH (FORCE)`: its sessions are ended) on drop.
pub struct Throwaway {
    admin: String,
    name: String,
    /// The URL of the database itself (the admin URL with its database name replaced).
    pub url: String,
}

impl Throwaway {
    /// `CREATE DATABASE csc_bench_<random>` through `admin`.
    pub fn create(admin: &str) -> anyhow::Result<Throwaway> {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
        let name = format!("csc_bench_{}", hex::encode(b));
        let url = database_url(admin, &name)?;
        let mut conn = PgConnection::establish(admin).with_context(|| {
            format!("cannot connect to PostgreSQL at {}", sam::redact_url(admin))
        })?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .with_context(|| format!("cannot create the database {name}"))?;
        Ok(Throwaway {
            admin: admin.to_owned(),
            name,
            url,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.admin).map(|mut conn| {
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
        });
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!(
                "csc-bench: could not drop the database {} (drop it by hand)",
                self.name
            );
        }
    }
}

/// `admin` with its database name (the last path segment, before any `?query`) replaced by
/// `name`.
fn database_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let (scheme, rest) = base
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgresql" | "postgres"))
        .context("--postgres takes a postgresql:// URL")?;
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    Ok(format!(
        "{scheme}://{host}/{name}{}",
        query.map(|q| format!("?{q}")).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            database_url("postgresql://csc@127.0.0.1:55432/postgres", "b").unwrap(),
            "postgresql://csc@127.0.0.1:55432/b"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=disable", "b").unwrap(),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            database_url("postgresql://h:1", "b").unwrap(),
            "postgresql://h:1/b"
        );
        assert!(database_url("sqlite://x.db", "b").is_err());
    }
}
