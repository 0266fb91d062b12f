//! The client commands: each turns its arguments into requests, prints the
//! data on stdout and everything else on stderr.

mod catalog;
mod file;
mod invoke;
mod obj;
mod pkg;

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::{ClientCommand, Global, JsonSource};
use crate::client::Client;
use crate::exit::Fail;
use crate::output::Format;

/// What every client command works with.
pub struct Ctx {
    pub client: Client,
    output: Option<Format>,
}

impl Ctx {
    /// The `-o` format, or the command's default.
    pub fn format(&self, default: Format) -> Format {
        self.output.unwrap_or(default)
    }
}

/// Runs a client command (everything but `serve`).
pub async fn run(global: Global, command: ClientCommand) -> anyhow::Result<()> {
    let token = crate::client::token_for(&global.url, global.token, global.data_dir.as_deref());
    let ctx = Ctx {
        client: Client::new(global.url, token)?,
        output: global.output,
    };
    match command {
        ClientCommand::Pkg(cmd) => pkg::run(&ctx, cmd).await,
        ClientCommand::Cls(cmd) => catalog::classes(&ctx, cmd).await,
        ClientCommand::Func(cmd) => catalog::functions(&ctx, cmd).await,
        ClientCommand::Obj(cmd) => obj::run(&ctx, cmd).await,
        ClientCommand::Invoke(args) => invoke::invoke(&ctx, args).await,
        ClientCommand::Inv(cmd) => invoke::inv(&ctx, cmd).await,
    }
}

/// Fetches every page of an `offset`/`limit` listing (`{items, offset,
/// total}`) and answers `{items, total}`.
async fn list_all(ctx: &Ctx, segments: &[&str]) -> anyhow::Result<Value> {
    let mut items = Vec::new();
    loop {
        let offset = items.len().to_string();
        let rb = ctx
            .client
            .get(segments)
            .query(&[("offset", offset.as_str()), ("limit", "1000")]);
        let page = ctx.client.call(rb).await?;
        let got = crate::output::items(&page).to_vec();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0);
        let done = got.is_empty();
        items.extend(got);
        if done || items.len() as u64 >= total {
            return Ok(json!({"items": items, "total": total}));
        }
    }
}

/// Reads stdin whole. Blocking is fine here: nothing else runs yet.
fn read_stdin() -> anyhow::Result<String> {
    std::io::read_to_string(std::io::stdin()).context("failed to read stdin")
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
}

/// The JSON of `--body`/`--data`; a file or stdin that is not JSON is a
/// usage error.
fn read_json(src: JsonSource, flag: &str) -> anyhow::Result<Value> {
    let (text, from) = match src {
        JsonSource::Inline(v) => return Ok(v),
        JsonSource::File(p) => (read_file(&p)?, p.display().to_string()),
        JsonSource::Stdin => (read_stdin()?, "stdin".to_owned()),
    };
    serde_json::from_str(&text)
        .map_err(|e| Fail::usage(format!("{flag}: {from} is not valid JSON: {e}")).into())
}
