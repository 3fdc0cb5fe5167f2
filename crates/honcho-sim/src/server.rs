//! The simulator's HTTP side: hyper 1 HTTP/1.1 connections over a caller-bound listener,
//! routing per API generation, auth, request validation with FastAPI's error bodies, the
//! JSON rendering Honcho uses (compact, uvicorn headers), fault effects and the `/_sim/`
//! admin endpoints.
//!
//! Owns: everything on the wire. Must not change the queue except by advancing it to now
//! (and the vanish fault, which deletes a workspace as a real deletion would).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::cursor::{self, CursorError, Place};
use super::faults::{EndpointKind, FaultAction, FaultRule, Faults};
use super::model::{Filter, StatusCounts, WorkUnitRow, Workspace};
use super::{Generation, Scenario, Shared, SimAuth, Simulator, dynamics, now_micros};

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The service's error: returned on purpose to make hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose by a simulator fault")]
struct DroppedOnPurpose;

/// Largest request body read (workspace filters are tiny).
const MAX_REQUEST_BODY: usize = 1 << 20;

/// Longest a hanging request is held before the connection is closed.
const HANG_LIMIT: Duration = Duration::from_secs(600);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    Ok(())
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Health,
    MetricsDisabled,
    WorkspacesList,
    SessionsList,
    Status,
    WorkUnits,
    PeerCard(String),
    NotFound,
    MethodNotAllowed(&'static str),
}

#[derive(Debug, Clone)]
struct Route {
    target: Target,
    kind: EndpointKind,
    workspace: Option<String>,
}

fn route(generation: Generation, method: &Method, path: &str) -> Route {
    let segments: Vec<String> = path.split('/').skip(1).map(cursor::unquote).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let version = if generation == Generation::A {
        "v2"
    } else {
        "v3"
    };
    let on = |wanted: Method, target: Target| {
        if *method == wanted {
            target
        } else {
            Target::MethodNotAllowed(if wanted == Method::GET { "GET" } else { "POST" })
        }
    };
    let not_found = Route {
        target: Target::NotFound,
        kind: EndpointKind::Other,
        workspace: None,
    };
    let workspace_route = |ws: &str, target: Target, kind: EndpointKind| Route {
        target,
        kind,
        workspace: Some(ws.to_owned()),
    };
    match segments.as_slice() {
        ["health"] if generation != Generation::A => Route {
            target: on(Method::GET, Target::Health),
            kind: EndpointKind::Health,
            workspace: None,
        },
        ["metrics"] if generation != Generation::A => Route {
            target: on(Method::GET, Target::MetricsDisabled),
            kind: EndpointKind::Other,
            workspace: None,
        },
        [v, "workspaces", "list"] if *v == version => Route {
            target: on(Method::POST, Target::WorkspacesList),
            kind: EndpointKind::List,
            workspace: None,
        },
        [v, "workspaces", ws] if *v == version && !ws.is_empty() => {
            let target = if *method == Method::PUT {
                Target::NotFound
            } else {
                Target::MethodNotAllowed("PUT")
            };
            workspace_route(ws, target, EndpointKind::Other)
        }
        [v, "workspaces", ws, "sessions", "list"] if *v == version => workspace_route(
            ws,
            on(Method::POST, Target::SessionsList),
            EndpointKind::Sessions,
        ),
        ["v2", "workspaces", ws, "deriver", "status"] if generation == Generation::A => {
            workspace_route(ws, on(Method::GET, Target::Status), EndpointKind::Status)
        }
        ["v3", "workspaces", ws, "queue", "status"] if generation != Generation::A => {
            workspace_route(ws, on(Method::GET, Target::Status), EndpointKind::Status)
        }
        ["v3", "workspaces", ws, "queue", "work-units"] if generation == Generation::C => {
            workspace_route(
                ws,
                on(Method::GET, Target::WorkUnits),
                EndpointKind::WorkUnits,
            )
        }
        ["v3", "workspaces", ws, "peers", peer, "card"] if generation != Generation::A => {
            workspace_route(
                ws,
                on(Method::GET, Target::PeerCard((*peer).to_owned())),
                EndpointKind::Other,
            )
        }
        _ => not_found,
    }
}

/// A finished answer before fault post-processing.
struct Answer {
    status: u16,
    body: Vec<u8>,
    json: bool,
    allow: Option<&'static str>,
}

impl Answer {
    fn json(status: u16, value: &impl Serialize) -> Self {
        Answer {
            status,
            body: serde_json::to_vec(value).expect("simulator bodies always serialize"),
            json: true,
            allow: None,
        }
    }

