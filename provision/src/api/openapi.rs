//! The OpenAPI 3.1 document at `/schema/openapi.json`: the original's operation IDs, tags,
//! headers, bodies and response schemas (a client contract, spec 7), written out here rather
//! than derived, so it stays exactly that. One deliberate change: `POST /api/config` documents
//! its 400 (a refused config is answered before any job is made).
//!
//! To document a new route, add its operation to [`document`] with [`operation`].

use atomix_api::{HEADER_FILENAME, HEADER_NONCE, HEADER_SIGNATURE, routes};
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
    let mut submit_params = vec![filename_header()];
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
            vec![json!({
                "name": "job_id",
                "in": "path",
                "schema": {"type": "string"},
                "required": true,
            })],
            json!({
                "200": json_response("The job", "JobResponseBody"),
                "404": json_response("No such job", "ApiErrorResponseBody"),
            }),
        ),
    );
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
            }),
            &["current_step", "id", "state"],
        ),
    })
}

/// `GET /schema/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}
