//! The OpenAPI 3.1 document at `/schema/openapi.json`: the original's operation IDs, tags,
//! headers, bodies and response schemas (a client contract, spec 7), written out here rather
//! than derived, so it stays exactly that. Deliberate changes: `POST /api/config` documents
//! its 400 (a refused config is answered before any job is made); a user's `ssh_key` is not
//! required (it never was: a user without a key is valid, spec 9.13); the partial routes'
//! 400 is the report (or, for a body that is not JSON, the framework's error); and ours are
//! added: the `confirm` query, `jobsConfirm`, a job's `confirm_deadline`.
//!
//! To document a new route, add its operation to [`document`] with [`operation`].

use atomix_api::{
    CONFIRM_QUERY, DEFAULT_CONFIRM_SECONDS, HEADER_FILENAME, HEADER_NONCE, HEADER_SIGNATURE,
    MAX_CONFIRM_SECONDS, MIN_CONFIRM_SECONDS, routes,
};
use atomix_config::edit::{NETWORK_KEYS, UnitKind};
use axum::Json;
use serde_json::{Map, Value, json};

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

/// A JSON response with the component `schema`.
pub fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": reference(schema)}},
    })
}

/// The 401 of a guarded route.
pub fn unauthorized() -> Value {
    json_response(
        "Not authenticated: missing or bad signature, nonce or signers, or a refused browser origin",
        "FrameworkErrorResponseBody",
    )
}

/// The 409 of a route that makes a job.
pub fn busy() -> Value {
    json_response(
        "Another provisioning job is running",
        "ApiErrorResponseBody",
    )
}

/// The 202 of a route that makes a job, with its `Location`.
pub fn accepted() -> Value {
    json!({
        "description": "Accepted: the job runs; poll its URL",
        "headers": {"Location": {
            "schema": {"type": "string"},
            "description": "The job's URL.",
        }},
        "content": {"application/json": {"schema": reference("SubmitConfigResponseBody")}},
    })
}

fn header(name: &str, required: bool, description: &str) -> Value {
    json!({
        "name": name.to_ascii_lowercase(),
        "in": "header",
        "schema": {"type": "string"},
        "description": description,
        "required": required,
    })
}

/// The nonce and signature headers; `required` for routes that are always signed.
pub fn signature_headers(required: bool) -> Vec<Value> {
    let when = if required {
        ""
    } else {
        " Needed once the device is provisioned."
    };
    vec![
        header(
            HEADER_NONCE,
            required,
            &format!("A nonce from /api/nonce, used once.{when}"),
        ),
        header(
            HEADER_SIGNATURE,
            required,
            &format!(
                "Base64 of the armored SSH signature (namespace atomixos-reapply) of the \
                 request's message.{when}"
            ),
        ),
    ]
}

fn filename_header() -> Value {
    header(
        HEADER_FILENAME,
        false,
        "The upload's file name: tells a bundle (.tar.gz, .tgz, .tar.zst, .tar.zstd, .tzst) \
         from a config.toml when its bytes do not.",
    )
}

fn config_body() -> Value {
    json!({
        "description": "A config.toml, or a gzip or zstd compressed config bundle.",
        "required": true,
        "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
        }},
    })
}

/// One operation: its ID, tag, summary, parameters and responses.
pub fn operation(
    id: &str,
    tag: &str,
    summary: &str,
    parameters: Vec<Value>,
    responses: Value,
) -> Value {
    let mut op = json!({
        "tags": [tag],
        "summary": summary,
        "operationId": id,
        "responses": responses,
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op
}

/// A required path parameter.
pub fn path_parameter(name: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "schema": {"type": "string"},
        "required": true,
    })
}

/// The `confirm` query parameter of the routes that re-apply.
fn confirm_parameter() -> Value {
    json!({
        "name": CONFIRM_QUERY,
        "in": "query",
        "required": false,
        "schema": {
            "type": "integer",
            "minimum": MIN_CONFIRM_SECONDS,
            "maximum": MAX_CONFIRM_SECONDS,
            "default": DEFAULT_CONFIRM_SECONDS,
        },
        "description": "Confirm-or-revert (ours): a re-apply that changes the admin signers, \
            the LAN, the host network or the firewall is activated, then kept only if \
            POST /api/jobs/{job_id}/confirm comes within this many seconds; else, or after a \
            reboot, the previous config is restored. The query is not part of the signed path.",
    })
}

/// A partial route's JSON body: an object of `properties`, `required` among them, no others.
fn partial_body(description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "description": description,
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }}},
    })
}