    fn detail(status: u16, detail: &str) -> Self {
        Answer::json(status, &json!({ "detail": detail }))
    }
}

fn full(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn response(status: u16, json_body: bool, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("uvicorn"));
    if json_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

fn render(answer: Answer) -> Response<Body> {
    let mut response = response(answer.status, answer.json, full(answer.body));
    if let Some(allow) = answer.allow {
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static(allow));
    }
    response
}

fn record(shared: &Shared, kind: EndpointKind, status: u16) {
    shared
        .counts
        .lock()
        .expect("counts lock not poisoned")
        .record(kind, status);
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, DroppedOnPurpose> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(admin_path) = path.strip_prefix("/_sim/") {
        let body = read_body(request).await;
        let answer = admin(&shared, &method, admin_path, &body);
        record(&shared, EndpointKind::Admin, answer.status);
        return Ok(render(answer));
    }
    let (generation, auth) = {
        let config = shared.config.read().expect("config lock not poisoned");
        (config.generation, config.auth.clone())
    };
    let route = route(generation, &method, &path);
    let rule = shared
        .faults
        .lock()
        .expect("faults lock not poisoned")
        .take(route.kind, route.workspace.as_deref());
    let action = rule.as_ref().and_then(|rule| rule.action.clone());
    if let Some(FaultRule { latency_ms, .. }) = &rule
        && *latency_ms > 0
    {
        tokio::time::sleep(Duration::from_millis(*latency_ms)).await;
    }
    if matches!(route.kind, EndpointKind::Status | EndpointKind::WorkUnits) {
        let page = route.kind == EndpointKind::WorkUnits;
        shared.cost.spend(route.workspace.as_deref(), page).await;
    }
    if let Some(early) = early_fault(&shared, &route, action.as_ref()).await? {
        return Ok(early);
    }
    let body = read_body(request).await;
    let query = QueryParams::parse(&raw_query);
    let answer = match auth_check(auth.as_ref(), &route, authorization.as_deref()) {
        Err(detail) => Answer::detail(401, detail),
        Ok(()) => answer(&shared, generation, &route, &query, &body, action.as_ref()),
    };
    record(&shared, route.kind, answer.status);
    Ok(late_fault(answer, action.as_ref()))
}

/// Faults that replace the answer entirely.
async fn early_fault(
    shared: &Shared,
    route: &Route,
    action: Option<&FaultAction>,
) -> Result<Option<Response<Body>>, DroppedOnPurpose> {
    let Some(action) = action else {
        return Ok(None);
    };
    let answer = match action {
        FaultAction::ServerError { status } => {
            let detail = match status {
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                _ => "An unexpected error occurred",
            };
            Answer::detail(*status, detail)
        }
        FaultAction::TooManyRequests {
            retry_after_seconds,
        } => {
            record(shared, route.kind, 429);
            let mut response = render(Answer::detail(429, "Too Many Requests"));
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from_str(&retry_after_seconds.to_string())
                    .expect("digits are a valid header value"),
            );
            return Ok(Some(response));
        }
        FaultAction::InvalidJwt => Answer::detail(401, "Invalid JWT"),
        FaultAction::RouteNotFound => Answer::detail(404, "Not Found"),
        FaultAction::Hang => {
            record(shared, route.kind, 0);
            tokio::time::sleep(HANG_LIMIT).await;
            return Err(DroppedOnPurpose);
        }
        FaultAction::DropConnection => {
            record(shared, route.kind, 0);
            return Err(DroppedOnPurpose);
        }
        _ => return Ok(None),
    };
    record(shared, route.kind, answer.status);
    Ok(Some(render(answer)))
}

