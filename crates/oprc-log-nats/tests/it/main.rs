//! Tests of the JetStream log against real servers: the conformance suite
//! and what it cannot see (dedup across partitions, redelivery after a
//! crash, cancel-safety, the log's identity) on the shared server found
//! through `OPRC_TEST_NATS` (default `nats://127.0.0.1:4222`), each test
//! on a stream of its own deleted at the end; and the faults (a server
//! restart, no server, no JetStream, a connection broken mid-batch by a
//! proxy) on throwaway servers the tests start themselves (`OPRC_NATS_SERVER_BIN` or `nats-server` on the PATH). A
//! server or binary that cannot be found fails the test, never skips it.

mod behaviour;
mod conformance;
mod faults;
mod inflight;
mod proxy;
mod support;
