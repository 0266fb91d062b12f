//! [`Membership`] on the shared database (ADR 13, migration 3): members and
//! partition ownership in two small tables, every lease by the database's
//! clock. These statements run on the pool, a few per heartbeat; the
//! fence they set up is checked by the writer (`commit.rs`).

use std::time::Duration;

use async_trait::async_trait;
use oprc_store::cluster::{Member, Membership, Ownership};
use oprc_store::{Error, ErrorKind, Result};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::sql;

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn left(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}

fn member(row: &PgRow) -> std::result::Result<Member, sqlx::Error> {
    Ok(Member {
        node: row.try_get(0)?,
        advertise: row.try_get(1)?,
        lease_left: left(row.try_get(2)?),
    })
}

fn ownership(row: &PgRow) -> std::result::Result<Ownership, sqlx::Error> {
    let partition: i32 = row.try_get(0)?;
    let epoch: i64 = row.try_get(2)?;
    Ok(Ownership {
        partition: u16::try_from(partition).unwrap_or(u16::MAX),
        owner: row.try_get(1)?,
        epoch: u64::try_from(epoch).unwrap_or(0),
        lease_left: left(row.try_get(3)?),
    })
}

fn epoch(e: u64) -> Result<i64> {
    i64::try_from(e).map_err(|_| Error::internal(format!("epoch {e} does not fit in bigint")))
}

#[async_trait]
impl Membership for PgStore {
    async fn heartbeat(&self, node: &str, advertise: &str, lease: Duration) -> Result<Vec<Member>> {
        let rows = self
            .bounded(
                ErrorKind::Timeout,
                sqlx::query(sql::HEARTBEAT)
                    .bind(node)
                    .bind(advertise)
                    .bind(seconds(lease))
                    .fetch_all(self.pool()),
            )
            .await?;
        rows.iter()
            .map(member)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn leave(&self, node: &str) -> Result<()> {
        self.bounded(
            ErrorKind::Timeout,
            sqlx::query(sql::LEAVE).bind(node).execute(self.pool()),
        )
        .await
        .map(drop)
    }

    async fn ownership(&self) -> Result<Vec<Ownership>> {
        let rows = self
            .bounded(
                ErrorKind::Unavailable,
                sqlx::query(sql::OWNERSHIP).fetch_all(self.pool()),
            )
            .await?;
        rows.iter()
            .map(ownership)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn claim(
        &self,
        partition: u16,
        node: &str,
        lease: Duration,
    ) -> Result<Option<Ownership>> {
        let row = self
            .bounded(
                ErrorKind::Timeout,
                sqlx::query(sql::CLAIM)
                    .bind(i32::from(partition))
                    .bind(node)
                    .bind(seconds(lease))
                    .fetch_optional(self.pool()),
            )
            .await?;
        row.as_ref()
            .map(ownership)
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn renew(
        &self,
        node: &str,
        held: &[(u16, u64)],
        lease: Duration,
    ) -> Result<Vec<Ownership>> {
        let partitions: Vec<i32> = held.iter().map(|(p, _)| i32::from(*p)).collect();
        let epochs = held
            .iter()
            .map(|(_, e)| epoch(*e))
            .collect::<Result<Vec<i64>>>()?;
        let rows = self
            .bounded(
                ErrorKind::Timeout,
                sqlx::query(sql::RENEW)
                    .bind(node)
                    .bind(seconds(lease))
                    .bind(&partitions)
                    .bind(&epochs)
                    .fetch_all(self.pool()),
            )
            .await?;
        let mut renewed = rows
            .iter()
            .map(ownership)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        renewed.sort_by_key(|o| o.partition);
        Ok(renewed)
    }

    async fn release(&self, partition: u16, node: &str, epoch_: u64) -> Result<bool> {
        let done = self
            .bounded(
                ErrorKind::Timeout,
                sqlx::query(sql::RELEASE)
                    .bind(i32::from(partition))
                    .bind(node)
                    .bind(epoch(epoch_)?)
                    .execute(self.pool()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