/// Faults that mangle how a computed answer is delivered.
fn late_fault(answer: Answer, action: Option<&FaultAction>) -> Response<Body> {
    match action {
        Some(FaultAction::MalformedJson) => {
            let mut body = answer.body;
            body.pop();
            body.extend_from_slice(b",,<html>oops");
            response(answer.status, true, full(body))
        }
        Some(FaultAction::TruncatedJson { chunked: false }) => {
            let mut body = answer.body;
            body.truncate(body.len() / 2);
            response(answer.status, true, full(body))
        }
        Some(FaultAction::TruncatedJson { chunked: true }) => {
            let half = Bytes::from(answer.body[..answer.body.len() / 2].to_vec());
            let frames: Vec<Result<Frame<Bytes>, io::Error>> = vec![
                Ok(Frame::data(half)),
                Err(io::Error::other("truncated on purpose by the simulator")),
            ];
            let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
            response(answer.status, true, body)
        }
        Some(FaultAction::HugeBody { mebibytes }) if answer.body.first() == Some(&b'{') => {
            let padding = *mebibytes as usize * 1024 * 1024;
            let mut body = Vec::with_capacity(answer.body.len() + padding + 16);
            body.extend_from_slice(b"{\"_padding\":\"");
            body.resize(body.len() + padding, b'a');
            body.extend_from_slice(b"\"");
            if answer.body.len() > 2 {
                body.push(b',');
            }
            body.extend_from_slice(&answer.body[1..]);
            response(answer.status, true, full(body))
        }
        Some(FaultAction::Slowloris { bytes_per_second }) => {
            let length = answer.body.len();
            let step = (*bytes_per_second).max(1) as usize;
            let bytes = Bytes::from(answer.body);
            let stream = futures_util::stream::unfold(0usize, move |position| {
                let bytes = bytes.clone();
                async move {
                    if position >= bytes.len() {
                        return None;
                    }
                    if position > 0 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    let end = (position + step).min(bytes.len());
                    Some((
                        Ok::<_, io::Error>(Frame::data(bytes.slice(position..end))),
                        end,
                    ))
                }
            });
            let mut response = response(
                answer.status,
                answer.json,
                StreamBody::new(stream).boxed_unsync(),
            );
            response.headers_mut().insert(
                CONTENT_LENGTH,
                HeaderValue::from_str(&length.to_string()).expect("digits are a valid header"),
            );
            response
        }
        _ => render(answer),
    }
}

async fn read_body(request: Request<Incoming>) -> Vec<u8> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_REQUEST_BODY);
    match limited.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    }
}

fn auth_check(
    auth: Option<&SimAuth>,
    route: &Route,
    authorization: Option<&str>,
) -> Result<(), &'static str> {
    let Some(auth) = auth else {
        return Ok(());
    };
    let needs_admin = match route.target {
        Target::WorkspacesList => true,
        Target::SessionsList | Target::Status | Target::WorkUnits | Target::PeerCard(_) => false,
        _ => return Ok(()),
    };
    let token = authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, credentials)| {
            scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()
        })
        .map(|(_, credentials)| credentials)
        .ok_or("No access token provided")?;
    if auth.admin_tokens.contains(token) {
        return Ok(());
    }
    let scope = auth.workspace_tokens.get(token).ok_or("Invalid JWT")?;
    if needs_admin {
        return Err("Resource requires admin privileges");
    }
    if route.workspace.as_deref() != Some(scope.as_str()) {
        return Err("JWT not permissioned for this resource");
    }
    Ok(())
}

/// Query parameters as Starlette reads them (form-decoded, last value wins), plus the raw
/// (still percent-encoded) values.
struct QueryParams {
    decoded: BTreeMap<String, String>,
    raw: BTreeMap<String, String>,
}

impl QueryParams {
    fn parse(query: &str) -> Self {
        let decoded = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let raw = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        QueryParams { decoded, raw }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.decoded.get(name).map(String::as_str)
    }
}

/// One FastAPI/pydantic validation error.
#[derive(Debug, Serialize)]
struct ValidationError {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Vec<Value>,
    msg: String,
    input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<Value>,
}

fn int_param(
    query: &QueryParams,
    name: &str,
    default: i64,
    min: i64,
    max: Option<i64>,
    errors: &mut Vec<ValidationError>,
) -> i64 {
    let Some(raw) = query.get(name) else {
        return default;
    };
    let loc = vec![json!("query"), json!(name)];
    let Ok(value) = raw.trim().parse::<i64>() else {
        errors.push(ValidationError {
            kind: "int_parsing",
            loc,
            msg: "Input should be a valid integer, unable to parse string as an integer".into(),
            input: json!(raw),
            ctx: None,
        });
        return default;
    };
    if value < min {
        errors.push(ValidationError {
            kind: "greater_than_equal",
            loc,
            msg: format!("Input should be greater than or equal to {min}"),
            input: json!(raw),
            ctx: Some(json!({ "ge": min })),
        });
    } else if let Some(max) = max
        && value > max
    {
        errors.push(ValidationError {
            kind: "less_than_equal",
            loc,
            msg: format!("Input should be less than or equal to {max}"),
            input: json!(raw),
            ctx: Some(json!({ "le": max })),
        });
    }
    value
}

