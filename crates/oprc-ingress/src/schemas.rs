//! Schemas of the OpenAPI document for the types the API answers with.
//!
//! The answers are `oprc-core` and `oprc-package` types, which know
//! nothing of OpenAPI; these mirrors describe their JSON. The integration
//! tests validate real answers against the served document, and the
//! schemathesis run in `scripts/test.sh` does the same with generated
//! requests, so a mirror cannot drift from what the node sends.
//!
//! Nothing here is constructed: the types exist for their schemas.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

/// What `oprc_core` ids accept: letters, digits and `. _ - ~`, 1 to 200.
pub(crate) const ID_PATTERN: &str = "^[A-Za-z0-9._~-]{1,200}$";

fn string(description: &str, pattern: Option<&str>, max: Option<usize>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(pattern)
        .min_length(Some(1))
        .max_length(max)
        .into()
}

macro_rules! id_schema {
    ($name:ident, $description:literal) => {
        #[doc = $description]
        pub(crate) struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string($description, Some(ID_PATTERN), Some(200))
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

id_schema!(ClassKey, "A class key, `<package>.<class>`.");
id_schema!(ObjectId, "An object id, unique within its class.");
id_schema!(FunctionKey, "A function key, `<package>.<function>`.");
id_schema!(InvocationId, "An invocation id.");

/// A binding (function) name of a class.
pub(crate) struct BindingName;
impl PartialSchema for BindingName {
    fn schema() -> RefOr<Schema> {
        string(
            "A function binding name of the class.",
            Some("^[^/]{1,200}$"),
            Some(200),
        )
    }
}
impl ToSchema for BindingName {}

/// A package name.
pub(crate) struct PackageName;
impl PartialSchema for PackageName {
    fn schema() -> RefOr<Schema> {
        string("A package name.", Some("^[^/]{1,200}$"), Some(200))
    }
}
impl ToSchema for PackageName {}

/// The `Idempotency-Key` header.
pub(crate) struct IdempotencyKey;
impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        string(
            "A key that makes a retried call run once: 1 to 255 visible ASCII characters.",
            Some("^[!-~]{1,255}$"),
            Some(255),
        )
    }
}
impl ToSchema for IdempotencyKey {}

/// A W3C `traceparent` header (passed on to the function when well formed,
/// ignored otherwise).
pub(crate) struct Traceparent;
impl PartialSchema for Traceparent {
    fn schema() -> RefOr<Schema> {
        string(
            "W3C trace context: `00-<32 hex>-<16 hex>-<2 hex>`; anything else is ignored.",
            None,
            Some(256),
        )
    }
}
impl ToSchema for Traceparent {}

/// A function's `args`: every query parameter without a leading `_`.
pub(crate) struct Args;
impl PartialSchema for Args {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "The function's arguments: every query parameter whose name does not start \
                 with `_` (names with `_` are platform flags).",
            ))
            .additional_properties(Some(
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)),
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .pattern(Some("^[^_]")),
            ))
            .into()
    }
}
impl ToSchema for Args {}

/// A page offset (`0` to `2^32 - 1`).
pub(crate) struct Offset;
impl PartialSchema for Offset {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(0))
            .maximum(Some(u32::MAX))
            .description(Some("Items to skip."))
            .into()
    }
}
impl ToSchema for Offset {}

/// A page size (`1` to `1000`, default `100`).
pub(crate) struct Limit;
impl PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(1000))
            .description(Some("Page size, 1 to 1000 (default 100)."))
            .into()
    }
}
impl ToSchema for Limit {}

/// The package document; replaced, when the document is built, by the
/// JSON Schema of the package format (`oprc_package::json_schema`).
pub(crate) struct Package;
impl PartialSchema for Package {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().into()
    }
}
impl ToSchema for Package {}

/// A refused request.
#[derive(ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable code, see `docs/api.md`.
    #[schema(example = "not_found")]
    code: String,
    /// What happened and what to do, in words.
    message: String,
    /// Package problems (`invalid_package`).
    details: Option<Vec<Diagnostic>>,
}

/// A problem in a package, at its line and column.
#[derive(ToSchema)]
pub(crate) struct Diagnostic {
    line: u32,
    column: u32,
    /// Where in the document, e.g. `classes[0].functions[1]`.
    path: String,
    message: String,
    /// `line:column: path: message`.
    text: String,
}

/// An object's metadata.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    id: ObjectId,
    cls: ClassKey,
    /// Bumped by every committed change.
    revision: u64,
    ver_ids: BTreeMap<String, String>,
    refs: BTreeMap<String, ObjectId>,
    /// Log offset of the last async call applied.
    last_offset: u64,
}

/// An object: metadata and JSON data.
#[derive(ToSchema)]
#[schema(as = Object)]
pub(crate) struct ObjectRecord {
    #[serde(rename = "_meta")]
    meta: ObjectMeta,
    data: Value,
}

/// The status of an invocation.
#[derive(ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum InvocationStatus {
    Queue,
    Doing,
    Succeeded,
    Failed,
    DependencyFailed,
}

/// Why an invocation failed.
#[derive(ToSchema)]
pub(crate) struct InvocationError {
    /// Stable code, see `docs/api.md`.
    #[schema(example = "function_failed")]
    code: String,
    message: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvocationStats {
    que_ts: i64,
    offload_ts: i64,
    cpt_ts: i64,
}

/// The answer of a call, and an invocation's record.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvocationResponse {
    inv_id: InvocationId,
    status: InvocationStatus,
    main: Option<ObjectRecord>,
    output: Option<ObjectRecord>,
    /// The function's answer body (any JSON).
    body: Option<Value>,
    error: Option<InvocationError>,
    /// A macro's output object ids, by step name.
    macro_ids: Option<BTreeMap<String, ObjectId>>,
    /// A macro's steps, in declaration order.
    steps: Option<Vec<StepReport>>,
    stats: Option<InvocationStats>,
}

