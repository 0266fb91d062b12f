-- Cluster membership and partition ownership (ADR 13). Lease expiries are
-- the database's clock (`now()`), the one clock every node compares with.
CREATE TABLE oprc_members (
    node        TEXT PRIMARY KEY,
    advertise   TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    joined_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A row per partition ever claimed. `owner` NULL: released. `epoch` only
-- grows: every claim increments it, and a commit fenced with an older
-- epoch writes nothing.
CREATE TABLE oprc_partitions (
    partition   INTEGER PRIMARY KEY CHECK (partition >= 0),
    owner       TEXT,
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    lease_until TIMESTAMPTZ NOT NULL
);
