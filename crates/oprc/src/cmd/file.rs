//! Objects' files: `oprc obj new -f KEY=PATH`, `oprc obj file get|put`.
//!
//! An upload through a URL is two steps on the node: an allocation (`new`
//! with `keys`, or `file?put=true`) answers upload URLs and a version; the
//! bytes go to the URLs; `file?commit=VERSION` then makes them the object's
//! files. Nothing is visible before the commit. `--relay` uploads are one
//! `PUT .../files/KEY` that the node streams and commits itself.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};

use super::Ctx;
use crate::cli::{FileArgs, ObjectTarget};
use crate::client::Reply;
use crate::exit::{Exit, Fail};
use crate::transfer::{self, Dest, Source};

/// Redirects followed from the node's `/files/KEY` to the bytes (S3 may
/// redirect once more, to another region's endpoint).
const MAX_REDIRECTS: usize = 5;

/// `obj new CLS -f KEY=PATH ...`: creates the object with `keys`, uploads
/// every file, commits them, and answers the object as it is then.
pub async fn new_with_files(
    ctx: &Ctx,
    cls: &str,
    mut body: Map<String, Value>,
    files: Vec<(String, PathBuf)>,
) -> anyhow::Result<Value> {
    let mut seen = BTreeSet::new();
    for (key, _) in &files {
        if !seen.insert(key.as_str()) {
            return Err(Fail::usage(format!("file key `{key}` is given twice")).into());
        }
    }
    // Every file opened before anything is created.
    let mut sources = Vec::with_capacity(files.len());
    for (key, path) in files {
        sources.push((key, Source::open(&path).await?));
    }
    let keys = sources.iter().map(|(k, _)| Value::from(k.as_str()));
    body.insert("keys".into(), Value::Array(keys.collect()));
    let rb = ctx
        .client
        .request(Method::POST, &["classes", cls, "invokes", "new"])
        .json(&body);
    let reply = ctx.client.send(rb).await?;
    let answer = invocation_body(&reply)?;
    let oid = reply
        .body
        .pointer("/output/_meta/id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(&reply, "no `output._meta.id`"))?;
    let target = ObjectTarget {
        cls: cls.to_owned(),
        oid: oid.to_owned(),
    };
    let version = version_of(&reply, answer)?;
    let mut keys = Vec::with_capacity(sources.len());
    for (key, source) in sources {
        let url = upload_url(ctx, &reply, answer, &key)?;
        put_to_url(ctx, &target, &key, &url, source)
            .await
            .map_err(|e| partly_created(&target, e))?;
        keys.push(key);
    }
    commit(ctx, &target, &version, None, &keys)
        .await
        .map_err(|e| partly_created(&target, e))?;
    get_object(ctx, &target).await
}

/// `obj file put CLS/OID KEY PATH`: uploads a new version of one file and
/// answers the object after the commit.
pub async fn put(ctx: &Ctx, args: &FileArgs) -> anyhow::Result<Value> {
    let FileArgs {
        target, key, path, ..
    } = args;
    let source = Source::open(path).await?;
    let len = source.len();
    if args.relay {
        let url = ctx.client.url(&files_path(target, key));
        let rb = ctx.client.request(Method::PUT, &files_path(target, key));
        let resp = transfer::upload(rb, &url, source, key).await?;
        let reply = ctx.client.read(resp).await?;
        if !reply.status.is_success() {
            return Err(reply.fail_file().into());
        }
        eprintln!("oprc: uploaded {key} of {target} through the node ({len} bytes)");
        return Ok(reply.body);
    }
    let rb = ctx
        .client
        .request(Method::POST, &invoke_file_path(target))
        .query(&[("put", "true"), ("key", key.as_str())]);
    let reply = ctx.client.send(rb).await?;
    let answer = invocation_body(&reply)?;
    let version = version_of(&reply, answer)?;
    let url = upload_url(ctx, &reply, answer, key)?;
    put_to_url(ctx, target, key, &url, source).await?;
    commit(ctx, target, &version, Some(key), std::slice::from_ref(key)).await?;
    eprintln!("oprc: uploaded {key} of {target} ({len} bytes)");
    get_object(ctx, target).await
}

/// `obj file get CLS/OID KEY PATH`.
pub async fn get(ctx: &Ctx, args: &FileArgs) -> anyhow::Result<()> {
    let FileArgs {
        target, key, path, ..
    } = args;
    let dest = Dest::new(path, key);
    let mut rb = ctx.client.get(&files_path(target, key));
    if args.relay {
        rb = rb.query(&[("_relay", "true")]);
    }
    let mut resp = ctx.client.send_raw(rb).await?;
    let mut from: Option<Url> = None;
    for _ in 0..=MAX_REDIRECTS {
        if !resp.status().is_redirection() {
            break;
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Fail::new(
                    Exit::Unavailable,
                    format!("HTTP {} without a Location header", resp.status()),
                )
            })?;
        let url = resp.url().join(location).map_err(|e| {
            Fail::new(
                Exit::Unavailable,
                format!("a redirect to a URL that does not parse ({e})"),
            )
        })?;
        // A file's URL carries its own signature: no token.
        resp = ctx
            .client
            .to_url(Method::GET, url.clone())
            .send()
            .await
            .map_err(|e| unreachable_url(&url, &e))?;
        from = Some(url);
    }
    let status = resp.status();
    if !status.is_success() {
        return Err(match from {
            Some(url) => {
                let what = format!("download of {key} of {target}:");
                transfer::url_refused(&what, &url, resp).await
            }
            None => ctx.client.read(resp).await?.fail_file(),
        }
        .into());
    }
    let bar = transfer::bar(resp.content_length(), key);
    let n = tokio::select! {
        n = transfer::download(resp, &dest, &bar) => n,
        _ = tokio::signal::ctrl_c() => {
            bar.abandon();
            let what = match &dest {
                Dest::File(p) => format!("; {} was not written", p.display()),
                Dest::Stdout => String::new(),
            };
            return Err(Fail::new(Exit::Refused, format!("interrupted{what}")).into());
        }
    };
    bar.finish_and_clear();
    let n = n?;
    if let Dest::File(_) = dest {
        eprintln!("oprc: saved {key} of {target} to {dest} ({n} bytes)");
    }
    Ok(())
}

