//! `oprc invoke` and `oprc inv`: calls, and the records of async calls.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::{Ctx, read_json};
use crate::cli::{InvCmd, InvokeArgs};
use crate::client::Reply;
use crate::exit::{Exit, Fail};
use crate::output::{self, Format};

/// Statuses after which an invocation does not change any more.
fn is_final(status: Option<&str>) -> bool {
    matches!(status, Some("SUCCEEDED" | "FAILED" | "DEPENDENCY_FAILED"))
}

fn is_failed(status: Option<&str>) -> bool {
    matches!(status, Some("FAILED" | "DEPENDENCY_FAILED"))
}

pub async fn invoke(ctx: &Ctx, args: InvokeArgs) -> anyhow::Result<()> {
    let body = args.body.map(|b| read_json(b, "--body")).transpose()?;
    let mut segments = vec!["classes", args.target.cls.as_str()];
    if let Some(oid) = &args.target.oid {
        segments.extend(["objects", oid.as_str()]);
    }
    segments.extend(["invokes", args.function.as_str()]);

    let mut query: Vec<(&str, &str)> = args
        .args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if args.run_async {
        query.push(("_async", "true"));
    }
    if args.show_main {
        query.push(("_showMain", "true"));
    }
    let mut rb = ctx.client.request(Method::POST, &segments).query(&query);
    if let Some(key) = &args.idempotency_key {
        rb = rb.header("Idempotency-Key", key);
    }
    if let Some(body) = &body {
        rb = rb.json(body);
    }
    let reply = ctx.client.send(rb).await?;
    if !reply.is_invocation() {
        // Refused before it ran (unknown class, forbidden, bad request...).
        return Err(reply.fail().into());
    }
    if args.wait && !is_final(reply.invocation_status()) {
        let inv_id = reply
            .body
            .get("invId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        eprintln!(
            "oprc: invocation {inv_id} queued; waiting up to {:?}",
            args.timeout
        );
        let reply = wait(ctx, &inv_id, reply, args.timeout).await?;
        return show(ctx, &reply);
    }
    show(ctx, &reply)
}

pub async fn inv(ctx: &Ctx, cmd: InvCmd) -> anyhow::Result<()> {
    match cmd {
        InvCmd::Get { id } => {
            let reply = ctx
                .client
                .send(ctx.client.get(&["invocations", &id]))
                .await?;
            if !reply.status.is_success() {
                return Err(reply.fail().into());
            }
            show(ctx, &reply)
        }
    }
}

/// Prints an invocation answer; a FAILED one also ends with exit 1.
fn show(ctx: &Ctx, reply: &Reply) -> anyhow::Result<()> {
    output::print(ctx.format(Format::Json), &reply.body, output::invocation)?;
    if is_failed(reply.invocation_status()) || !reply.status.is_success() {
        return Err(reply.fail().into());
    }
    Ok(())
}

/// Polls the invocation record until it is final or `timeout` passes
/// (backoff 50 ms doubling to 1 s). A record that is not there yet is
/// polled again.
async fn wait(
    ctx: &Ctx,
    inv_id: &str,
    mut last: Reply,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        let now = Instant::now();
        if now >= deadline {
            let status = last.invocation_status().unwrap_or("QUEUE").to_owned();
            output::print(ctx.format(Format::Json), &last.body, output::invocation)?;
            return Err(Fail::new(
                Exit::Timeout,
                format!(
                    "invocation {inv_id} is still {status} after {timeout:?}; \
                     check later with `oprc inv get {inv_id}`"
                ),
            )
            .into());
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_secs(1));
        let reply = ctx
            .client
            .send(ctx.client.get(&["invocations", inv_id]))
            .await?;
        if reply.status == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        if !reply.status.is_success() {
            return Err(reply.fail().into());
        }
        if is_final(reply.invocation_status()) {
            return Ok(reply);
        }
        last = reply;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_and_failed_statuses() {
        assert!(is_final(Some("SUCCEEDED")) && is_final(Some("DEPENDENCY_FAILED")));
        assert!(!is_final(Some("QUEUE")) && !is_final(Some("DOING")) && !is_final(None));
        assert!(is_failed(Some("FAILED")) && !is_failed(Some("SUCCEEDED")));
    }
}
