//! One database connection, SQLite or PostgreSQL, behind one small API shaped like
//! rusqlite's (`execute`, `query_row`, `query_map`, `prepare_cached`, transactions), so
//! the store's queries are written once.
//!
//! The SQL is the dialect both accept (`ON CONFLICT … DO NOTHING`, `RETURNING`,
//! `COUNT(*) FILTER (WHERE …)`, `CASE` for scalar max); for PostgreSQL, [`pg_sql`]
//! rewrites the few spellings that differ (`?1` → `$1`, `instr` → `strpos`,
//! `group_concat` → `string_agg`). Values cross as [`Value`]: integers, text, reals,
//! blobs and NULL, which is all the store keeps.
//!
//! The PostgreSQL client is the synchronous `postgres` crate, run on a thread of its
//! own: it drives its own small tokio runtime and must never be entered from inside the
//! daemon's (the store is called from async code, as rusqlite is).

mod pg;
use pg::Job;
pub use pg::PgConn;

/// One value going into or coming out of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer (booleans are 0 and 1).
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A query failed, on either backend.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said so.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL (or the connection to it) said so. (Not a `source`: its message is
    /// already in this one, and error chains would print it twice.)
    #[error("{}", pg_plain(.0))]
    Pg(postgres::Error),
    /// A query that must return a row returned none.
    #[error("the query returned no rows")]
    NoRows,
    /// A column held another type than the store expects.
    #[error("column {index} holds {found}, expected {wanted}")]
    Type {
        /// Column index.
        index: usize,
        /// What the store reads.
        wanted: &'static str,
        /// What the database holds.
        found: &'static str,
    },
    /// The connection's thread is gone (its server closed the connection).
    #[error("the connection to PostgreSQL is closed")]
    Closed,
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Pg(e)
    }
}

/// The result of one database call.
pub type DbResult<T> = std::result::Result<T, DbError>;

/// PostgreSQL's own message, with its detail, in one line.
fn pg_plain(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

/// Anything the store binds as a parameter.
pub trait ToValue {
    /// This value as a [`Value`].
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// A query's parameters: `params![…]`, an array of one type, or none (`[]`).
pub trait Params {
    /// The parameters as values.
    fn values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for [&dyn ToValue; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}
macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue> Params for &[T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8);

/// Parameters of mixed types, as rusqlite's `params!`.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::db::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue]
    };
}
pub(crate) use params;

/// A column index (rusqlite-style `r.get(0)`; an untyped literal is an `i32`).
pub trait RowIndex {
    /// As a position.
    fn index(self) -> usize;
}
impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}
impl RowIndex for i32 {
    fn index(self) -> usize {
        usize::try_from(self).unwrap_or(usize::MAX)
    }
}

/// A type a column can be read as.
pub trait FromValue: Sized {
    /// Reads column `index`.
    fn from_value(v: &Value, index: usize) -> DbResult<Self>;
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

fn mismatch<T>(v: &Value, index: usize, wanted: &'static str) -> DbResult<T> {
    Err(DbError::Type {
        index,
        wanted,
        found: kind(v),
    })
}

impl FromValue for i64 {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => mismatch(v, index, "an integer"),
        }
    }
}
impl FromValue for usize {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Int(i) => Ok(usize::try_from(*i).unwrap_or(0)),
            _ => mismatch(v, index, "an integer"),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => mismatch(v, index, "a boolean"),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            _ => mismatch(v, index, "a real"),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => mismatch(v, index, "text"),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => mismatch(v, index, "a blob"),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: &Value, _: usize) -> DbResult<Self> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value, index: usize) -> DbResult<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v, index).map(Some),
        }
    }
}

/// One result row.
pub struct Row<'a> {
    values: &'a [Value],
}

impl Row<'_> {
    /// Column `i` as a `T` (`get::<_, T>(i)` as in rusqlite).
    pub fn get<I: RowIndex, T: FromValue>(&self, i: I) -> DbResult<T> {
        let i = i.index();
        T::from_value(self.values.get(i).unwrap_or(&Value::Null), i)
    }
}

/// What a query returned: its column names and rows.
#[derive(Debug, Default)]
pub struct Answer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows of values.
    pub rows: Vec<Vec<Value>>,
    /// Rows changed, for statements.
    pub affected: u64,
}

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// One connection.
pub enum Conn {
    /// SQLite through rusqlite.
    Sqlite(rusqlite::Connection),
    /// PostgreSQL through a client on its own thread.
    Pg(PgConn),
}

/// A statement bound to its connection, as rusqlite's cached statements are used.
pub struct Stmt<'c> {
    conn: &'c Conn,
    sql: String,
}

impl Stmt<'_> {
    /// Runs it; the number of rows changed.
    pub fn execute<P: Params>(&mut self, p: P) -> DbResult<usize> {
        self.conn.execute(&self.sql, p)
    }

    /// Its rows, each mapped by `f`.
    pub fn query_map<T, P: Params, F: FnMut(&Row<'_>) -> DbResult<T>>(
        &mut self,
        p: P,
        f: F,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        self.conn.query_map(&self.sql, p, f)
    }

    /// Its one row, mapped by `f`.
    pub fn query_row<T, P: Params, F: FnOnce(&Row<'_>) -> DbResult<T>>(
        &mut self,
        p: P,
        f: F,
    ) -> DbResult<T> {
        self.conn.query_row(&self.sql, p, f)
    }
}