/// PUTs `source` to a file URL (without the token) and refuses any answer
/// but a 2xx.
async fn put_to_url(
    ctx: &Ctx,
    target: &ObjectTarget,
    key: &str,
    url: &Url,
    source: Source,
) -> Result<(), Fail> {
    let rb = ctx.client.to_url(Method::PUT, url.clone());
    let resp = transfer::upload(rb, url, source, key).await?;
    if !resp.status().is_success() {
        let what = format!("upload of {key} of {target}:");
        return Err(transfer::url_refused(&what, url, resp).await);
    }
    Ok(())
}

/// `file?commit=VERSION[&key=KEY]`; every key in `expected` must be in the
/// answer's `committed`.
async fn commit(
    ctx: &Ctx,
    target: &ObjectTarget,
    version: &str,
    key: Option<&str>,
    expected: &[String],
) -> Result<(), Fail> {
    let mut query = vec![("commit", version)];
    if let Some(k) = key {
        query.push(("key", k));
    }
    let rb = ctx
        .client
        .request(Method::POST, &invoke_file_path(target))
        .query(&query);
    let reply = ctx.client.send(rb).await?;
    let answer = invocation_body(&reply)?;
    let committed: BTreeSet<&str> = answer
        .get("committed")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = expected
        .iter()
        .map(String::as_str)
        .filter(|k| !committed.contains(k))
        .collect();
    if !missing.is_empty() {
        return Err(Fail::new(
            Exit::Refused,
            format!(
                "the node did not commit {} of {target} (it committed: {})",
                missing.join(", "),
                if committed.is_empty() {
                    "nothing".to_owned()
                } else {
                    committed.into_iter().collect::<Vec<_>>().join(", ")
                }
            ),
        ));
    }
    Ok(())
}

async fn get_object(ctx: &Ctx, target: &ObjectTarget) -> anyhow::Result<Value> {
    let rb = ctx
        .client
        .get(&["classes", &target.cls, "objects", &target.oid]);
    Ok(ctx.client.call(rb).await?)
}

fn files_path<'a>(target: &'a ObjectTarget, key: &'a str) -> [&'a str; 6] {
    ["classes", &target.cls, "objects", &target.oid, "files", key]
}

fn invoke_file_path(target: &ObjectTarget) -> [&str; 6] {
    [
        "classes",
        &target.cls,
        "objects",
        &target.oid,
        "invokes",
        "file",
    ]
}

/// The `body` of a successful invocation answer; anything else (an API
/// error, a FAILED call) is refused.
fn invocation_body(reply: &Reply) -> Result<&Value, Fail> {
    let failed = matches!(
        reply.invocation_status(),
        Some("FAILED" | "DEPENDENCY_FAILED")
    );
    if !reply.status.is_success() || failed {
        return Err(reply.fail_file());
    }
    Ok(reply.body.get("body").unwrap_or(&Value::Null))
}

/// `body.version`, as the commit's query takes it.
fn version_of(reply: &Reply, body: &Value) -> Result<String, Fail> {
    match body.get("version") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(malformed(reply, "no `body.version`")),
    }
}

/// `body.uploadUrls[key]`, resolved against the node's address.
fn upload_url(ctx: &Ctx, reply: &Reply, body: &Value, key: &str) -> Result<Url, Fail> {
    let urls = body.get("uploadUrls").and_then(Value::as_object);
    match urls.and_then(|u| u.get(key)).and_then(Value::as_str) {
        Some(u) => ctx.client.resolve(u),
        None => {
            let given = urls.map_or_else(String::new, |u| {
                u.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            });
            let given = if given.is_empty() { "none" } else { &given };
            Err(malformed(
                reply,
                &format!("no upload URL for key `{key}` (URLs for: {given})"),
            ))
        }
    }
}

fn malformed(reply: &Reply, what: &str) -> Fail {
    let status = reply.status;
    let code = if status == StatusCode::OK {
        String::new()
    } else {
        format!(" (HTTP {})", status.as_u16())
    };
    Fail::new(
        Exit::Unavailable,
        format!("unexpected answer from the node{code}: {what}"),
    )
}

fn unreachable_url(url: &Url, e: &reqwest::Error) -> Fail {
    Fail::new(
        Exit::Unavailable,
        format!(
            "cannot fetch {}: {}",
            crate::client::shown(url),
            crate::client::root_cause(e)
        ),
    )
}

/// An error after the object was created: say so, and how to finish.
fn partly_created(target: &ObjectTarget, e: Fail) -> Fail {
    Fail::new(
        e.exit,
        format!(
            "{}\nnote: object {target} was created, but its files were not committed; \
             upload them with `oprc obj file put {target} KEY PATH`",
            e.message
        ),
    )
}

#[cfg(test)]
mod tests;