/// The responses of a partial route.
fn partial_responses() -> Value {
    json!({
        "202": accepted(),
        "400": {
            "description": "Refused before any job: the request (an unsupported or missing key, \
                a bad name) or the config it would make, every error located; a body that is not \
                JSON or a bad confirm query is the framework's error",
            "content": {"application/json": {"schema": {"oneOf": [
                reference("ValidationResponseBody"),
                reference("FrameworkErrorResponseBody"),
            ]}}},
        },
        "401": unauthorized(),
        "404": json_response("The device has no config", "ApiErrorResponseBody"),
        "409": busy(),
    })
}

/// A partial route's parameters: the `name` in its path (if any), `confirm`, the signature.
fn partial_parameters(name: Option<&str>) -> Vec<Value> {
    let mut parameters: Vec<Value> = name.map(path_parameter).into_iter().collect();
    parameters.push(confirm_parameter());
    parameters.extend(signature_headers(true));
    parameters
}

/// The body of a Quadlet resource's PUT.
fn unit_body(kind: UnitKind) -> Value {
    let mut properties = Map::new();
    for key in kind.keys() {
        let schema = if *key == "privileged" {
            json!({"type": "boolean"})
        } else {
            json!({"type": "object", "additionalProperties": true})
        };
        properties.insert((*key).to_owned(), schema);
    }
    partial_body(
        &format!(
            "Quadlet {} declaration to put into config.toml.",
            kind.table()
        ),
        Value::Object(properties),
        kind.required(),
    )
}

/// The partial routes (spec 6.8), with the original's operation IDs and bodies.
fn add_partial(paths: &mut Map<String, Value>) {
    let string = json!({"type": "string"});
    let user = partial_body(
        "User declaration to put into config.toml (a user without ssh_key cannot log in).",
        json!({"isAdmin": {"type": "boolean"}, "ssh_key": string, "shell": string}),
        &["isAdmin"],
    );
    let resources = [
        (routes::USER, "Users", "a user", user),
        (
            routes::CONTAINER,
            "Containers",
            "a container",
            unit_body(UnitKind::Container),
        ),
        (
            routes::CONTAINER_NETWORK,
            "ContainerNetworks",
            "a container network",
            unit_body(UnitKind::Network),
        ),
        (
            routes::CONTAINER_VOLUME,
            "ContainerVolumes",
            "a container volume",
            unit_body(UnitKind::Volume),
        ),
    ];
    for (path, id, what, body) in resources {
        let mut put = operation(
            &format!("config{id}Put"),
            "config",
            &format!("Create or replace {what} and asynchronously apply config"),
            partial_parameters(Some("name")),
            partial_responses(),
        );
        put["requestBody"] = body;
        add(paths, path, "put", put);
        let delete = operation(
            &format!("config{id}Delete"),
            "config",
            &format!("Delete {what} and asynchronously apply config"),
            partial_parameters(Some("name")),
            partial_responses(),
        );
        add(paths, path, "delete", delete);
    }
    let mut network_properties = Map::new();
    for key in NETWORK_KEYS {
        let schema = match *key {
            "dns_servers" | "dns_search_domains" => {
                json!({"type": "array", "items": {"type": "string"}})
            }
            "default_gateway" => json!({"type": ["string", "null"]}),
            _ => json!({"type": "object", "additionalProperties": true}),
        };
        network_properties.insert((*key).to_owned(), schema);
    }
    let mut network = operation(
        "configNetworkPatch",
        "config",
        "Patch network config and asynchronously apply config",
        partial_parameters(None),
        partial_responses(),
    );
    network["requestBody"] = partial_body(
        "Network fields to deep-merge into config.toml: tables merge, null deletes a key, \
         scalars and lists replace.",
        Value::Object(network_properties),
        &[],
    );
    add(paths, routes::NETWORK, "patch", network);
}

