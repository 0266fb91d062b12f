//! Integration tests of the engines, with real worker processes (a small
//! python3 function server, `fn_server.py`; workers that misbehave on
//! purpose, `squat_worker.py` and `unlisten_server.py`).

mod http;
mod process;
mod revision;
mod signals;
mod support;
mod transport;
