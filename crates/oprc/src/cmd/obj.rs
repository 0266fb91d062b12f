//! `oprc obj`: new, get, list, delete, file (in `file.rs`).

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Ctx, file, read_json};
use crate::cli::{FileCmd, ObjCmd};
use crate::output::{self, Format};

pub async fn run(ctx: &Ctx, cmd: ObjCmd) -> anyhow::Result<()> {
    match cmd {
        ObjCmd::New {
            cls,
            id,
            data,
            files,
        } => {
            let mut body = Map::new();
            if let Some(id) = id {
                body.insert("id".into(), Value::String(id));
            }
            if let Some(data) = data {
                body.insert("data".into(), read_json(data, "--data")?);
            }
            if !files.is_empty() {
                let object = file::new_with_files(ctx, &cls, body, files).await?;
                return output::print(ctx.format(Format::Json), &object, output::objects);
            }
            let rb = ctx
                .client
                .request(Method::POST, &["classes", &cls, "invokes", "new"])
                .json(&body);
            let answer = ctx.client.call(rb).await?;
            // `new` answers with the object as `output`.
            let object = answer.get("output").unwrap_or(&answer);
            output::print(ctx.format(Format::Json), object, output::objects)
        }
        ObjCmd::Get { cls, oid } => {
            let object = ctx
                .client
                .call(ctx.client.get(&["classes", &cls, "objects", &oid]))
                .await?;
            output::print(ctx.format(Format::Json), &object, output::objects)
        }
        ObjCmd::List {
            cls,
            limit,
            after,
            all,
        } => {
            let list = list(ctx, &cls, limit, after, all).await?;
            if let Some(next) = list.get("next").and_then(Value::as_str) {
                eprintln!("oprc: more objects: continue with --after {next}, or use --all");
            }
            output::print(ctx.format(Format::Table), &list, output::objects)
        }
        ObjCmd::Delete { cls, oid } => {
            let rb = ctx
                .client
                .request(Method::DELETE, &["classes", &cls, "objects", &oid]);
            ctx.client.call(rb).await?;
            eprintln!("oprc: object {cls}/{oid} deleted");
            Ok(())
        }
        ObjCmd::File(FileCmd::Get(args)) => file::get(ctx, &args).await,
        ObjCmd::File(FileCmd::Put(args)) => {
            let object = file::put(ctx, &args).await?;
            output::print(ctx.format(Format::Json), &object, output::objects)
        }
    }
}

/// One page (`{items, next?}`), or with `all` every page from `after` on
/// (`{items}`).
async fn list(
    ctx: &Ctx,
    cls: &str,
    limit: Option<u16>,
    mut after: Option<String>,
    all: bool,
) -> anyhow::Result<Value> {
    let mut items = Vec::new();
    loop {
        let mut query = Vec::new();
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let rb = ctx.client.get(&["classes", cls, "objects"]).query(&query);
        let page = ctx.client.call(rb).await?;
        items.extend_from_slice(output::items(&page));
        let next = page.get("next").and_then(Value::as_str).map(str::to_owned);
        match next {
            Some(n) if all => after = Some(n),
            Some(n) => return Ok(json!({"items": items, "next": n})),
            None => return Ok(json!({"items": items})),
        }
    }
}
