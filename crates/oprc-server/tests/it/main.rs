//! End-to-end tests: real nodes on port 0, real function processes.

mod harness;

mod bad_input;
mod compat;
mod concurrency;
mod examples;
mod invoke;
mod ops;
mod shutdown;
