//! Integration tests of the engines, with real worker processes (a small
//! python3 function server, `fn_server.py`).

mod http;
mod process;
mod support;
