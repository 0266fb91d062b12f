//! The one integration test binary of the crate: fixtures, schema, round trips.

mod fixtures;
mod garbage;
mod roundtrip;
mod schema;
