//! A Deployment and its Service for a function with
//! `provision.deployment`, and the parts both renderings share: labels
//! and the function's container.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use oprc_package::model::DeploymentProvision;

/// The port a function listens on unless its provision names one.
pub const DEFAULT_PORT: u16 = 8080;

/// The labels of a function's objects; `app.kubernetes.io/name` selects.
pub fn labels(key: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "oparaca".to_owned()),
        ("oparaca.dev/function".to_owned(), key.to_owned()),
    ])
}

/// The function's container: its image on `port`, `PORT` and its
/// environment, and its resources (`[(resource, request, limit)]`).
pub fn container<'a>(
    image: &str,
    port: Option<u16>,
    env: &BTreeMap<String, String>,
    resources: [(&str, Option<&'a str>, Option<&'a str>); 2],
    pull_policy: Option<&str>,
) -> Container {
    let port = port.unwrap_or(DEFAULT_PORT);
    let mut vars = vec![EnvVar {
        name: "PORT".to_owned(),
        value: Some(port.to_string()),
        ..EnvVar::default()
    }];
    vars.extend(
        env.iter()
            .filter(|(k, _)| *k != "PORT")
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                ..EnvVar::default()
            }),
    );
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (what, request, limit) in resources {
        if let Some(r) = request {
            requests.insert(what.to_owned(), Quantity(r.to_owned()));
        }
        if let Some(l) = limit {
            limits.insert(what.to_owned(), Quantity(l.to_owned()));
        }
    }
    let resources = (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    });
    Container {
        name: "function".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: pull_policy.map(str::to_owned),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(port),
            name: Some("http1".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(vars),
        resources,
        ..Container::default()
    }
}

/// The Deployment of function `key`, named `name`, and the Service in
/// front of it (port 80 to the function's port).
pub fn deployment(
    key: &str,
    name: &str,
    namespace: Option<&str>,
    d: &DeploymentProvision,
) -> Result<(Deployment, Service), String> {
    let replicas = i32::try_from(d.replicas.unwrap_or(1))
        .map_err(|_| format!("replicas {} is too many", d.replicas.unwrap_or(1)))?;
    if let Some(p) = d.pull_policy.as_deref()
        && !matches!(p, "Always" | "IfNotPresent" | "Never")
    {
        return Err(format!(
            "pullPolicy must be Always, IfNotPresent or Never, got {p:?}"
        ));
    }
    let labels = labels(key, name);
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), name.to_owned())]);
    let meta = || ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let port = d.port.unwrap_or(DEFAULT_PORT);
    let deployment = Deployment {
        metadata: meta(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(
                        &d.image,
                        Some(port),
                        &d.env,
                        [
                            ("cpu", d.requests_cpu.as_deref(), d.limits_cpu.as_deref()),
                            (
                                "memory",
                                d.requests_memory.as_deref(),
                                d.limits_memory.as_deref(),
                            ),
                        ],
                        d.pull_policy.as_deref(),
                    )],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let service = Service {
        metadata: meta(),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::Int(i32::from(port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Ok((deployment, service))
}
