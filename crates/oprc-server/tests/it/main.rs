//! End-to-end tests: real nodes on port 0, real function processes.

mod harness;
mod raw;

mod admin;
mod bad_input;
mod browsers;
mod compat;
mod concurrency;
mod dataflow;
mod dataflow_access;
mod dataflow_calls;
mod dataflow_examples;
mod dataflow_regressions;
mod dataflow_runs;
mod errors;
mod examples;
mod files_examples;
mod invoke;
mod limits;
mod openapi;
mod ops;
mod shared_store;
mod shutdown;
