//! `oprc pkg`: apply, get, delete, list, and render (local).

use std::path::Path;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::{Ctx, list_all, read_file, read_stdin};
use crate::cli::PkgCmd;
use crate::output::{self, Format};

pub async fn run(ctx: &Ctx, cmd: PkgCmd) -> anyhow::Result<()> {
    match cmd {
        PkgCmd::Apply { file } => apply(ctx, &file).await,
        PkgCmd::Get { name } => {
            let pkg = ctx
                .client
                .call(ctx.client.get(&["packages", &name]))
                .await?;
            output::print(ctx.format(Format::Json), &pkg, output::packages)
        }
        PkgCmd::Delete { name } => {
            let rb = ctx.client.request(Method::DELETE, &["packages", &name]);
            ctx.client.call(rb).await?;
            eprintln!("oprc: package `{name}` deleted");
            Ok(())
        }
        PkgCmd::List => {
            let list = list_all(ctx, &["packages"]).await?;
            output::print(ctx.format(Format::Table), &list, output::packages)
        }
        PkgCmd::Render { file, namespace } => render(&file, namespace),
    }
}

/// `oprc pkg render`: the manifests on stdout, diagnostics and a summary
/// on stderr.
fn render(file: &Path, namespace: Option<String>) -> anyhow::Result<()> {
    let (name, source) = if file == Path::new("-") {
        ("<stdin>".to_owned(), read_stdin()?)
    } else {
        (file.display().to_string(), read_file(file)?)
    };
    let doc = match oprc_package::parse(&source) {
        Ok(doc) => doc,
        Err(problems) => {
            for d in &problems {
                eprintln!("{name}:{d}");
            }
            anyhow::bail!("{name} is not a valid package; nothing rendered");
        }
    };
    for w in doc.warnings() {
        eprintln!("{name}:{w}");
    }
    let target = oprc_deploy::Target { namespace };
    let rendered = oprc_deploy::render(doc.package(), &target)?;
    if rendered.is_empty() {
        eprintln!(
            "oprc: no function of {name} is provisioned for Kubernetes (knative or deployment); \
             nothing to render"
        );
        return Ok(());
    }
    print!("{}", oprc_deploy::to_yaml(&rendered)?);
    eprintln!(
        "oprc: {} function(s) rendered; a node calls each one at the URL in the comment above \
         it: set that as the function's provision.http.url",
        rendered.len()
    );
    Ok(())
}

async fn apply(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let (name, source) = if file == Path::new("-") {
        ("<stdin>".to_owned(), read_stdin()?)
    } else {
        (file.display().to_string(), read_file(file)?)
    };
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let content_type = if is_json {
        "application/json"
    } else {
        "application/yaml"
    };
    let rb = ctx
        .client
        .request(Method::POST, &["packages"])
        .header(CONTENT_TYPE, content_type)
        .body(source);
    let reply = ctx.client.send(rb).await?;
    if !reply.status.is_success() {
        let error = reply.body.get("error");
        if error.and_then(|e| e.get("code")).and_then(Value::as_str) == Some("invalid_package") {
            for d in diagnostics(error.and_then(|e| e.get("details"))) {
                eprintln!("{name}:{d}");
            }
        }
        return Err(reply.fail().into());
    }
    for w in diagnostics(reply.body.get("warnings")) {
        eprintln!("warning: {name}:{w}");
    }
    let package = reply.body.get("package").unwrap_or(&reply.body);
    let pkg_name = package.get("name").and_then(Value::as_str).unwrap_or("?");
    let verb = if reply.status == reqwest::StatusCode::CREATED {
        "created"
    } else {
        "updated"
    };
    eprintln!("oprc: package `{pkg_name}` {verb}");
    output::print(ctx.format(Format::Json), package, output::packages)
}

/// The `LINE:COL: PATH: MESSAGE` texts of package diagnostics.
fn diagnostics(list: Option<&Value>) -> Vec<String> {
    let Some(list) = list.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|d| match d.get("text").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => {
                let f = |k| {
                    d.get(k).map_or_else(
                        || "?".to_owned(),
                        |v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                };
                format!(
                    "{}:{}: {}: {}",
                    f("line"),
                    f("column"),
                    f("path"),
                    f("message")
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diagnostics_use_text_or_fall_back_to_fields() {
        let details = json!([
            {"line": 3, "column": 7, "path": "classes[0].x", "message": "unknown field", "text": "3:7: classes[0].x: unknown field"},
            {"line": 1, "column": 1, "path": "name", "message": "missing"},
        ]);
        assert_eq!(
            diagnostics(Some(&details)),
            ["3:7: classes[0].x: unknown field", "1:1: name: missing"]
        );
        assert!(diagnostics(None).is_empty());
    }
}
