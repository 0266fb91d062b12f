//! From a function's `provision` and `config` to an engine deployment.

use std::collections::BTreeMap;

use oprc_engine::{Deployment, ProcessSpec};
use oprc_package::{Diagnostic, Document, FunctionType, ResolvedFunction};

/// Where a task function runs: `provision.process`, then `provision.http`,
/// then `config.staticUrl`. `None` for builtins and macros, and for task
/// functions with none of these.
pub fn deployment_of(f: &ResolvedFunction) -> Option<Deployment> {
    if f.kind != FunctionType::Task {
        return None;
    }
    let provision = f.provision.as_ref();
    if let Some(p) = provision.and_then(|p| p.process.as_ref()) {
        // Workers listen on loopback only and exit if this node dies without
        // stopping them (both SDKs watch `OPRC_NODE_PID`); a function may
        // override either.
        let mut env = BTreeMap::from([
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("OPRC_NODE_PID".to_owned(), std::process::id().to_string()),
        ]);
        env.extend(f.config.custom.clone());
        env.extend(p.env.clone());
        return Some(Deployment::Process(ProcessSpec {
            command: p.command.argv(),
            env,
            workdir: p.workdir.as_ref().map(Into::into),
            min_instances: p.min_instances,
            max_instances: p.max_instances,
            concurrency: p.concurrency,
            idle_timeout: p.idle_timeout.into(),
            readiness_timeout: p.readiness_timeout.into(),
        }));
    }
    if let Some(h) = provision.and_then(|p| p.http.as_ref()) {
        return Some(Deployment::Http { url: h.url.clone() });
    }
    f.config
        .static_url
        .as_ref()
        .map(|url| Deployment::Http { url: url.clone() })
}

/// Whether a function needs somewhere to run on this node.
pub(crate) fn needs_deployment(f: &ResolvedFunction) -> bool {
    f.kind == FunctionType::Task
        && !f
            .provision
            .as_ref()
            .is_some_and(|p| p.knative.is_some() || p.deployment.is_some())
}

fn path_of(doc: &Document, f: &ResolvedFunction) -> String {
    let index = doc
        .package()
        .functions
        .iter()
        .position(|g| g.name == f.name)
        .unwrap_or(0);
    format!("functions[{index}]")
}

/// A task function provisioned only for Kubernetes (`knative`,
/// `deployment`): accepted, but this node cannot run it yet.
pub(crate) fn cluster_only(doc: &Document, f: &ResolvedFunction) -> Option<Diagnostic> {
    if f.kind != FunctionType::Task {
        return None;
    }
    let path = format!("{}.provision", path_of(doc, f));
    Some(Diagnostic::warning(
        doc.position(&path),
        path,
        format!(
            "`{}` is provisioned for Kubernetes (knative/deployment), which this node cannot \
             deploy to yet: its calls fail with `function_unreachable` until it also has \
             `provision.process`, `provision.http` or `config.staticUrl`",
            f.name
        ),
    ))
}

/// Whether a function would run as local worker processes.
pub(crate) fn is_process(f: &ResolvedFunction) -> bool {
    f.kind == FunctionType::Task && f.provision.as_ref().is_some_and(|p| p.process.is_some())
}

/// A process function on a node that runs none (`--no-process-functions`).
pub(crate) fn process_refused(doc: &Document, f: &ResolvedFunction) -> Diagnostic {
    let path = format!("{}.provision.process", path_of(doc, f));
    Diagnostic::error(
        doc.position(&path),
        path,
        format!(
            "`{}` runs a local command, and this node runs none (--no-process-functions): \
             use `provision.http.url` or `config.staticUrl`, or start the node without that flag",
            f.name
        ),
    )
}

pub(crate) fn missing(doc: &Document, f: &ResolvedFunction) -> Diagnostic {
    let path = path_of(doc, f);
    Diagnostic::error(
        doc.position(&path),
        path,
        format!(
            "task function `{}` has nowhere to run: set `provision.process` (local workers), \
             `provision.http.url` or `config.staticUrl`",
            f.name
        ),
    )
}

/// Class settings this node decides for itself: said, not silently dropped.
pub(crate) fn node_level_settings(doc: &Document) -> Vec<Diagnostic> {
    doc.package()
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.config.partitions.is_some())
        .map(|(i, c)| {
            let path = format!("classes[{i}].config.partitions");
            Diagnostic::warning(
                doc.position(&path),
                path,
                format!(
                    "class `{}`: partitions are set per node in this version (`oprc serve \
                     --partitions`); this value has no effect yet",
                    c.name
                ),
            )
        })
        .collect()
}