/// An object named with its class.
#[derive(ToSchema)]
pub(crate) struct ObjectRef {
    cls: ClassKey,
    oid: ObjectId,
}

/// Where one step of a macro stands.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StepReport {
    /// The step's `as` (`_N` for the N-th step without one).
    name: String,
    status: InvocationStatus,
    /// The step's own invocation id.
    inv_id: InvocationId,
    target: Option<ObjectRef>,
    /// Its output object's id.
    output: Option<ObjectId>,
    error: Option<InvocationError>,
}

/// A page of objects.
#[derive(ToSchema)]
pub(crate) struct ObjectList {
    items: Vec<ObjectRecord>,
    /// Cursor of the next page (pass it as `after`); absent on the last.
    next: Option<ObjectId>,
}

/// A function binding of a resolved class.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResolvedBinding {
    name: String,
    function: FunctionKey,
    #[schema(example = "TASK")]
    function_type: String,
    #[schema(example = "PUBLIC")]
    access: String,
    output_cls: Option<ClassKey>,
    immutable: bool,
    no_main: bool,
    default_args: BTreeMap<String, String>,
    #[serde(rename = "override")]
    override_options: BTreeMap<String, Value>,
    inherited_from: Option<ClassKey>,
}

/// A class with what it inherits resolved.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResolvedClass {
    key: ClassKey,
    package: String,
    name: String,
    description: Option<String>,
    disabled: bool,
    parents: Vec<ClassKey>,
    ancestors: Vec<ClassKey>,
    bindings: BTreeMap<String, ResolvedBinding>,
    keys: BTreeMap<String, Value>,
    refs: BTreeMap<String, Value>,
    config: BTreeMap<String, Value>,
}

/// A function, with its live deployment when it has one.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResolvedFunction {
    key: FunctionKey,
    package: String,
    name: String,
    #[serde(rename = "type")]
    #[schema(example = "TASK")]
    kind: String,
    description: Option<String>,
    output_cls: Option<ClassKey>,
    immutable: bool,
    provision: Option<BTreeMap<String, Value>>,
    config: BTreeMap<String, Value>,
    /// Engine, worker instances, calls in flight and counters.
    deployment: Option<BTreeMap<String, Value>>,
}

/// A package as the catalog holds it.
#[derive(ToSchema)]
pub(crate) struct ResolvedPackage {
    name: String,
    version: Option<String>,
    description: Option<String>,
    required: Vec<String>,
    disabled: bool,
    classes: Vec<ResolvedClass>,
    functions: Vec<ResolvedFunction>,
}

/// The answer of `POST /api/packages`.
#[derive(ToSchema)]
pub(crate) struct Applied {
    package: ResolvedPackage,
    warnings: Vec<Diagnostic>,
}

macro_rules! listing {
    ($name:ident, $item:ty) => {
        /// A page of a listing.
        #[derive(ToSchema)]
        pub(crate) struct $name {
            items: Vec<$item>,
            offset: u64,
            /// Items in the whole listing.
            total: u64,
        }
    };
}

listing!(PackageListing, ResolvedPackage);
listing!(ClassListing, ResolvedClass);
listing!(FunctionListing, ResolvedFunction);

/// The path of a class-level call.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ClassCall {
    /// Class key `<package>.<class>`.
    #[param(value_type = ClassKey)]
    cls: String,
    /// Function binding name.
    #[param(value_type = BindingName)]
    fb: String,
}

/// The path of an object call.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ObjectCall {
    /// Class key `<package>.<class>`.
    #[param(value_type = ClassKey)]
    cls: String,
    /// Object id.
    #[param(value_type = ObjectId)]
    oid: String,
    /// Function binding name.
    #[param(value_type = BindingName)]
    fb: String,
}

/// The query of a call: platform flags (a leading `_`) and `args`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallQuery {
    /// Enqueue durably and answer 202 `{invId, status: QUEUE}`.
    #[param(rename = "_async")]
    run_async: Option<bool>,
    /// Include the main object (default: only for `get` and `update`).
    #[param(rename = "_showMain")]
    show_main: Option<bool>,
    /// Include the output object (default true).
    #[param(rename = "_showOutput")]
    show_output: Option<bool>,
    /// Both of the above.
    #[param(rename = "_showAll")]
    show_all: Option<bool>,
    /// The function's arguments: every query parameter without a leading `_`.
    #[param(style = Form, explode, value_type = Option<Args>)]
    args: Option<BTreeMap<String, String>>,
}

/// The headers a call reads.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct CallHeaders {
    /// A repeated key answers the first call's result and runs nothing;
    /// the same key for another request answers 422.
    #[param(rename = "Idempotency-Key")]
    #[param(value_type = IdempotencyKey, required = false)]
    idempotency_key: Option<String>,
    /// W3C trace context, passed on to the function.
    #[param(value_type = Traceparent, required = false)]
    traceparent: Option<String>,
}

/// `offset` and `limit` of the catalogue listings.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    #[param(value_type = Option<Offset>)]
    offset: Option<u64>,
    #[param(value_type = Option<Limit>)]
    limit: Option<u64>,
}

/// `limit` and `after` of an object listing.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ObjectPageQuery {
    #[param(value_type = Option<Limit>)]
    limit: Option<u64>,
    /// The `next` cursor of the previous page.
    #[param(value_type = Option<ObjectId>)]
    after: Option<String>,
}
