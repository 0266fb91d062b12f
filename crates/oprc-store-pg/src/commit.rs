//! How one group is committed (see `writer.rs` for the whole): the one
//! statement a usual group needs, the optimistic transaction of set-based
//! statements for the rest, and the careful path of one savepoint per
//! batch; and which failures leave the outcome unknown.

use oprc_store::{Error, ErrorKind, Result};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use crate::error::map;
use crate::group::{Wave, missed, waves};
use crate::plan::{ObjectRows, Plan};
use crate::sql;

/// Why a statement did not do its part.
pub(crate) enum Fail {
    /// The server refused it: the transaction is aborted, the connection
    /// fine.
    Statement(Error),
    /// The connection or transaction is unusable: the group fails.
    Group(Error),
}

/// The group failed as a whole.
pub(crate) struct Broken {
    pub error: Error,
    /// It broke at COMMIT, or after the one statement reached the server:
    /// the outcome is unknown, and the group is never retried. Otherwise
    /// nothing of it was committed.
    pub unknown: bool,
}

fn broken(e: sqlx::Error, url: &str) -> Broken {
    Broken {
        error: map(e, url),
        unknown: false,
    }
}

/// How an optimistic attempt at a group ended.
enum Fast {
    Committed,
    /// Rolled back: these batches (indices in the group) failed their
    /// compare-and-swap or their fence.
    Lost(Vec<(usize, Error)>),
    /// Rolled back: a statement failed, and which batch made it fail is
    /// not known.
    Refused(Error),
}

/// Commits the batches of `plans`, optimistically first (see the module
/// doc), and answers each.
pub(crate) async fn commit_group(
    conn: &mut PgConnection,
    plans: &[&Plan],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Vec<Result<()>>, Broken> {
    let mut live: Vec<usize> = (0..plans.len()).collect();
    // Outside a transaction block the session's own durability applies:
    // only a group content with it goes as one statement.
    if begin == "BEGIN"
        && let [wave] = waves(plans, &live).as_slice()
        && wave.one_object_per_batch()
    {
        match one_statement(conn, wave, &fences(plans, &live), url).await? {
            Ok(lost) => {
                let mut results: Vec<Result<()>> = live.iter().map(|_| Ok(())).collect();
                for (batch, e) in lost {
                    results[batch] = Err(e);
                }
                return Ok(results);
            }
            Err(e) if plans.len() == 1 => return Ok(vec![Err(e)]),
            Err(e) => {
                tracing::debug!(error = %e, group = live.len(), "a group's statement failed; committing it batch by batch");
                return one_by_one(conn, plans, &live, begin, url).await;
            }
        }
    }
    let mut results: Vec<Option<Result<()>>> = plans.iter().map(|_| None).collect();
    while !live.is_empty() {
        match optimistic(conn, plans, &live, begin, url).await? {
            Fast::Committed => {
                for &i in &live {
                    results[i] = Some(Ok(()));
                }
                break;
            }
            Fast::Lost(lost) => {
                for (i, e) in lost {
                    results[i] = Some(Err(e));
                    live.retain(|&j| j != i);
                }
            }
            Fast::Refused(e) if live.len() == 1 => {
                results[live[0]] = Some(Err(e));
                break;
            }
            Fast::Refused(e) => {
                tracing::debug!(error = %e, group = live.len(), "a group's statement failed; committing it batch by batch");
                let each = one_by_one(conn, plans, &live, begin, url).await?;
                for (&i, r) in live.iter().zip(each) {
                    results[i] = Some(r);
                }
                break;
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::internal("a batch of the group got no answer"))))
        .collect())
}

