//! The HTTP side: the WebSocket endpoint, the auth endpoints the client calls, and the signed
//! HTTP API the Pusher server SDKs call.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Form, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::Arc;

use super::authorizer::{Access, AuthRequest, Authorizer};
use super::broadcaster::{BroadcastError, Broadcaster, Event, MAX_HISTORY_PAGE};
use super::history::Position;
use super::protocol::{Channel, ChannelKind, close_frame, codes, error_frame};
use super::signature::{ApiRequest, channel_auth, shared_secret, user_auth, verify_api_request};

pub(crate) fn routes<S>(broadcaster: Broadcaster) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let config = broadcaster.config().clone();
    Router::new()
        // GET for HTTP/1.1, CONNECT for HTTP/2 (RFC 8441, which the server advertises).
        .route("/app/{key}", get(websocket).connect(websocket))
        .route(&config.auth_path, post(channel_auth_endpoint))
        .route(&config.user_auth_path, post(user_auth_endpoint))
        .route("/apps/{app_id}/events", post(api_events))
        .route("/apps/{app_id}/batch_events", post(api_batch_events))
        .route("/apps/{app_id}/channels", get(api_channels))
        .route("/apps/{app_id}/channels/{channel}", get(api_channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(api_users))
        .route("/apps/{app_id}/channels/{channel}/events", get(api_history))
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(api_terminate),
        )
        .with_state(broadcaster)
}

#[derive(Deserialize)]
struct Handshake {
    protocol: Option<String>,
}

async fn websocket(
    State(broadcaster): State<Broadcaster>,
    Path(key): Path<String>,
    Query(handshake): Query<Handshake>,
    ws: WebSocketUpgrade,
    request: Request,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = match &broadcaster.inner.client_ip {
        Some(resolve) => resolve(peer, request.headers()),
        None => peer,
    };
    let config = broadcaster.config().clone();
    // Frames up to 4× the protocol limit get a `pusher:error`; larger ones end the connection.
    let hard_limit = (config.max_message_size * 4).max(64 * 1024);
    // tungstenite reserves a 128 KiB read buffer per connection by default; Pusher frames are
    // small, and 10,000 idle connections should not cost 1.3 GB (measured in benches/broadcast).
    let ws = ws
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let refusal = match (broadcaster.hub_by_key(&key), handshake.protocol.as_deref()) {
        (None, _) => Some((
            codes::APP_NOT_FOUND,
            format!("App key {key} does not exist."),
        )),
        (Some(_), Some(v)) if v.parse::<u32>().is_err() => {
            Some((4006, "Invalid version string format".to_owned()))
        }
        (Some(_), Some(v)) if v != "7" => Some((
            codes::UNSUPPORTED_PROTOCOL,
            format!("Unsupported protocol version {v}"),
        )),
        _ => None,
    };
    if let Some((code, message)) = refusal {
        return ws.on_upgrade(move |mut socket| async move {
            let _ = socket
                .send(Message::Text(error_frame(code, &message).into()))
                .await;
            let close = close_frame(code, &message);
            let _ = socket.send(Message::Close(Some(close))).await;
        });
    }
    let Some(hub) = broadcaster.hub_by_key(&key).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if hub.is_draining() {
        // Shutting down: the client tries again, and the load balancer, which already sees
        // this server unready, sends it elsewhere.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            "shutting down",
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| super::connection::serve(socket, hub, config, ip))
}

/// An error answer of the HTTP endpoints: a status and `{"error": message}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

/// `socket_id` as the protocol defines it: `^\d+\.\d+$`.
fn valid_socket_id(socket_id: &str) -> bool {
    socket_id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
    })
}