fn bool_param(query: &QueryParams, name: &str, errors: &mut Vec<ValidationError>) -> bool {
    let Some(raw) = query.get(name) else {
        return false;
    };
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => true,
        "0" | "false" | "f" | "no" | "n" | "off" => false,
        _ => {
            errors.push(ValidationError {
                kind: "bool_parsing",
                loc: vec![json!("query"), json!(name)],
                msg: "Input should be a valid boolean, unable to interpret input".into(),
                input: json!(raw),
                ctx: None,
            });
            false
        }
    }
}

/// The `{"filters": {...}}` body of the list endpoints.
fn filters_body(
    body: &[u8],
    errors: &mut Vec<ValidationError>,
) -> Option<serde_json::Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => {
            errors.push(ValidationError {
                kind: "json_invalid",
                loc: vec![json!("body"), json!(error.column().saturating_sub(1))],
                msg: "JSON decode error".into(),
                input: json!({}),
                ctx: Some(json!({ "error": "Expecting value" })),
            });
            return None;
        }
    };
    match value.get("filters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(filters)) => Some(filters.clone()),
        Some(other) => {
            errors.push(ValidationError {
                kind: "dict_type",
                loc: vec![json!("body"), json!("filters")],
                msg: "Input should be a valid dictionary".into(),
                input: other.clone(),
                ctx: None,
            });
            None
        }
    }
}

fn metadata_matches(
    filters: &serde_json::Map<String, Value>,
    name: &str,
    metadata: &[(String, Value)],
) -> bool {
    filters.iter().all(|(key, wanted)| match key.as_str() {
        "metadata" => wanted.as_object().is_none_or(|wanted| {
            wanted
                .iter()
                .all(|(k, v)| metadata.iter().any(|(mk, mv)| mk == k && mv == v))
        }),
        "id" | "name" => wanted.as_str() == Some(name),
        _ => true,
    })
}

#[derive(Serialize)]
struct PageBody<T: Serialize> {
    items: Vec<T>,
    total: u64,
    page: i64,
    size: i64,
    pages: u64,
}

fn page_of<T: Serialize>(all: Vec<T>, page: i64, size: i64) -> PageBody<T> {
    let total = all.len() as u64;
    let size_u = size.max(1) as u64;
    let skip = ((page.max(1) - 1) as u64).saturating_mul(size_u);
    let items = all
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(size_u as usize)
        .collect();
    PageBody {
        items,
        total,
        page,
        size,
        pages: total.div_ceil(size_u),
    }
}

#[derive(Serialize)]
struct WorkspaceItem<'a> {
    id: &'a str,
    metadata: &'a super::model::OrderedObject,
    configuration: Value,
    created_at: String,
}

#[derive(Serialize)]
struct SessionItem<'a> {
    id: &'a str,
    is_active: bool,
    workspace_id: &'a str,
    metadata: Value,
    configuration: &'a Value,
    created_at: String,
}

#[derive(Serialize)]
struct StatusBody {
    total_work_units: u64,
    completed_work_units: u64,
    in_progress_work_units: u64,
    pending_work_units: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_stalled_work_units: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_ready_work_units: Option<u64>,
    sessions: Option<BTreeMap<String, SessionStatusBody>>,
}

#[derive(Serialize)]
struct SessionStatusBody {
    session_id: String,
    total_work_units: u64,
    completed_work_units: u64,
    in_progress_work_units: u64,
    pending_work_units: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_stalled_work_units: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_ready_work_units: Option<u64>,
}

#[derive(Serialize)]
struct WorkUnitsBody<'a> {
    items: &'a [WorkUnitRow],
    total: u64,
    current_page: String,
    current_page_backwards: String,
    previous_page: Option<String>,
    next_page: Option<String>,
    representation_batch_max_tokens: u32,
    flush_enabled: bool,
}