fn add(paths: &mut Map<String, Value>, path: &str, method: &str, op: Value) {
    let entry = paths
        .entry(path.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    entry[method] = op;
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    add(
        &mut paths,
        routes::HEALTH,
        "get",
        operation(
            "systemHealth",
            "system",
            "Whether the provisioning service answers",
            vec![],
            json!({"200": {
                "description": "It does",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                }}},
            }}),
        ),
    );
    add(
        &mut paths,
        routes::NONCE,
        "get",
        operation(
            "authIssueNonce",
            "auth",
            "A single-use nonce for signing one request",
            vec![],
            json!({"200": json_response("A nonce", "NonceResponseBody")}),
        ),
    );
    let mut submit_params = vec![confirm_parameter(), filename_header()];
    submit_params.extend(signature_headers(false));
    let mut submit = operation(
        "configSubmit",
        "config",
        "Submit a config.toml or bundle; it is applied by a job",
        submit_params,
        json!({
            "202": accepted(),
            "400": json_response(
                "The config is refused: every error, located",
                "ValidationResponseBody",
            ),
            "401": unauthorized(),
            "409": busy(),
            "413": json_response("The upload is over the limit", "FrameworkErrorResponseBody"),
        }),
    );
    submit["requestBody"] = config_body();
    add(&mut paths, routes::CONFIG, "post", submit);
    let export_params = signature_headers(true);
    add(
        &mut paths,
        routes::EXPORT,
        "get",
        operation(
            "configExport",
            "config",
            "The active config.toml",
            export_params,
            json!({
                "200": {
                    "description": "The config",
                    "content": {"application/toml": {"schema": {"type": "string"}}},
                },
                "400": json_response("A bad request", "ApiErrorResponseBody"),
                "401": unauthorized(),
                "404": json_response("The device has no config", "ApiErrorResponseBody"),
            }),
        ),
    );
    add(
        &mut paths,
        routes::JOB,
        "get",
        operation(
            "jobsGet",
            "jobs",
            "A provisioning job: its state, events and outcome",
            vec![path_parameter("job_id")],
            json!({
                "200": json_response("The job", "JobResponseBody"),
                "404": json_response("No such job", "ApiErrorResponseBody"),
            }),
        ),
    );
    let mut confirm_params = vec![path_parameter("job_id")];
    confirm_params.extend(signature_headers(true));
    add(
        &mut paths,
        routes::JOB_CONFIRM,
        "post",
        operation(
            "jobsConfirm",
            "jobs",
            "Keep the config of a job awaiting confirmation (ours: confirm-or-revert); signed \
             over an empty body by an admin of that config",
            confirm_params,
            json!({
                "200": json_response("Confirmed: the job once it has committed", "JobResponseBody"),
                "401": unauthorized(),
                "404": json_response("No such job", "ApiErrorResponseBody"),
                "409": json_response(
                    "The job is not awaiting confirmation",
                    "ApiErrorResponseBody",
                ),
            }),
        ),
    );
    add_partial(&mut paths);
    let mut validate_params = vec![filename_header()];
    validate_params.extend(signature_headers(true));
    let mut validate = operation(
        "configValidate",
        "config",
        "Validate a config.toml or bundle without applying it",
        validate_params,
        json!({
            "200": json_response("Valid, with the warnings", "ValidationResponseBody"),
            "400": json_response(
                "Refused: every error, located",
                "ValidationResponseBody",
            ),
            "401": unauthorized(),
            "413": json_response("The upload is over the limit", "FrameworkErrorResponseBody"),
        }),
    );
    validate["requestBody"] = config_body();
    add(&mut paths, routes::VALIDATE, "post", validate);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AtomixOS provisioning API",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {"schemas": schemas()},
    })
}

fn object(title: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "ApiErrorResponseBody": object("ApiErrorResponseBody", json!({"error": string}), &["error"]),
        "FrameworkErrorResponseBody": object(
            "FrameworkErrorResponseBody",
            json!({"status_code": {"type": "integer"}, "detail": string}),
            &["detail", "status_code"],
        ),
        "NonceResponseBody": object("NonceResponseBody", json!({"nonce": string}), &["nonce"]),
        "SubmitConfigResponseBody": object(
            "SubmitConfigResponseBody",
            json!({"job_id": string, "state": string, "job_url": string}),
            &["job_id", "job_url", "state"],
        ),
        "ValidationResponseBody": object(
            "ValidationResponseBody",
            json!({
                "ok": {"type": "boolean"},
                "error": string,
                "warnings": strings,
                "errors": {"type": "array", "items": reference("FindingBody")},
            }),
            &["ok"],
        ),
        "FindingBody": object(
            "FindingBody",
            json!({
                "path": string,
                "line": {"type": "integer"},
                "col": {"type": "integer"},
                "message": string,
                "severity": {"type": "string", "enum": ["error", "warning"]},
            }),
            &["message", "severity"],
        ),
        "JobEventResponseBody": object(
            "JobEventResponseBody",
            json!({
                "step": string,
                "elapsed_seconds": {"type": "number"},
                "message": string,
                "service": string,
                "mode": string,
                "status": string,
            }),
            &["elapsed_seconds", "step"],
        ),
        "ProvisionResultResponseBody": object(
            "ProvisionResultResponseBody",
            json!({
                "warnings": strings,
                "reapply": {"type": "boolean"},
                "rolled_back": {"type": "boolean"},
                "forwarding_url": string,
            }),
            &["warnings"],
        ),
        "JobResponseBody": object(
            "JobResponseBody",
            json!({
                "id": string,
                "state": string,
                "current_step": string,
                "events": {"type": "array", "items": reference("JobEventResponseBody")},
                "error": string,
                "result": reference("ProvisionResultResponseBody"),
                "rollback_status": string,
                "duration_seconds": {"type": "number"},
                "confirm_deadline": {"type": "string", "format": "date-time"},
            }),
            &["current_step", "id", "state"],
        ),
    })
}

/// `GET /schema/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}