/// `.optional()` on a single-row query, as rusqlite's `OptionalExtension`.
pub trait OptionalExtension<T> {
    /// `None` instead of [`DbError::NoRows`].
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as R;
    match v {
        R::Null => Value::Null,
        R::Integer(i) => Value::Int(i),
        R::Real(f) => Value::Real(f),
        R::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        R::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl Conn {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Pg(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backups).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    fn run(&self, sql: &str, params: Vec<Value>, want_rows: bool) -> DbResult<Answer> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                if !want_rows {
                    let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
                    return Ok(Answer {
                        affected: n as u64,
                        ..Answer::default()
                    });
                }
                let columns: Vec<String> =
                    stmt.column_names().into_iter().map(str::to_owned).collect();
                let width = columns.len();
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut vals = Vec::with_capacity(width);
                    for i in 0..width {
                        vals.push(sqlite_value(r.get_ref(i)?));
                    }
                    out.push(vals);
                }
                Ok(Answer {
                    columns,
                    rows: out,
                    affected: 0,
                })
            }
            Conn::Pg(p) => p.call(Job::Query {
                sql: sql.to_owned(),
                params,
                want_rows,
            }),
        }
    }

    /// Runs one statement; the number of rows changed.
    pub fn execute<P: Params>(&self, sql: &str, p: P) -> DbResult<usize> {
        let a = self.run(sql, p.values(), false)?;
        Ok(usize::try_from(a.affected).unwrap_or(usize::MAX))
    }

    /// Runs a query and returns its column names and rows.
    pub fn query_all<P: Params>(&self, sql: &str, p: P) -> DbResult<Answer> {
        self.run(sql, p.values(), true)
    }

    /// A query's rows, each mapped by `f` (read whole: the store's queries are bounded).
    pub fn query_map<T, P: Params, F: FnMut(&Row<'_>) -> DbResult<T>>(
        &self,
        sql: &str,
        p: P,
        mut f: F,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        let a = self.run(sql, p.values(), true)?;
        let out: Vec<DbResult<T>> = a.rows.iter().map(|r| f(&Row { values: r })).collect();
        Ok(out.into_iter())
    }

    /// A query's first row mapped by `f`; [`DbError::NoRows`] if there is none.
    pub fn query_row<T, P: Params, F: FnOnce(&Row<'_>) -> DbResult<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> DbResult<T> {
        let a = self.run(sql, p.values(), true)?;
        match a.rows.first() {
            Some(r) => f(&Row { values: r }),
            None => Err(DbError::NoRows),
        }
    }

    /// A statement to run more than once (prepared and cached by the backend).
    pub fn prepare_cached(&self, sql: &str) -> DbResult<Stmt<'_>> {
        Ok(Stmt {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// Runs several statements with no parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(p) => p.call(Job::Batch(sql.to_owned())).map(drop),
        }
    }

    /// Begins a write transaction (SQLite: `IMMEDIATE`, so the write lock is taken at
    /// once and a busy database is waited for here, not at the first write).
    pub fn transaction(&mut self) -> DbResult<Tx<'_>> {
        self.execute_batch(match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })?;
        Ok(Tx {
            conn: self,
            done: false,
        })
    }
}

/// An open transaction; rolled back when dropped without [`Tx::commit`].
pub struct Tx<'c> {
    conn: &'c mut Conn,
    done: bool,
}

impl Tx<'_> {
    /// Commits it.
    pub fn commit(mut self) -> DbResult<()> {
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The error (if any) was already returned; a failed rollback leaves nothing
            // committed either way.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The store's SQL in PostgreSQL's spelling: `?N` → `$N`, and SQLite's names of two
/// string functions. Text inside quotes is left alone.
pub fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => out.push('$'),
            _ => {
                let rest = &sql[i..];
                let word_start = i == 0
                    || !sql[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|p| p.is_alphanumeric() || p == '_');
                let swap = [("instr(", "strpos("), ("group_concat(", "string_agg(")];
                if let Some((from, to)) = swap.iter().find(|(from, _)| {
                    word_start
                        && rest.len() >= from.len()
                        && rest[..from.len()].eq_ignore_ascii_case(from)
                }) {
                    out.push_str(to);
                    for _ in 1..from.len() {
                        chars.next();
                    }
                } else {
                    out.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pg_sql;

    #[test]
    fn placeholders_and_sqlite_function_names_are_rewritten_outside_quotes() {
        assert_eq!(
            pg_sql("SELECT instr(a, ?2), 'x?1 instr(' FROM t WHERE b = ?10"),
            "SELECT strpos(a, $2), 'x?1 instr(' FROM t WHERE b = $10"
        );
        assert_eq!(
            pg_sql("SELECT group_concat(d, ';'), myinstr(x)"),
            "SELECT string_agg(d, ';'), myinstr(x)"
        );
    }
}
