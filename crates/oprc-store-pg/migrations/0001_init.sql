-- The state of one Oparaca deployment. Text keys use the "C" collation so
-- that listings are in byte order, as in the embedded store.

-- Objects: the revision is a column of its own (compare-and-swap reads
-- nothing else); the record is the object's JSON text, stored as bytes so
-- that it round-trips exactly (JSONB would reorder keys) and the server
-- spends nothing parsing it.
CREATE TABLE oprc_objects (
    cls      TEXT COLLATE "C" NOT NULL,
    oid      TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    record   BYTEA NOT NULL,
    PRIMARY KEY (cls, oid)
);

-- Invocation records; `terminal` is kept beside the JSON so that a late
-- non-terminal write can be refused without decoding the stored one.
CREATE TABLE oprc_invocations (
    id         TEXT COLLATE "C" PRIMARY KEY,
    record     BYTEA NOT NULL,
    terminal   BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oprc_invocations_expiry ON oprc_invocations (expires_at, id);

-- Idempotency key -> the invocation it was first used for; deleted with
-- that invocation's record by the purge.
CREATE TABLE oprc_idempotency (
    key           TEXT COLLATE "C" PRIMARY KEY,
    invocation_id TEXT COLLATE "C" NOT NULL
);
CREATE INDEX oprc_idempotency_invocation ON oprc_idempotency (invocation_id);

CREATE TABLE oprc_packages (
    name   TEXT COLLATE "C" PRIMARY KEY,
    source TEXT NOT NULL
);

-- The layout the data was written with (one row).
CREATE TABLE oprc_layout (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    layout    TEXT NOT NULL
);
