//! A Knative Service (`serving.knative.dev/v1`) for a function with
//! `provision.knative`: one container on the function's port, its
//! environment and resources, and the autoscaling annotations
//! (`min-scale`, `max-scale`, `target`, `scale-down-delay`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use oprc_package::model::KnativeProvision;
use serde::{Deserialize, Serialize};

use crate::kube::{container, labels};

pub const API_VERSION: &str = "serving.knative.dev/v1";

/// `serving.knative.dev/v1` `Service`, the fields this renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub template: RevisionTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionTemplate {
    pub metadata: ObjectMeta,
    pub spec: RevisionSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionSpec {
    /// Requests one replica serves at once (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    pub containers: Vec<Container>,
}

const AUTOSCALING: &str = "autoscaling.knative.dev";

/// The Service of function `key`, named `name`.
pub fn service(
    key: &str,
    name: &str,
    namespace: Option<&str>,
    k: &KnativeProvision,
) -> Result<Service, String> {
    let mut annotations = BTreeMap::new();
    let mut scale = |what: &str, v: Option<i32>| -> Result<(), String> {
        match v {
            Some(v) if v < -1 => Err(format!("knative {what} must be -1 or more, got {v}")),
            Some(v) => {
                annotations.insert(format!("{AUTOSCALING}/{what}"), v.to_string());
                Ok(())
            }
            None => Ok(()),
        }
    };
    scale("min-scale", k.min_scale)?;
    scale("max-scale", k.max_scale.filter(|v| *v != -1))?;
    scale("target", k.target_concurrency)?;
    if let Some(d) = k.scale_down_delay {
        // A Go duration, as Knative reads it.
        let ms = d.get().as_millis();
        let text = if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        annotations.insert(format!("{AUTOSCALING}/scale-down-delay"), text);
    }
    if let Some(c) = k.concurrency
        && c < 0
    {
        return Err(format!("knative concurrency must be 0 or more, got {c}"));
    }
    let labels = labels(key, name);
    Ok(Service {
        api_version: API_VERSION.to_owned(),
        kind: "Service".to_owned(),
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            template: RevisionTemplate {
                metadata: ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..ObjectMeta::default()
                },
                spec: RevisionSpec {
                    container_concurrency: k.concurrency.map(i64::from),
                    containers: vec![container(
                        &k.image,
                        k.port,
                        &k.env,
                        [
                            ("cpu", k.requests_cpu.as_deref(), k.limits_cpu.as_deref()),
                            (
                                "memory",
                                k.requests_memory.as_deref(),
                                k.limits_memory.as_deref(),
                            ),
                        ],
                        None,
                    )],
                },
            },
        },
    })
}
