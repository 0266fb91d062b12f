//! The SQL of the store, one constant per statement. Every write of a batch
//! is set-based: a batch's object writes are one statement over `UNNEST`ed
//! arrays, its invocation records and idempotency keys another, whatever
//! their number. Tables are in `migrations/`.

/// The object writes over the rows `u` (cls, oid, expected, revision,
/// record) with their compare-and-swap: `ins`, `upd` and `del`, each
/// returning the rows it wrote. Shared by [`WRITE_OBJECTS`] and
/// [`WRITE_GROUP`].
macro_rules! object_writes {
    () => {
        r#"
), ins AS (
    INSERT INTO oprc_objects (cls, oid, revision, record)
    SELECT cls, oid, revision, record FROM u WHERE expected IS NULL
    ON CONFLICT (cls, oid) DO NOTHING
    RETURNING cls, oid
), upd AS (
    UPDATE oprc_objects o SET revision = u.revision, record = u.record
    FROM u
    WHERE u.expected IS NOT NULL AND u.revision IS NOT NULL
      AND o.cls = u.cls AND o.oid = u.oid AND o.revision = u.expected
    RETURNING o.cls, o.oid
), del AS (
    DELETE FROM oprc_objects o USING u
    WHERE u.expected IS NOT NULL AND u.revision IS NULL
      AND o.cls = u.cls AND o.oid = u.oid AND o.revision = u.expected
    RETURNING o.cls, o.oid
)"#
    };
}

/// A batch's object writes, one row per object (`plan.rs` folds several
/// writes of one object into one). `expected` NULL: create (the row must be
/// absent); else the stored revision must equal it. `revision` NULL:
/// delete. Returns the objects written; one missing is a failed
/// precondition, and the caller rolls the batch back.
///
/// Binds: cls text[], oid text[], expected int8[], revision int8[],
/// record bytea[].
pub(crate) const WRITE_OBJECTS: &str = concat!(
    r#"
WITH u AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bytea[])
        AS u(cls, oid, expected, revision, record)"#,
    object_writes!(),
    r#"
SELECT cls, oid FROM ins
UNION ALL SELECT cls, oid FROM upd
UNION ALL SELECT cls, oid FROM del
"#
);

/// A batch's invocation records (one row per id) and idempotency keys.
/// A stored terminal record is only replaced by a terminal one. A key is
/// indexed unless it is already taken (the first invocation wins); a
/// `conditional` key only if the stored record is not terminal (it came
/// with a non-terminal write, which that record refuses). Every part of
/// the statement sees the state from before it.
///
/// Binds: id text[], record bytea[], terminal bool[], expires_at int8[],
/// key text[], key's invocation text[], conditional bool[].
pub(crate) const WRITE_INVOCATIONS: &str = r#"
WITH keys AS (
    INSERT INTO oprc_idempotency (key, invocation_id)
    SELECT k.key, k.id
    FROM UNNEST($5::text[], $6::text[], $7::bool[]) AS k(key, id, conditional)
    WHERE NOT k.conditional
       OR NOT EXISTS (SELECT 1 FROM oprc_invocations i WHERE i.id = k.id AND i.terminal)
    ON CONFLICT (key) DO NOTHING
)
INSERT INTO oprc_invocations (id, record, terminal, expires_at)
SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bool[], $4::int8[])
ON CONFLICT (id) DO UPDATE
    SET record = EXCLUDED.record, terminal = EXCLUDED.terminal, expires_at = EXCLUDED.expires_at
    WHERE EXCLUDED.terminal OR NOT oprc_invocations.terminal
"#;