/// The wave as one statement in its own implicit transaction
/// (`sql::WRITE_GROUP`). `Ok(Ok(failed))`: committed, but for the batches
/// (with their object row) whose compare-and-swap failed; `Ok(Err)`: the
/// server refused the statement, and nothing of it was committed.
///
/// The server commits such a statement only after it has sent its
/// CommandComplete, so an error the server reports before that means
/// nothing was committed (a connection the server closed while it was
/// idle answers the next statement so), while one after it, or a lost
/// connection, leaves the outcome unknown.
async fn one_statement(
    conn: &mut PgConnection,
    w: &Wave,
    fences: &Fences,
    url: &str,
) -> std::result::Result<std::result::Result<Vec<(usize, Error)>, Error>, Broken> {
    use futures_util::TryStreamExt;
    use sqlx::Either;
    use sqlx::Executor;

    let batch = |owner: &[usize]| -> Vec<i32> {
        owner
            .iter()
            .map(|&b| i32::try_from(b).unwrap_or(i32::MAX))
            .collect()
    };
    let (o, v) = (&w.objects, &w.invocations);
    let query = sqlx::query(sql::WRITE_GROUP)
        .bind(&o.cls)
        .bind(&o.oid)
        .bind(&o.expected)
        .bind(&o.revision)
        .bind(&o.record)
        .bind(batch(&w.owner))
        .bind(&v.id)
        .bind(&v.record)
        .bind(&v.terminal)
        .bind(&v.expires_at)
        .bind(batch(&w.invocation_owner))
        .bind(&v.key)
        .bind(&v.key_id)
        .bind(&v.key_conditional)
        .bind(batch(&w.key_owner))
        .bind(batch(&fences.batch))
        .bind(&fences.partition)
        .bind(&fences.epoch);
    let mut stream = conn.fetch_many(query);
    let mut lost: Vec<(usize, bool)> = Vec::new();
    let mut completed = false;
    loop {
        match stream.try_next().await {
            Ok(None) => break,
            Ok(Some(Either::Left(_))) => completed = true,
            Ok(Some(Either::Right(row))) => {
                let decoded = row
                    .try_get::<i32, _>(0)
                    .and_then(|b| Ok((b, row.try_get::<bool, _>(1)?)));
                let (b, fenced) = decoded.map_err(|e| Broken {
                    error: map(e, url),
                    unknown: true,
                })?;
                lost.push((usize::try_from(b).unwrap_or(usize::MAX), fenced));
            }
            Err(e) => {
                let refused = matches!(e, sqlx::Error::Database(_)) && !completed;
                let error = map(e, url);
                return match (refused, error.kind) {
                    (true, ErrorKind::Unavailable) => Err(Broken {
                        error,
                        unknown: false,
                    }),
                    (true, _) => Ok(Err(error)),
                    (false, _) => Err(Broken {
                        error: unknown(error),
                        unknown: true,
                    }),
                };
            }
        }
    }
    let mut answers = Vec::with_capacity(lost.len());
    for (b, fenced) in lost {
        let row = w.owner.iter().position(|&o| o == b);
        answers.push(match (fenced, row) {
            (true, _) => (b, fences.error(b)),
            (false, Some(row)) => (b, conflict(&w.objects, row)),
            (false, None) => (
                b,
                Error::internal("a batch without objects failed their check"),
            ),
        });
    }
    Ok(Ok(answers))
}

/// The fences of the `live` batches, as the statements bind them.
#[derive(Default)]
struct Fences {
    batch: Vec<usize>,
    partition: Vec<i32>,
    epoch: Vec<i64>,
}

impl Fences {
    fn error(&self, batch: usize) -> Error {
        let at = self.batch.iter().position(|&b| b == batch);
        let (p, e) = at.map_or((-1, -1), |i| (self.partition[i], self.epoch[i]));
        Error::new(
            ErrorKind::Fenced,
            format!("partition {p} is no longer owned at epoch {e}: another node took it over"),
        )
    }
}

fn fences(plans: &[&Plan], live: &[usize]) -> Fences {
    let mut f = Fences::default();
    for &i in live {
        if let Some((p, e)) = plans[i].fence {
            f.batch.push(i);
            f.partition.push(p);
            f.epoch.push(e);
        }
    }
    f
}

/// Share-locks the fenced partitions' rows for the transaction and
/// answers the batches whose epoch is not the current one.
async fn hold_fences(
    tx: &mut Transaction<'_, Postgres>,
    fences: &Fences,
    url: &str,
) -> std::result::Result<Vec<(usize, Error)>, Broken> {
    if fences.batch.is_empty() {
        return Ok(Vec::new());
    }
    let held: Vec<(i32, i64)> = sqlx::query_as(sql::HOLD_FENCES)
        .bind(&fences.partition)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| broken(e, url))?;
    Ok((0..fences.batch.len())
        .filter(|&i| !held.contains(&(fences.partition[i], fences.epoch[i])))
        .map(|i| (fences.batch[i], fences.error(fences.batch[i])))
        .collect())
}

/// An unavailable server at the moment of commit: whether it committed is
/// not known.
fn unknown(mut error: Error) -> Error {
    if error.kind == ErrorKind::Unavailable {
        error.kind = ErrorKind::Timeout;
        error.message = format!("the commit's outcome is unknown: {}", error.message);
    }
    error
}

