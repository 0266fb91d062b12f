//! A counter as a process function: `increment` adds `by` (default 1) to
//! `count` in the object's data, `count` reads it without changing anything
//! (the same functions as `examples/counter/counter.py`).
//!
//! The platform runs it with `PORT` set (see `package.yaml`); by hand:
//! `PORT=8080 cargo run -p counter-rs`.

use oprc_sdk::{App, Context, TaskError};
use serde_json::{Value, json};

fn count(ctx: &Context) -> Result<i64, TaskError> {
    Ok(ctx
        .main()?
        .get("count")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

fn increment(ctx: &mut Context) -> Result<Option<Value>, TaskError> {
    let by: i64 = ctx.parse_arg("by", 1)?;
    let count = count(ctx)?
        .checked_add(by)
        .ok_or_else(|| TaskError::new("count overflows"))?;
    ctx.main_mut()?.set("count", count);
    Ok(Some(json!({ "count": count })))
}

fn read(ctx: &mut Context) -> Result<Option<Value>, TaskError> {
    Ok(Some(json!({ "count": count(ctx)? })))
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    App::new()
        .function("increment", increment)
        .function("count", read)
        .run_blocking()
}
