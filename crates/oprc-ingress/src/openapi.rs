//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes (`utoipa-axum` registers each route and its operation
//! together, so none can be routed and undocumented). It is
//! self-contained: the package format's JSON Schema
//! (`oprc_package::json_schema`) is embedded under
//! `components.schemas.Package` with its definitions beside it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Ref, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::schemas;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Oparaca node",
        description = "The HTTP API of an Oparaca node: the original Oparaca's REST paths plus \
                       invocation records, object listing and deletion. Error codes: docs/api.md."
    ),
    components(schemas(
        schemas::ErrorAnswer,
        schemas::ErrorDetail,
        schemas::Diagnostic,
        schemas::InvocationResponse,
        schemas::ObjectRecord,
        schemas::Package,
        // Used by parameters, which `routes!` does not collect.
        schemas::ClassKey,
        schemas::ObjectId,
        schemas::FunctionKey,
        schemas::InvocationId,
        schemas::BindingName,
        schemas::PackageName,
        schemas::IdempotencyKey,
        schemas::Traceparent,
        schemas::Args,
        schemas::Offset,
        schemas::Limit,
    )),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`--token` when the node has one (then every /api route needs it); \
                         otherwise the admin token the node keeps in `<data dir>/admin-token`, \
                         needed to change packages.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document without the router's routes (see [`crate::routes`]).
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served: JSON, with the package schema embedded.
pub(crate) fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    embed_package_schema(&mut doc);
    doc
}

pub(crate) static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let (_, doc) = crate::routes().split_for_parts();
    Bytes::from(serde_json::to_vec(&finish(doc)).expect("JSON serializes"))
});

/// Moves the package schema's `$defs` to `components.schemas.Package.<Name>`
/// and rewrites its references to point there.
fn embed_package_schema(doc: &mut Value) {
    let mut root = oprc_package::json_schema();
    let defs = match root.as_object_mut() {
        Some(obj) => {
            obj.remove("$schema");
            obj.remove("$defs")
        }
        None => None,
    };
    let mut entries = vec![("Package".to_owned(), root)];
    if let Some(Value::Object(defs)) = defs {
        entries.extend(defs.into_iter().map(|(k, v)| (format!("Package.{k}"), v)));
    }
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .expect("the document has component schemas");
    for (name, mut schema) in entries {
        rewrite_refs(&mut schema);
        schemas.insert(name, schema);
    }
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(r)) = obj.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/Package.{name}");
            }
            obj.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("Error"))),
        )
        .into()
}

fn retry_later(description: &str, schema: RefOr<Schema>) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::Integer))
                        .minimum(Some(1)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        )
        .into()
}

fn responses(list: Vec<(u16, RefOr<Response>)>) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter().map(|(s, r)| (s.to_string(), r)).collect()
}

/// What an `/api` route may answer before its handler runs.
pub(crate) struct Guarded;

impl IntoResponses for Guarded {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut list = Unauthenticated::responses();
        list.extend(responses(vec![(
            401,
            error(
                "the node has a token (--token) and the request lacks `Authorization: \
                 Bearer <token>`, or this route changes packages and needs the admin token",
            ),
        )]));
        list
    }
}

/// What a route that needs no token may answer before its handler runs.
pub(crate) struct Unauthenticated;

impl IntoResponses for Unauthenticated {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (
                403,
                error("a cross-site browser request (Origin / Sec-Fetch-Site) was refused"),
            ),
            (
                413,
                error("the declared body is larger than the node's limit"),
            ),
            (421, error("the Host header does not name this node")),
        ])
    }
}

/// What a route with a request body may also answer.
pub(crate) struct WithBody;

impl IntoResponses for WithBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (400, error("the body or a parameter is malformed")),
            (
                415,
                error("the body is neither JSON nor YAML, or has no type"),
            ),
        ])
    }
}

/// What a route that reads or writes storage may also answer.
pub(crate) struct Storage;

impl IntoResponses for Storage {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let schema: RefOr<Schema> = Ref::from_schema_name("Error").into();
        responses(vec![
            (
                500,
                error("stored data could not be read (corrupt) or the node failed; see its log"),
            ),
            (
                503,
                retry_later(
                    "storage is unavailable, or the node is shutting down; retry later",
                    schema,
                ),
            ),
        ])
    }
}

/// Refused before it ran (`Error`), or ran and failed (`InvocationResponse`
/// with `status: FAILED`).
pub(crate) struct CallFailure;

impl PartialSchema for CallFailure {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("Error"))
            .item(Ref::from_schema_name("InvocationResponse"))
            .into()
    }
}