fn answer(
    shared: &Shared,
    generation: Generation,
    route: &Route,
    query: &QueryParams,
    body: &[u8],
    action: Option<&FaultAction>,
) -> Answer {
    let (threshold, flush) = {
        let config = shared.config.read().expect("config lock not poisoned");
        (config.batch_max_tokens, config.flush_enabled)
    };
    let model = shared
        .model
        .read()
        .expect("model lock not poisoned")
        .clone();
    let now = now_micros();
    // Runs `f` on the workspace advanced to now, or on an empty stand-in when it does not
    // exist (Honcho answers unknown workspaces with zeros / empty pages).
    let with_workspace = |name: &str, f: &mut dyn FnMut(&mut Workspace) -> Answer| -> Answer {
        if let Some(&index) = model.index.get(name) {
            let mut workspace = model.workspaces[index]
                .lock()
                .expect("workspace lock not poisoned");
            dynamics::advance(&mut workspace, now);
            if !workspace.vanished {
                return f(&mut workspace);
            }
        }
        f(&mut Workspace::new(name.to_owned(), Default::default(), 0))
    };
    let workspace_name = route.workspace.clone().unwrap_or_default();
    match &route.target {
        Target::Health => Answer::json(200, &json!({ "status": "ok" })),
        Target::MetricsDisabled => Answer {
            status: 404,
            body: b"Metrics are disabled".to_vec(),
            json: false,
            allow: None,
        },
        Target::NotFound => Answer::detail(404, "Not Found"),
        Target::MethodNotAllowed(allow) => Answer {
            allow: Some(allow),
            ..Answer::detail(405, "Method Not Allowed")
        },
        Target::PeerCard(peer) => with_workspace(&workspace_name, &mut |ws| {
            if ws.peer_by_name.contains_key(peer.as_str()) {
                Answer::json(200, &json!({ "peer_card": null }))
            } else {
                Answer::detail(
                    404,
                    &format!("Peer {peer} not found in workspace {}", ws.name),
                )
            }
        }),
        Target::WorkspacesList => {
            let mut errors = Vec::new();
            let page = int_param(query, "page", 1, 1, None, &mut errors);
            let size = int_param(query, "size", 50, 1, Some(100), &mut errors);
            let reverse = bool_param(query, "reverse", &mut errors);
            let filters = filters_body(body, &mut errors);
            if !errors.is_empty() {
                return Answer::json(422, &json!({ "detail": errors }));
            }
            let mut items = Vec::new();
            let locked: Vec<_> = model
                .workspaces
                .iter()
                .map(|ws| ws.lock().expect("workspace lock not poisoned"))
                .collect();
            for ws in &locked {
                if ws.vanished {
                    continue;
                }
                if let Some(filters) = &filters
                    && !metadata_matches(filters, &ws.name, &ws.metadata.0)
                {
                    continue;
                }
                items.push(WorkspaceItem {
                    id: &ws.name,
                    metadata: &ws.metadata,
                    configuration: json!({}),
                    created_at: cursor::iso_z(ws.created_at),
                });
            }
            if reverse {
                items.reverse();
            }
            Answer::json(200, &page_of(items, page, size))
        }
        Target::SessionsList => {
            let mut errors = Vec::new();
            let page = int_param(query, "page", 1, 1, None, &mut errors);
            let size = int_param(query, "size", 50, 1, Some(100), &mut errors);
            let reverse = bool_param(query, "reverse", &mut errors);
            let filters = filters_body(body, &mut errors);
            if !errors.is_empty() {
                return Answer::json(422, &json!({ "detail": errors }));
            }
            with_workspace(&workspace_name, &mut |ws| {
                let empty_metadata = json!({});
                let mut items: Vec<SessionItem> = ws
                    .sessions
                    .iter()
                    .filter(|s| {
                        filters
                            .as_ref()
                            .is_none_or(|f| metadata_matches(f, &s.name, &[]))
                    })
                    .map(|s| SessionItem {
                        id: &s.name,
                        is_active: true,
                        workspace_id: &ws.name,
                        metadata: empty_metadata.clone(),
                        configuration: &s.configuration,
                        created_at: cursor::iso_z(s.created_at),
                    })
                    .collect();
                if reverse {
                    items.reverse();
                }
                Answer::json(200, &page_of(items, page, size))
            })
        }
        Target::Status => {
            let split = generation == Generation::C;
            with_workspace(&workspace_name, &mut |ws| {
                let filter = Filter::resolve(
                    ws,
                    query.get("session_id"),
                    query.get("observer_id"),
                    query.get("sender_id"),
                );
                let status = ws.status(&filter, threshold, flush);
                Answer::json(
                    200,
                    &status_body(&status.totals, status.sessions.as_ref(), split),
                )
            })
        }
        Target::WorkUnits => {
            let mut errors = Vec::new();
            let size = int_param(query, "size", 50, 0, Some(100), &mut errors);
            if !errors.is_empty() {
                return Answer::json(422, &json!({ "detail": errors }));
            }
            let raw_cursor = query.raw.get("cursor").cloned().unwrap_or_default();
            let bookmark = match cursor::decode_cursor(query.get("cursor").unwrap_or("")) {
                Ok(bookmark) => bookmark,
                Err(CursorError::KeysetMismatch) => {
                    return Answer::detail(500, "An unexpected error occurred");
                }
                Err(error) => return Answer::detail(400, &error.to_string()),
            };
            let has_cursor = bookmark.is_some();
            if has_cursor
                && action == Some(&FaultAction::VanishMidWalk)
                && let Some(&index) = model.index.get(&workspace_name)
            {
                model.workspaces[index]
                    .lock()
                    .expect("workspace lock not poisoned")
                    .vanished = true;
            }
            with_workspace(&workspace_name, &mut |ws| {
                let filter = Filter::resolve(
                    ws,
                    query.get("session_id"),
                    query.get("observer_id"),
                    query.get("sender_id"),
                );
                let mut page =
                    ws.work_units_page(&filter, bookmark.as_ref(), size as usize, threshold, flush);
                match action {
                    Some(FaultAction::CursorLoop) if has_cursor => {
                        page.next_page = Some(raw_cursor.clone());
                    }
                    Some(FaultAction::EndlessWalk) => {
                        let n = shared.endless.fetch_add(1, AtomicOrdering::Relaxed);
                        page.items.clear();
                        page.next_page = Some(cursor::encode_bookmark(
                            false,
                            Some(&Place {
                                oldest_micros: now + i64::try_from(n).unwrap_or(0),
                                key: format!("zzzz-endless-{n}"),
                            }),
                        ));
                    }
                    _ => {}
                }
                Answer::json(
                    200,
                    &WorkUnitsBody {
                        items: &page.items,
                        total: page.total,
                        current_page: page.current_page,
                        current_page_backwards: page.current_page_backwards,
                        previous_page: page.previous_page,
                        next_page: page.next_page,
                        representation_batch_max_tokens: threshold,
                        flush_enabled: flush,
                    },
                )
            })
        }
    }
}

