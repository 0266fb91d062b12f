//! The one integration test binary of the crate: fixtures, schema, round trips.

mod fixtures;
mod roundtrip;
mod schema;
