//! What each fuzz target does with its input, shared by the targets (`fuzz_targets/*.rs`,
//! under `cargo fuzz`) and by `tests/fuzz_corpus.rs`, which replays the committed corpora on
//! stable Rust in the test suite. Each function must never panic, whatever the bytes.

use rustforge_prod::Config;
use rustforge_prod::broadcast::protocol::{Channel, ChannelData, ClientFrame, SubscribeData};
use rustforge_prod::broadcast::signature::{self, ApiRequest};

/// A frame from a WebSocket client, parsed the way the server reads it: the frame, a subscribe's
/// data, the channel name, presence channel data, and the auth string's `key:signature` check.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return;
    };
    if let Some(channel) = &frame.channel {
        let _ = Channel::parse(channel).map(|c| (c.needs_auth(), c.allows_client_events()));
    }
    let Some(raw) = frame.data else { return };
    if let Ok(subscribe) = serde_json::from_str::<SubscribeData>(raw.get()) {
        let _ = Channel::parse(&subscribe.channel);
        if let Some(channel_data) = &subscribe.channel_data
            && let Ok(member) = serde_json::from_str::<ChannelData>(channel_data)
        {
            let _ = member.user_id();
        }
        if let Some(auth) = &subscribe.auth {
            let parts = [
                "1.2",
                ":",
                subscribe.channel.as_str(),
                subscribe.channel_data.as_deref().unwrap_or(""),
            ];
            let _ = signature::verify_auth("key", "secret", &parts, auth);
        }
    }
}

/// A signed HTTP API request: the input is `method\npath\nquery\nbody`; the query is decoded
/// as the server decodes it, then verified against a fixed key and secret.
pub fn api_request(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query_raw = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let query: Vec<(String, String)> = form_urlencoded::parse(query_raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let request = ApiRequest {
        method: &method,
        path: &path,
        query: &query,
        body,
    };
    let _ = signature::verify_api_request("key", "secret", &request, 1_700_000_000, Some(600));
    let _ = signature::body_md5(body);
}

/// A channel name and an auth string: parsing, the encrypted channel's shared secret, and the
/// signature check of a private or presence subscription.
pub fn channel_auth(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (channel, auth) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(parsed) = Channel::parse(channel) {
        let _ = parsed.needs_auth();
        let _ = signature::shared_secret(channel, &[7u8; 32]);
    }
    let _ = signature::verify_auth("key", "secret", &["1.2", ":", channel], auth);
    let _ = signature::user_auth("key", "secret", "1.2", channel);
}

/// Environment variables: the input is `NAME=VALUE` lines, read as `Config::from_vars` reads the
/// process environment. Every bad value must be a `ConfigError`, never a panic.
pub fn config_env(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let vars: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    if let Err(err) = Config::from_vars(vars) {
        let _ = err.to_string();
    }
}