fn status_body(
    totals: &StatusCounts,
    sessions: Option<&BTreeMap<String, StatusCounts>>,
    split: bool,
) -> StatusBody {
    let when = |value: u64| split.then_some(value);
    StatusBody {
        total_work_units: totals.total,
        completed_work_units: totals.completed,
        in_progress_work_units: totals.in_progress,
        pending_work_units: totals.pending,
        pending_stalled_work_units: when(totals.pending_stalled),
        pending_ready_work_units: when(totals.pending_ready),
        sessions: sessions.map(|sessions| {
            sessions
                .iter()
                .map(|(id, counts)| {
                    (
                        id.clone(),
                        SessionStatusBody {
                            session_id: id.clone(),
                            total_work_units: counts.total,
                            completed_work_units: counts.completed,
                            in_progress_work_units: counts.in_progress,
                            pending_work_units: counts.pending,
                            pending_stalled_work_units: when(counts.pending_stalled),
                            pending_ready_work_units: when(counts.pending_ready),
                        },
                    )
                })
                .collect()
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationSwitch {
    generation: Generation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSwitch {
    scenario: Scenario,
}

fn admin(shared: &Arc<Shared>, method: &Method, path: &str, body: &[u8]) -> Answer {
    let simulator = Simulator {
        shared: shared.clone(),
    };
    let ok = || Answer::json(200, &json!({ "ok": true }));
    let bad = |error: serde_json::Error| Answer::detail(400, &error.to_string());
    match (method.clone(), path) {
        (Method::GET, "truth") => Answer::json(200, &simulator.truth()),
        (Method::GET, "requests") => Answer::json(200, &simulator.request_counts()),
        (Method::GET, "cost") => Answer::json(200, &simulator.cost_meter()),
        (Method::POST, "cost/reset") => {
            simulator.reset_cost_meter();
            ok()
        }
        (Method::POST, "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(faults) => {
                simulator.set_faults(faults);
                ok()
            }
            Err(error) => bad(error),
        },
        (Method::POST, "generation") => match serde_json::from_slice::<GenerationSwitch>(body) {
            Ok(switch) => {
                simulator.set_generation(switch.generation);
                ok()
            }
            Err(error) => bad(error),
        },
        (Method::POST, "scenario") => match serde_json::from_slice::<ScenarioSwitch>(body) {
            Ok(switch) => {
                simulator.set_scenario(switch.scenario);
                ok()
            }
            Err(error) => bad(error),
        },
        _ => Answer::detail(404, "Not Found"),
    }
}