/// A whole group in one statement, and so in one implicit transaction,
/// when no batch has more than one object row and no two batches share a
/// row (`group.rs`): the object rows as in [`WRITE_OBJECTS`], then a
/// batch's invocation records and keys only if its object row was written
/// (a batch without one always is). The `written` rows are what the
/// object statements returned, after PostgreSQL rechecked any row another
/// session changed meanwhile, so a batch is all or nothing. A fenced batch
/// (ADR 13) whose partition's epoch is not its own writes nothing: the
/// partition's row is read `FOR SHARE`, so a claim waits for this
/// statement. Returns the batches whose object row was not written
/// (`fenced` false: failed its precondition) or whose fence failed.
///
/// Binds: the five arrays of [`WRITE_OBJECTS`] and each row's batch int4[]
/// ($6); the invocation rows of [`WRITE_INVOCATIONS`] ($7-$10) and their
/// batch ($11); the keys ($12-$14) and their batch ($15); the fenced
/// batches ($16), their partition ($17) and epoch ($18).
pub(crate) const WRITE_GROUP: &str = concat!(
    r#"
WITH f AS (
    SELECT * FROM UNNEST($16::int4[], $17::int4[], $18::int8[]) AS f(batch, partition, epoch)
), held AS (
    SELECT partition, epoch FROM oprc_partitions
    WHERE partition IN (SELECT partition FROM f)
    FOR SHARE
), stale AS (
    SELECT f.batch FROM f
    WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.partition = f.partition AND h.epoch = f.epoch)
), u AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bytea[], $6::int4[])
        AS u(cls, oid, expected, revision, record, batch)
    WHERE u.batch NOT IN (SELECT batch FROM stale)"#,
    object_writes!(),
    r#", written AS (
    SELECT cls, oid FROM ins
    UNION ALL SELECT cls, oid FROM upd
    UNION ALL SELECT cls, oid FROM del
), failed AS (
    SELECT u.batch FROM u
    WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.cls = u.cls AND w.oid = u.oid)
), keys AS (
    INSERT INTO oprc_idempotency (key, invocation_id)
    SELECT k.key, k.id
    FROM UNNEST($12::text[], $13::text[], $14::bool[], $15::int4[]) AS k(key, id, conditional, batch)
    WHERE k.batch NOT IN (SELECT batch FROM failed)
      AND k.batch NOT IN (SELECT batch FROM stale)
      AND (NOT k.conditional
           OR NOT EXISTS (SELECT 1 FROM oprc_invocations i WHERE i.id = k.id AND i.terminal))
    ON CONFLICT (key) DO NOTHING
), inv AS (
    INSERT INTO oprc_invocations (id, record, terminal, expires_at)
    SELECT v.id, v.record, v.terminal, v.expires_at
    FROM UNNEST($7::text[], $8::bytea[], $9::bool[], $10::int8[], $11::int4[])
        AS v(id, record, terminal, expires_at, batch)
    WHERE v.batch NOT IN (SELECT batch FROM failed)
      AND v.batch NOT IN (SELECT batch FROM stale)
    ON CONFLICT (id) DO UPDATE
        SET record = EXCLUDED.record, terminal = EXCLUDED.terminal, expires_at = EXCLUDED.expires_at
        WHERE EXCLUDED.terminal OR NOT oprc_invocations.terminal
)
SELECT batch, FALSE AS fenced FROM failed
UNION ALL SELECT batch, TRUE FROM stale
"#
);

/// The current epochs of these partitions, share-locked until the
/// transaction ends: a claim (which updates the row) waits for it, so the
/// transaction's writes are wholly before or after any takeover.
pub(crate) const HOLD_FENCES: &str =
    "SELECT partition, epoch FROM oprc_partitions WHERE partition = ANY($1) FOR SHARE";

/// Deletes at most $2 records expired before $1, oldest first, and the
/// idempotency keys that point to them. The outer `expires_at` test makes
/// a record rewritten meanwhile (with a later expiry) survive.
pub(crate) const PURGE: &str = r#"
WITH doomed AS (
    SELECT id FROM oprc_invocations
    WHERE expires_at < $1
    ORDER BY expires_at, id
    LIMIT $2
), gone AS (
    DELETE FROM oprc_invocations i USING doomed d
    WHERE i.id = d.id AND i.expires_at < $1
    RETURNING i.id
), keys AS (
    DELETE FROM oprc_idempotency WHERE invocation_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone
"#;

pub(crate) const GET_OBJECT: &str = "SELECT record FROM oprc_objects WHERE cls = $1 AND oid = $2";

/// Keyset pagination: $2 NULL for the first page; $3 is one more than the
/// page, to learn whether another follows.
pub(crate) const LIST_OBJECTS: &str = r#"
SELECT oid, record FROM oprc_objects
WHERE cls = $1 AND ($2::text IS NULL OR oid > $2)
ORDER BY oid
LIMIT $3
"#;

pub(crate) const GET_INVOCATION: &str = "SELECT record FROM oprc_invocations WHERE id = $1";

pub(crate) const FIND_KEY: &str = "SELECT invocation_id FROM oprc_idempotency WHERE key = $1";

pub(crate) const PUT_PACKAGE: &str = r#"
INSERT INTO oprc_packages (name, source) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source
"#;

pub(crate) const DELETE_PACKAGE: &str = "DELETE FROM oprc_packages WHERE name = $1";

pub(crate) const LIST_PACKAGES: &str = "SELECT name, source FROM oprc_packages ORDER BY name";

pub(crate) const PACKAGES_VERSION: &str = "SELECT version FROM oprc_packages_version";

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const INSERT_LAYOUT: &str =
    "INSERT INTO oprc_layout (singleton, layout) VALUES (TRUE, $1) ON CONFLICT DO NOTHING";

pub(crate) const LOCK_LAYOUT: &str = "SELECT layout FROM oprc_layout FOR UPDATE";

pub(crate) const UPDATE_LAYOUT: &str = "UPDATE oprc_layout SET layout = $1";

/// Whether migrations were ever applied (the table of applied versions).
pub(crate) const HAS_SCHEMA: &str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

/// The newest schema version applied to the database.
pub(crate) const SCHEMA_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0)::int8 FROM _sqlx_migrations WHERE success";

