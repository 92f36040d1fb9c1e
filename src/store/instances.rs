//! PostgreSQL: connecting, migrating, and what lets several instances share one store.
//!
//! Each store session holds a session advisory lock of its own (class [`CLAIM_CLASS`],
//! a random key), and its claim token names that key: a claim is live exactly while
//! the lock is held, and PostgreSQL drops the lock when the session ends, however the
//! process died. A dead instance's rows are therefore taken over by whoever looks next,
//! with no timeout to tune and no clock to trust. The leader (the one instance that
//! gathers and makes editions) is whoever holds the advisory lock [`LEADER_CLASS`].

use std::path::PathBuf;
use std::time::Duration;

use super::db::{Conn, DbError, PgConn};
use super::{config, params, Result, Store, StoreError, MIGRATIONS};

/// Advisory lock class of the claim locks (ASCII "GZc1").
pub(super) const CLAIM_CLASS: i64 = 0x475a_6331;
/// Advisory lock class of the leader lock (ASCII "GZl1"), key 1.
const LEADER_CLASS: i64 = 0x475a_6c31;
/// Advisory lock class serialising migrations (ASCII "GZm1"), key 1.
const MIGRATE_CLASS: i64 = 0x475a_6d31;

/// PostgreSQL migrations as (schema version reached, SQL). A new database gets the
/// schema SQLite's first eight migrations build, in one step; each later version is
/// added here and to SQLite's list under the same number.
const PG_MIGRATIONS: &[(i64, &str)] = &[
    (8, include_str!("pg/schema8.sql")),
    (9, include_str!("pg/schema9.sql")),
];

/// This session's claim token and the lock behind it.
pub(super) struct Session {
    token: String,
}

impl Session {
    /// The claim token, `pg:<key>`.
    pub(super) fn token(&self) -> &str {
        &self.token
    }
}

fn tls_config(pg: &config::PgState) -> std::result::Result<rustls::ClientConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &pg.ca_pem {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("`state.ca_file` is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("`state.ca_file` holds a bad certificate: {e}"))?;
            }
            Ok(rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            rustls::ClientConfig::with_platform_verifier()
                .map_err(|e| format!("cannot load the system's root certificates: {e}"))
        }
    }
}

/// Why a connection failed, with what to check.
fn connect_reason(e: &DbError) -> String {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let hint = if lower.contains("password") || lower.contains("authentication") {
        "check the user and `state.password_env` / `state.password_file`"
    } else if lower.contains("does not exist") {
        "create the database (createdb) or fix the URL"
    } else if lower.contains("refused")
        || lower.contains("timed out")
        || lower.contains("error connecting")
    {
        "is PostgreSQL running and listening at that host and port?"
    } else if lower.contains("tls") || lower.contains("ssl") || lower.contains("certificate") {
        "check `state.tls` and `state.ca_file`"
    } else {
        "check the URL and the server's log"
    };
    format!("{text}; {hint}")
}

impl Store {
    /// Opens a session on a PostgreSQL store and brings its schema up to date.
    pub fn open_pg(pg: &config::PgState) -> Result<Store> {
        let failed = |reason: String| StoreError::Connect {
            url: pg.url.clone(),
            reason,
        };
        let mut cfg: postgres::Config = pg
            .url
            .parse()
            .map_err(|e: postgres::Error| failed(e.to_string()))?;
        if let Some(p) = &pg.password {
            cfg.password(p.expose());
        }
        cfg.application_name("gazette")
            .connect_timeout(Duration::from_secs(10))
            // A peer that vanished without closing (a cut cable) is noticed in ~1 min.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        use postgres::config::SslMode;
        cfg.ssl_mode(match pg.tls {
            config::PgTls::Off => SslMode::Disable,
            config::PgTls::Prefer => SslMode::Prefer,
            config::PgTls::Require => SslMode::Require,
        });
        let conn = match pg.tls {
            config::PgTls::Off => PgConn::connect(cfg, postgres::NoTls),
            _ => {
                let tls = tls_config(pg).map_err(failed)?;
                PgConn::connect(cfg, tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        }
        .map_err(|e| failed(connect_reason(&e)))?;
        let mut store = Store::wrap(Conn::Pg(conn));
        store.migrate_pg(&pg.url)?;
        store.session = Some(store.start_session()?);
        Ok(store)
    }

    fn migrate_pg(&mut self, url: &str) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let tx = self.conn.transaction()?;
        // Two instances starting on a new database must not both create it.
        tx.query_row(
            "SELECT pg_advisory_xact_lock(?1, 1)::text",
            params![MIGRATE_CLASS],
            |_| Ok(()),
        )?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS gazette_schema (version BIGINT NOT NULL)")?;
        let version: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM gazette_schema",
            params![],
            |r| r.get(0),
        )?;
        if version > known {
            return Err(StoreError::TooNew {
                path: PathBuf::from(url),
                found: version,
                known,
            });
        }
        let mut reached = version;
        for (to, sql) in PG_MIGRATIONS {
            if *to > reached {
                tx.execute_batch(sql)?;
                reached = *to;
            }
        }
        if reached != version {
            tx.execute("DELETE FROM gazette_schema", params![])?;
            tx.execute(
                "INSERT INTO gazette_schema (version) VALUES (?1)",
                params![reached],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes this session's claim lock under a fresh random key.
    fn start_session(&self) -> Result<Session> {
        loop {
            let key = i64::from(fastrand::u32(1..i32::MAX as u32));
            let got: bool = self.conn.query_row(
                "SELECT pg_try_advisory_lock(CAST(?1 AS INTEGER), CAST(?2 AS INTEGER))",
                params![CLAIM_CLASS, key],
                |r| r.get(0),
            )?;
            if got {
                return Ok(Session {
                    token: format!("pg:{key}"),
                });
            }
        }
    }

    /// The claim token this store's rows are marked with: `fallback` (the process's)
    /// on SQLite, the session's on PostgreSQL.
    pub(super) fn claim_token<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.session.as_ref().map_or(fallback, Session::token)
    }

    /// Whether the session behind a `pg:` claim token is gone (its lock is free). A
    /// failed check counts as alive: a row is never taken over on a guess.
    pub(super) fn pg_claim_dead(&self, token: &str) -> bool {
        if self.session.is_none() {
            // A store copied from PostgreSQL: none of those sessions is ours.
            return true;
        }
        let Some(key) = token
            .strip_prefix("pg:")
            .and_then(|k| k.parse::<i64>().ok())
        else {
            return true;
        };
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 2",
                params![CLAIM_CLASS, key],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n == 0)
    }

    /// Tries to become the instance that gathers and makes editions. Always true on
    /// SQLite (one daemon per file, kept so by its lock file); on PostgreSQL, true for
    /// the one session holding the leader lock, released when that session ends.
    pub fn try_lead(&self) -> Result<bool> {
        if self.session.is_none() {
            return Ok(true);
        }
        Ok(self.conn.query_row(
            "SELECT pg_try_advisory_lock(CAST(?1 AS INTEGER), 1)",
            params![LEADER_CLASS],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_and_sqlite_schemas_reach_the_same_version() {
        assert_eq!(
            super::PG_MIGRATIONS.last().map(|m| m.0),
            Some(super::MIGRATIONS.len() as i64)
        );
    }
}