/// The request for the authorizer, and the authorizer (403 without one).
fn auth_request(
    broadcaster: &Broadcaster,
    headers: HeaderMap,
    params: HashMap<String, String>,
) -> Result<(AuthRequest, Arc<dyn Authorizer>), ApiError> {
    let socket_id = params.get("socket_id").cloned().unwrap_or_default();
    if !valid_socket_id(&socket_id) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "invalid socket_id".into(),
        ));
    }
    let Some(authorizer) = broadcaster.authorizer().cloned() else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "no authorizer is configured".into(),
        ));
    };
    let request = AuthRequest {
        socket_id,
        channel: params.get("channel_name").cloned().unwrap_or_default(),
        headers,
        params,
    };
    Ok((request, authorizer))
}

async fn channel_auth_endpoint(
    State(broadcaster): State<Broadcaster>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let (request, authorizer) = match auth_request(&broadcaster, headers, params) {
        Ok(call) => call,
        Err(error) => return error.into_response(),
    };
    let channel_name = request.channel.clone();
    let socket_id = request.socket_id.clone();
    let kind = match Channel::parse(&channel_name) {
        Ok(channel) if channel.needs_auth() => channel.kind,
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "channel_name is not a private, presence or encrypted channel",
            );
        }
    };
    let app = &broadcaster.hub().app;
    let access = authorizer.authorize(request).await;
    let (auth, channel_data) = match (kind, access) {
        (_, Access::Deny) => return json_error(StatusCode::FORBIDDEN, "access denied"),
        (ChannelKind::Presence, Access::Member(user)) => {
            let data = json!({ "user_id": user.id, "user_info": user.info }).to_string();
            let auth = channel_auth(
                &app.key,
                &app.secret,
                &socket_id,
                &channel_name,
                Some(&data),
            );
            (auth, Some(data))
        }
        (ChannelKind::Presence, _) => {
            return json_error(StatusCode::FORBIDDEN, "presence channels need a user");
        }
        _ => (
            channel_auth(&app.key, &app.secret, &socket_id, &channel_name, None),
            None,
        ),
    };
    let mut body = json!({ "auth": auth });
    if let Some(data) = channel_data {
        body["channel_data"] = Value::String(data);
    }
    if kind == ChannelKind::Encrypted {
        let Some(master) = app.master_key() else {
            return json_error(
                StatusCode::FORBIDDEN,
                "encrypted channels need an encryption master key",
            );
        };
        body["shared_secret"] = Value::String(shared_secret(&channel_name, &master));
    }
    axum::Json(body).into_response()
}

async fn user_auth_endpoint(
    State(broadcaster): State<Broadcaster>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let (request, authorizer) = match auth_request(&broadcaster, headers, params) {
        Ok(call) => call,
        Err(error) => return error.into_response(),
    };
    let socket_id = request.socket_id.clone();
    let Some(user) = authorizer
        .authenticate(request)
        .await
        .filter(|u| !u.id.is_empty())
    else {
        return json_error(StatusCode::FORBIDDEN, "access denied");
    };
    let app = &broadcaster.hub().app;
    let user_data = json!({ "id": user.id, "user_info": user.info }).to_string();
    let auth = user_auth(&app.key, &app.secret, &socket_id, &user_data);
    axum::Json(json!({ "auth": auth, "user_data": user_data })).into_response()
}

/// A request to the HTTP API whose signature checked out: the handle of its app and the body.
struct Signed {
    broadcaster: Broadcaster,
    body: Bytes,
}

impl FromRequest<Broadcaster> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, broadcaster: &Broadcaster) -> Result<Self, ApiError> {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        // Signed paths start at `/apps/`, whatever prefix the router is mounted under.
        let path = uri.path();
        let path = path.find("/apps/").map_or(path, |i| &path[i..]);
        let app_id = path["/apps/".len().min(path.len())..]
            .split('/')
            .next()
            .unwrap_or_default();
        let app = broadcaster
            .app(app_id)
            .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("unknown app {app_id}")))?;
        let body = Bytes::from_request(request, broadcaster)
            .await
            .map_err(|e| ApiError(e.status(), e.body_text()))?;
        let query: Vec<(String, String)> =
            form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let window = broadcaster.config().timestamp_window.map(|w| w.as_secs());
        let keys = &app.hub().app;
        let signed = ApiRequest {
            method: method.as_str(),
            path,
            query: &query,
            body: &body,
        };
        verify_api_request(&keys.key, &keys.secret, &signed, now, window)
            .map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e.message()))?;
        Ok(Self {
            broadcaster: app,
            body,
        })
    }
}