// -- cluster membership and ownership (ADR 13, migration 3) -----------------

/// Registers or renews member $1 at $2 for $3 seconds, forgets members
/// lapsed for an hour, and answers the live members with their lease left.
pub(crate) const HEARTBEAT: &str = r#"
WITH gone AS (
    DELETE FROM oprc_members WHERE lease_until < now() - interval '1 hour' AND node <> $1
), me AS (
    INSERT INTO oprc_members (node, advertise, lease_until)
    VALUES ($1, $2, now() + make_interval(secs => $3))
    ON CONFLICT (node) DO UPDATE
        SET advertise = EXCLUDED.advertise, lease_until = EXCLUDED.lease_until
    RETURNING node, advertise, lease_until
)
SELECT node, advertise, EXTRACT(EPOCH FROM lease_until - now())::float8 FROM me
UNION ALL
SELECT node, advertise, EXTRACT(EPOCH FROM lease_until - now())::float8 FROM oprc_members
WHERE lease_until > now() AND node <> $1
ORDER BY 1
"#;

/// Releases member $1's partitions and removes it.
pub(crate) const LEAVE: &str = r#"
WITH parts AS (
    UPDATE oprc_partitions SET owner = NULL, lease_until = now() WHERE owner = $1
)
DELETE FROM oprc_members WHERE node = $1
"#;

pub(crate) const OWNERSHIP: &str = r#"
SELECT partition, owner, epoch, GREATEST(EXTRACT(EPOCH FROM lease_until - now()), 0)::float8
FROM oprc_partitions ORDER BY partition
"#;

/// Partition $1 for node $2 for $3 seconds, with a new epoch, if it has no
/// owner or its owner's lease has lapsed. The row's update waits for the
/// commits that hold it `FOR SHARE` (their fence).
pub(crate) const CLAIM: &str = r#"
INSERT INTO oprc_partitions AS p (partition, owner, epoch, lease_until)
VALUES ($1, $2, 1, now() + make_interval(secs => $3))
ON CONFLICT (partition) DO UPDATE
    SET owner = EXCLUDED.owner, epoch = p.epoch + 1, lease_until = EXCLUDED.lease_until
    WHERE p.owner IS NULL OR p.lease_until <= now()
RETURNING partition, owner, epoch, EXTRACT(EPOCH FROM lease_until - now())::float8
"#;

/// Renews for $2 seconds the partitions ($3) node $1 holds at epochs $4.
pub(crate) const RENEW: &str = r#"
UPDATE oprc_partitions p SET lease_until = now() + make_interval(secs => $2)
FROM UNNEST($3::int4[], $4::int8[]) AS h(partition, epoch)
WHERE p.partition = h.partition AND p.epoch = h.epoch AND p.owner = $1
RETURNING p.partition, p.owner, p.epoch, EXTRACT(EPOCH FROM p.lease_until - now())::float8
"#;

pub(crate) const RELEASE: &str = r#"
UPDATE oprc_partitions SET owner = NULL, lease_until = now()
WHERE partition = $1 AND owner = $2 AND epoch = $3
"#;