impl ToSchema for CallFailure {}

/// What an invocation answers besides success, by status.
pub(crate) struct CallResponses;

impl IntoResponses for CallResponses {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let failure = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(CallFailure::schema())),
                )
                .into()
        };
        let mut list = Guarded::responses();
        list.extend(responses(vec![
            (
                400,
                failure(
                    "malformed request (bad id, flag, JSON body, Idempotency-Key), or a \
                     builtin refused its input (`invalid_argument`)",
                ),
            ),
            (
                403,
                failure("the binding is PRIVATE or INTERNAL, or a cross-site request"),
            ),
            (404, failure("no such class, binding or object")),
            (
                409,
                failure("the object changed concurrently, or `new`/`copy` with an id that exists"),
            ),
            (415, error("the body is not JSON, or has no type")),
            (
                422,
                failure(
                    "the function reported a failure (`function_failed`), or the \
                     Idempotency-Key was used for another request or has expired",
                ),
            ),
            (
                429,
                retry_later(
                    "too many calls are queued (on the node or this object); retry later",
                    Ref::from_schema_name("Error").into(),
                ),
            ),
            (
                500,
                failure("stored data could not be read, or the node failed; see its log"),
            ),
            (501, failure("a capability this node does not have yet")),
            (
                502,
                failure("the function answered badly or could not be reached"),
            ),
            (
                503,
                retry_later(
                    "storage is unavailable, or the node is shutting down; retry later",
                    CallFailure::schema(),
                ),
            ),
            (504, failure("the function did not answer in time")),
        ]));
        list
    }
}

/// The served document's text.
pub(crate) fn document_json() -> Bytes {
    DOCUMENT.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        crate::openapi_document()
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(obj) => {
                if let Some(Value::String(r)) = obj.get("$ref") {
                    out.push(r.clone());
                }
                obj.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_inside_the_document() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.iter().any(|r| r == "#/components/schemas/Package"));
        for r in all {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external ref {r}"));
            let pointer = pointer.replace("~1", "/");
            assert!(doc.pointer(&pointer).is_some(), "unresolved {r}");
        }
    }

    /// Every route goes through `routes!`, which documents it; and the
    /// document lists exactly these operations.
    #[test]
    fn openapi_documents_every_route() {
        let source = include_str!("lib.rs");
        assert!(
            !source.contains(concat!(".route", "(")),
            "a route added without `routes!` would be undocumented"
        );
        let doc = doc();
        let mut documented: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("path item");
                item.keys()
                    .filter(|m| !matches!(m.as_str(), "parameters" | "summary" | "description"))
                    .map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .collect();
        documented.sort();
        let expected = [
            "DELETE /api/classes/{cls}/objects/{oid}",
            "DELETE /api/packages/{name}",
            "GET /api/classes",
            "GET /api/classes/{cls}",
            "GET /api/classes/{cls}/invokes/{fb}",
            "GET /api/classes/{cls}/objects",
            "GET /api/classes/{cls}/objects/{oid}",
            "GET /api/classes/{cls}/objects/{oid}/files/{key}",
            "GET /api/classes/{cls}/objects/{oid}/invokes/{fb}",
            "GET /api/functions",
            "GET /api/functions/{key}",
            "GET /api/invocations/{id}",
            "GET /api/openapi.json",
            "GET /api/packages",
            "GET /api/packages/{name}",
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "POST /api/classes/{cls}/invokes/{fb}",
            "POST /api/classes/{cls}/objects/{oid}/invokes/{fb}",
            "POST /api/packages",
            "PUT /api/classes/{cls}/objects/{oid}/files/{key}",
        ];
        assert_eq!(documented, expected);
    }

    #[test]
    fn admin_routes_are_documented_as_needing_the_token() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let method: http::Method = method.to_uppercase().parse().unwrap();
                let needs = op.get("security").is_some();
                assert_eq!(
                    needs,
                    crate::is_admin_route(&method, path),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn every_api_operation_lists_its_guard_statuses() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/") {
                continue;
            }
            for (method, op) in item.as_object().unwrap() {
                // Only the document itself needs no token.
                let needs_token = path != "/api/openapi.json";
                for status in ["401", "403", "413", "421"] {
                    let listed = op["responses"].get(status).is_some();
                    let expected = status != "401" || needs_token;
                    assert_eq!(listed, expected, "{method} {path} {status}");
                }
                if method == "post" {
                    assert!(op["responses"].get("415").is_some(), "{method} {path}");
                }
            }
        }
    }
}
