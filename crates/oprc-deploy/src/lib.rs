//! Kubernetes manifests rendered from an Oparaca package, for the
//! functions a node cannot run itself: a Knative Service per function with
//! `provision.knative`, a Deployment and a Service per function with
//! `provision.deployment`. Typed with k8s-openapi (the Knative Service
//! wraps its `PodSpec` parts in types of our own), so what is rendered
//! parses back into the same types. `oprc pkg render FILE` prints them;
//! the node then calls each function at the URL named in the comment above
//! its manifest (set it as the function's `provision.http.url`).
//!
//! Layers: `names` (DNS labels from function keys), `knative` and `kube`
//! (one function's manifests), this file (a package's, as YAML).

pub mod knative;
pub mod kube;
mod names;

use oprc_package::Package;
use oprc_package::model::Function;
use serde::Serialize;

pub use names::label;

/// A rendered manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Manifest {
    Knative(Box<knative::Service>),
    Deployment(Box<k8s_openapi::api::apps::v1::Deployment>),
    Service(Box<k8s_openapi::api::core::v1::Service>),
}

/// One function's manifests and where the node reaches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// `<package>.<function>`.
    pub function: String,
    /// The URL inside the cluster (`provision.http.url`).
    pub url: String,
    pub manifests: Vec<Manifest>,
}

/// Why a package cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("functions {0} and {1} would get the same Kubernetes name {2:?}; rename one")]
    SameName(String, String, String),
    #[error("function {0}: {1}")]
    Invalid(String, String),
}

/// Where the manifests go.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `metadata.namespace`; `None` leaves it to `kubectl -n`.
    pub namespace: Option<String>,
}

/// The manifests of every function of `package` provisioned for
/// Kubernetes, in the package's order. Functions run elsewhere (process,
/// http, macros) render nothing.
pub fn render(package: &Package, target: &Target) -> Result<Vec<Rendered>, RenderError> {
    let mut out: Vec<Rendered> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for f in &package.functions {
        let Some(provision) = &f.provision else {
            continue;
        };
        if provision.knative.is_none() && provision.deployment.is_none() {
            continue;
        }
        let key = format!("{}.{}", package.name, f.name);
        let name = label(&key);
        if let Some((other, _)) = names.iter().find(|(_, n)| *n == name) {
            return Err(RenderError::SameName(other.clone(), key, name));
        }
        names.push((key.clone(), name.clone()));
        out.push(one(&key, &name, f, target)?);
    }
    Ok(out)
}

fn one(key: &str, name: &str, f: &Function, target: &Target) -> Result<Rendered, RenderError> {
    let provision = f.provision.as_ref();
    let ns = target.namespace.as_deref();
    let host = match ns {
        Some(ns) => format!("{name}.{ns}.svc.cluster.local"),
        None => format!("{name}.NAMESPACE.svc.cluster.local"),
    };
    if let Some(k) = provision.and_then(|p| p.knative.as_ref()) {
        let service = knative::service(key, name, ns, k)
            .map_err(|e| RenderError::Invalid(key.to_owned(), e))?;
        let path = k.api_path.as_deref().unwrap_or("");
        return Ok(Rendered {
            function: key.to_owned(),
            url: format!("http://{host}{path}"),
            manifests: vec![Manifest::Knative(Box::new(service))],
        });
    }
    let Some(d) = provision.and_then(|p| p.deployment.as_ref()) else {
        return Err(RenderError::Invalid(
            key.to_owned(),
            "not provisioned for Kubernetes".into(),
        ));
    };
    let (deployment, service) =
        kube::deployment(key, name, ns, d).map_err(|e| RenderError::Invalid(key.to_owned(), e))?;
    let path = d.api_path.as_deref().unwrap_or("");
    Ok(Rendered {
        function: key.to_owned(),
        url: format!("http://{host}{path}"),
        manifests: vec![
            Manifest::Deployment(Box::new(deployment)),
            Manifest::Service(Box::new(service)),
        ],
    })
}

/// `rendered` as one multi-document YAML text, each function's manifests
/// under a comment naming it and its URL.
pub fn to_yaml(rendered: &[Rendered]) -> Result<String, serde_norway::Error> {
    let mut text = String::new();
    for r in rendered {
        for m in &r.manifests {
            text.push_str("---\n");
            text.push_str(&format!("# function {}: {}\n", r.function, r.url));
            text.push_str(&serde_norway::to_string(m)?);
        }
    }
    Ok(text)
}
