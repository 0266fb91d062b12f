//! The one integration test binary of the crate: fixtures, schema, round
//! trips, nesting depth, and generated or damaged sources.

mod deep;
mod fixtures;
mod garbage;
mod roundtrip;
mod schema;
mod shapes;