fn publish_error(err: BroadcastError) -> Response {
    let status = match err {
        BroadcastError::EventTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BroadcastError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        BroadcastError::NoHistory(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    json_error(status, err.to_string())
}

#[derive(Deserialize)]
struct ApiEvent {
    name: String,
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

impl ApiEvent {
    fn into_event(self) -> Result<(Event, Option<String>), ApiError> {
        let channels = match (self.channels, self.channel) {
            (Some(channels), None) => channels,
            (None, Some(channel)) => vec![channel],
            _ => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "give channels or channel".into(),
                ));
            }
        };
        // `data` is a string forwarded verbatim; other JSON is accepted and serialized once.
        let data = match self.data {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if let Some(socket_id) = &self.socket_id
            && !valid_socket_id(socket_id)
        {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "invalid socket_id".into(),
            ));
        }
        let mut event = Event::new(channels, self.name, data);
        event.except = self.socket_id;
        Ok((event, self.info))
    }
}

/// `{"channels": {name: {user_count, subscription_count}}}` for the requested `info`.
async fn channel_attributes(
    broadcaster: &Broadcaster,
    channels: &[String],
    info: Option<&str>,
) -> Value {
    let Some(info) = info else {
        return json!({});
    };
    let wants = |attribute: &str| info.split(',').any(|i| i.trim() == attribute);
    let mut out = serde_json::Map::new();
    for channel in channels {
        if let Ok(attributes) = broadcaster.channel_info(channel).await {
            let mut entry = serde_json::Map::new();
            if wants("user_count")
                && let Some(n) = attributes.user_count
            {
                entry.insert("user_count".into(), n.into());
            }
            if wants("subscription_count") {
                entry.insert(
                    "subscription_count".into(),
                    attributes.subscription_count.into(),
                );
            }
            out.insert(channel.clone(), Value::Object(entry));
        }
    }
    json!({ "channels": out })
}

async fn api_events(Signed { broadcaster, body }: Signed) -> Response {
    let Ok(request) = serde_json::from_slice::<ApiEvent>(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected {\"name\", \"data\", \"channels\"}",
        );
    };
    let (event, info) = match request.into_event() {
        Ok(event) => event,
        Err(error) => return error.into_response(),
    };
    let channels = event.channels.clone();
    if let Err(err) = broadcaster.publish_event(event).await {
        return publish_error(err);
    }
    axum::Json(channel_attributes(&broadcaster, &channels, info.as_deref()).await).into_response()
}

#[derive(Deserialize)]
struct Batch {
    batch: Vec<ApiEvent>,
}

async fn api_batch_events(Signed { broadcaster, body }: Signed) -> Response {
    let Ok(request) = serde_json::from_slice::<Batch>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"batch\": [...]}");
    };
    if request.batch.is_empty() || request.batch.len() > 10 {
        return json_error(StatusCode::BAD_REQUEST, "a batch holds 1 to 10 events");
    }
    let mut events = Vec::with_capacity(request.batch.len());
    for item in request.batch {
        match item.into_event() {
            Ok(event) => events.push(event),
            Err(error) => return error.into_response(),
        }
    }
    let wants_info = events.iter().any(|(_, info)| info.is_some());
    let described: Vec<_> = events
        .iter()
        .map(|(e, info)| (e.channels.clone(), info.clone()))
        .collect();
    if let Err(err) = broadcaster
        .publish_batch(events.into_iter().map(|(e, _)| e).collect())
        .await
    {
        return publish_error(err);
    }
    if !wants_info {
        return axum::Json(json!({})).into_response();
    }
    let mut batch = Vec::new();
    for (channels, info) in described {
        let attributes = channel_attributes(&broadcaster, &channels, info.as_deref()).await;
        batch.push(
            attributes["channels"]
                .as_object()
                .and_then(|c| c.values().next().cloned())
                .unwrap_or(json!({})),
        );
    }
    axum::Json(json!({ "batch": batch })).into_response()
}

