//! The PostgreSQL side of [`super::Conn`]: a client on a thread of its own, statements
//! prepared once per session, and values converted to and from PostgreSQL's types.

use std::collections::HashMap;
use std::sync::mpsc;

use postgres::types::{ToSql, Type};

use super::{pg_sql, Answer, DbError, DbResult, Value};

pub(super) enum Job {
    Query {
        sql: String,
        params: Vec<Value>,
        want_rows: bool,
    },
    Batch(String),
}

type Reply = mpsc::SyncSender<DbResult<Answer>>;

/// A PostgreSQL connection owned by a thread of its own; calls wait for its answer.
pub struct PgConn {
    jobs: Option<mpsc::Sender<(Job, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PgConn {
    /// Connects with `config` and `tls` (on the connection's thread).
    pub fn connect<T>(config: postgres::Config, tls: T) -> DbResult<PgConn>
    where
        T: postgres::tls::MakeTlsConnect<postgres::Socket> + Send + 'static,
        T::TlsConnect: Send,
        T::Stream: Send,
        <T::TlsConnect as postgres::tls::TlsConnect<postgres::Socket>>::Future: Send,
    {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::channel::<(Job, Reply)>();
        let thread = std::thread::Builder::new()
            .name("gazette-pg".into())
            .spawn(move || {
                let mut client = match config.connect(tls) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(DbError::Pg(e)));
                        return;
                    }
                };
                let mut cache: HashMap<String, postgres::Statement> = HashMap::new();
                while let Ok((job, reply)) = jobs_rx.recv() {
                    let answer = serve(&mut client, &mut cache, job);
                    let _ = reply.send(answer);
                }
            })
            .map_err(|_| DbError::Closed)?;
        ready_rx.recv().map_err(|_| DbError::Closed)??;
        Ok(PgConn {
            jobs: Some(jobs_tx),
            thread: Some(thread),
        })
    }

    pub(super) fn call(&self, job: Job) -> DbResult<Answer> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or(DbError::Closed)?
            .send((job, tx))
            .map_err(|_| DbError::Closed)?;
        rx.recv().map_err(|_| DbError::Closed)?
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the session (and with it any
        // advisory lock it held).
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    client: &mut postgres::Client,
    cache: &mut HashMap<String, postgres::Statement>,
    job: Job,
) -> DbResult<Answer> {
    let (sql, params, want_rows) = match job {
        Job::Batch(sql) => {
            client.batch_execute(&sql)?;
            return Ok(Answer::default());
        }
        Job::Query {
            sql,
            params,
            want_rows,
        } => (sql, params, want_rows),
    };
    let stmt = match cache.get(&sql) {
        Some(s) => s.clone(),
        None => {
            let s = client.prepare(&pg_sql(&sql))?;
            cache.insert(sql, s.clone());
            s
        }
    };
    let bound: Vec<Box<dyn ToSql + Sync>> = params
        .iter()
        .zip(stmt.params())
        .map(|(v, ty)| bind(v, ty))
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
    if !want_rows {
        let n = client.execute(&stmt, &refs)?;
        return Ok(Answer {
            affected: n,
            ..Answer::default()
        });
    }
    let rows = client.query(&stmt, &refs)?;
    let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut vals = Vec::with_capacity(columns.len());
        for (i, col) in stmt.columns().iter().enumerate() {
            vals.push(read(row, i, col.type_())?);
        }
        out.push(vals);
    }
    Ok(Answer {
        columns,
        rows: out,
        affected: 0,
    })
}

/// A value as the parameter type PostgreSQL inferred for its place.
fn bind(v: &Value, ty: &Type) -> Box<dyn ToSql + Sync> {
    let int = |i: i64| -> Box<dyn ToSql + Sync> {
        match *ty {
            Type::INT8 => Box::new(i),
            Type::INT4 => Box::new(i32::try_from(i).unwrap_or(i32::MAX)),
            Type::INT2 => Box::new(i16::try_from(i).unwrap_or(i16::MAX)),
            Type::BOOL => Box::new(i != 0),
            Type::FLOAT8 => Box::new(i as f64),
            Type::OID => Box::new(u32::try_from(i).unwrap_or(0)),
            _ => Box::new(i.to_string()),
        }
    };
    match v {
        Value::Null => match *ty {
            Type::INT8 => Box::new(None::<i64>),
            Type::INT4 => Box::new(None::<i32>),
            Type::INT2 => Box::new(None::<i16>),
            Type::BOOL => Box::new(None::<bool>),
            Type::FLOAT8 => Box::new(None::<f64>),
            Type::BYTEA => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        },
        Value::Int(i) => int(*i),
        Value::Real(f) => match *ty {
            Type::FLOAT4 => Box::new(*f as f32),
            _ => Box::new(*f),
        },
        Value::Text(s) => Box::new(s.clone()),
        Value::Blob(b) => Box::new(b.clone()),
    }
}

fn read(row: &postgres::Row, i: usize, ty: &Type) -> DbResult<Value> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Null, f)
    }
    Ok(match *ty {
        Type::INT8 => or_null(row.try_get::<_, Option<i64>>(i)?, Value::Int),
        Type::INT4 => or_null(row.try_get::<_, Option<i32>>(i)?, |v| {
            Value::Int(i64::from(v))
        }),
        Type::INT2 => or_null(row.try_get::<_, Option<i16>>(i)?, |v| {
            Value::Int(i64::from(v))
        }),
        Type::OID => or_null(row.try_get::<_, Option<u32>>(i)?, |v| {
            Value::Int(i64::from(v))
        }),
        Type::BOOL => or_null(row.try_get::<_, Option<bool>>(i)?, |v| {
            Value::Int(i64::from(v))
        }),
        Type::FLOAT8 => or_null(row.try_get::<_, Option<f64>>(i)?, Value::Real),
        Type::FLOAT4 => or_null(row.try_get::<_, Option<f32>>(i)?, |v| {
            Value::Real(f64::from(v))
        }),
        Type::BYTEA => or_null(row.try_get::<_, Option<Vec<u8>>>(i)?, Value::Blob),
        _ => or_null(row.try_get::<_, Option<String>>(i)?, Value::Text),
    })
}