/// One transaction of set-based statements for the `live` batches.
async fn optimistic(
    conn: &mut PgConnection,
    plans: &[&Plan],
    live: &[usize],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Fast, Broken> {
    let members: Vec<&Plan> = live.iter().map(|&i| plans[i]).collect();
    let waves = waves(&members, live);
    let mut tx = conn.begin_with(begin).await.map_err(|e| broken(e, url))?;
    let stale = hold_fences(&mut tx, &fences(plans, live), url).await?;
    if !stale.is_empty() {
        tx.rollback().await.map_err(|e| broken(e, url))?;
        return Ok(Fast::Lost(stale));
    }
    for wave in &waves {
        let lost = match write_wave(&mut tx, wave, url).await {
            Ok(lost) => lost,
            Err(Fail::Statement(e)) => {
                tx.rollback().await.map_err(|e| broken(e, url))?;
                return Ok(Fast::Refused(e));
            }
            Err(Fail::Group(error)) => {
                return Err(Broken {
                    error,
                    unknown: false,
                });
            }
        };
        if !lost.is_empty() {
            tx.rollback().await.map_err(|e| broken(e, url))?;
            return Ok(Fast::Lost(lost));
        }
    }
    finish(tx, url).await?;
    Ok(Fast::Committed)
}

/// The careful path: one savepoint per batch.
async fn one_by_one(
    conn: &mut PgConnection,
    plans: &[&Plan],
    live: &[usize],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Vec<Result<()>>, Broken> {
    let mut tx = conn.begin_with(begin).await.map_err(|e| broken(e, url))?;
    let mut stale = hold_fences(&mut tx, &fences(plans, live), url).await?;
    let mut results = Vec::with_capacity(live.len());
    for (n, &i) in live.iter().enumerate() {
        if let Some(at) = stale.iter().position(|(b, _)| *b == i) {
            results.push(Err(stale.swap_remove(at).1));
            continue;
        }
        // The previous batch's savepoint is released together with taking
        // this one; the last one goes with COMMIT.
        let savepoint = if n == 0 {
            "SAVEPOINT batch"
        } else {
            "RELEASE SAVEPOINT batch; SAVEPOINT batch"
        };
        exec(&mut tx, savepoint, url).await?;
        let wave = waves(&plans[i..=i], &[i]).pop().unwrap_or_default();
        let failed = match write_wave(&mut tx, &wave, url).await {
            Ok(lost) => lost.into_iter().next().map(|(_, e)| e),
            Err(Fail::Statement(e)) => Some(e),
            Err(Fail::Group(error)) => {
                return Err(Broken {
                    error,
                    unknown: false,
                });
            }
        };
        match failed {
            None => results.push(Ok(())),
            Some(e) => {
                exec(&mut tx, "ROLLBACK TO SAVEPOINT batch", url).await?;
                results.push(Err(e));
            }
        }
    }
    finish(tx, url).await?;
    Ok(results)
}

async fn finish(tx: Transaction<'_, Postgres>, url: &str) -> std::result::Result<(), Broken> {
    tx.commit().await.map_err(|e| Broken {
        error: unknown(map(e, url)),
        unknown: true,
    })
}

async fn exec(
    tx: &mut Transaction<'_, Postgres>,
    sql: &'static str,
    url: &str,
) -> std::result::Result<(), Broken> {
    sqlx::raw_sql(sql)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|e| broken(e, url))
}

/// A statement's error: its own if the server answered it, the group's
/// if the connection is gone.
fn fail(e: sqlx::Error, url: &str) -> Fail {
    let database = matches!(e, sqlx::Error::Database(_));
    let e = map(e, url);
    if database && e.kind != ErrorKind::Unavailable {
        Fail::Statement(e)
    } else {
        Fail::Group(e)
    }
}

fn conflict(o: &ObjectRows, row: usize) -> Error {
    let expected = match o.expected[row] {
        None => "to be absent".to_owned(),
        Some(r) => format!("at revision {r}"),
    };
    Error::conflict(format!(
        "object {}/{} is not {expected}",
        o.cls[row], o.oid[row]
    ))
}

/// Runs a wave's statements: its objects (compare-and-swap on each), then,
/// when every one was written, its invocation records and keys. Answers
/// the batches whose compare-and-swap failed (the caller rolls back).
async fn write_wave(
    tx: &mut Transaction<'_, Postgres>,
    w: &Wave,
    url: &str,
) -> std::result::Result<Vec<(usize, Error)>, Fail> {
    let o = &w.objects;
    if !o.cls.is_empty() {
        let rows = sqlx::query(sql::WRITE_OBJECTS)
            .bind(&o.cls)
            .bind(&o.oid)
            .bind(&o.expected)
            .bind(&o.revision)
            .bind(&o.record)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| fail(e, url))?;
        if rows.len() != o.cls.len() {
            let mut written = Vec::with_capacity(rows.len());
            for row in &rows {
                let cls: String = row.try_get(0).map_err(|e| fail(e, url))?;
                let oid: String = row.try_get(1).map_err(|e| fail(e, url))?;
                written.push((cls, oid));
            }
            let lost: Vec<(usize, Error)> = missed(w, &written)
                .into_iter()
                .map(|(batch, row)| (batch, conflict(o, row)))
                .collect();
            if !lost.is_empty() {
                return Ok(lost);
            }
        }
    }
    let v = &w.invocations;
    if !v.id.is_empty() {
        sqlx::query(sql::WRITE_INVOCATIONS)
            .bind(&v.id)
            .bind(&v.record)
            .bind(&v.terminal)
            .bind(&v.expires_at)
            .bind(&v.key)
            .bind(&v.key_id)
            .bind(&v.key_conditional)
            .execute(&mut **tx)
            .await
            .map_err(|e| fail(e, url))?;
    }
    Ok(Vec::new())
}