#[derive(Deserialize)]
struct ChannelsQuery {
    filter_by_prefix: Option<String>,
    info: Option<String>,
}

async fn api_channels(
    Query(query): Query<ChannelsQuery>,
    Signed { broadcaster, .. }: Signed,
) -> Response {
    let prefix = query.filter_by_prefix.unwrap_or_default();
    let wants_users = query
        .info
        .as_deref()
        .is_some_and(|i| i.split(',').any(|a| a.trim() == "user_count"));
    if wants_users && !prefix.starts_with("presence-") {
        return json_error(
            StatusCode::BAD_REQUEST,
            "user_count needs filter_by_prefix=presence-",
        );
    }
    let mut channels = serde_json::Map::new();
    let list = match broadcaster.channels(&prefix).await {
        Ok(list) => list,
        Err(err) => return publish_error(err),
    };
    for (name, info) in list {
        let mut entry = serde_json::Map::new();
        if wants_users && let Some(n) = info.user_count {
            entry.insert("user_count".into(), n.into());
        }
        channels.insert(name, Value::Object(entry));
    }
    axum::Json(json!({ "channels": channels })).into_response()
}

#[derive(Deserialize)]
struct ChannelQuery {
    info: Option<String>,
}

async fn api_channel(
    Path((_, channel)): Path<(String, String)>,
    Query(query): Query<ChannelQuery>,
    Signed { broadcaster, .. }: Signed,
) -> Response {
    let info = match broadcaster.channel_info(&channel).await {
        Ok(info) => info,
        Err(err) => return publish_error(err),
    };
    let wants = |a: &str| {
        query
            .info
            .as_deref()
            .is_some_and(|i| i.split(',').any(|x| x.trim() == a))
    };
    let mut body = json!({ "occupied": info.occupied });
    if wants("user_count") {
        match info.user_count {
            Some(n) => body["user_count"] = n.into(),
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "user_count is only for presence channels",
                );
            }
        }
    }
    if wants("subscription_count") {
        body["subscription_count"] = info.subscription_count.into();
    }
    axum::Json(body).into_response()
}

async fn api_users(
    Path((_, channel)): Path<(String, String)>,
    Signed { broadcaster, .. }: Signed,
) -> Response {
    match broadcaster.presence(&channel).await {
        Ok(presence) => {
            let users: Vec<_> = presence
                .ids
                .into_iter()
                .map(|id| json!({ "id": id }))
                .collect();
            axum::Json(json!({ "users": users })).into_response()
        }
        Err(err) => publish_error(err),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    before: Option<String>,
}

/// The channel's kept events, newest first: `?limit=` (1–100, default 100) and `?before=` (the
/// `next` of the page before) → `{"events": [{event, channel, data, position}], "next"}`.
async fn api_history(
    Path((_, channel)): Path<(String, String)>,
    Query(query): Query<HistoryQuery>,
    Signed { broadcaster, .. }: Signed,
) -> Response {
    let limit = query.limit.unwrap_or(MAX_HISTORY_PAGE);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return json_error(StatusCode::BAD_REQUEST, "limit is 1 to 100");
    }
    let before = match query.before.as_deref().map(str::parse::<Position>) {
        None => None,
        Some(Ok(position)) => Some(position),
        Some(Err(_)) => return json_error(StatusCode::BAD_REQUEST, "before is not a position"),
    };
    match broadcaster.history(&channel, limit, before).await {
        Ok(page) => axum::Json(json!({
            "events": page.events,
            "next": page.next.map(|p| p.to_string()),
        }))
        .into_response(),
        Err(err) => publish_error(err),
    }
}

async fn api_terminate(
    Path((_, user_id)): Path<(String, String)>,
    Signed { broadcaster, .. }: Signed,
) -> Response {
    broadcaster.terminate_user_connections(&user_id).await;
    axum::Json(json!({})).into_response()
}
