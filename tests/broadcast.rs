//! The Pusher protocol over real WebSockets and HTTP: handshake, channels, presence, client
//! events, sign-in, the signed HTTP API, bad input, slow consumers, keep-alive and shutdown.

mod support;

use std::time::Duration;

use rustforge_prod::broadcast::signature::{channel_auth, user_auth};
use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Event};
use serde_json::{Value, json};
use support::http::client;
use support::pusher::{APP_ID, Client, KEY, Received, SECRET, api, api_as, config, data, serve};
use tokio_tungstenite::tungstenite::Message;

/// `/metrics` has a sample line starting with `prefix`.
fn assert_metric(prod: &rustforge_prod::ProductionLayer, prefix: &str) {
    let metrics = prod.metrics().render();
    assert!(
        metrics.lines().any(|l| l.starts_with(prefix)),
        "{prefix} in\n{metrics}"
    );
}

fn auth(client: &Client, channel: &str, channel_data: Option<&str>) -> Option<String> {
    Some(channel_auth(
        KEY,
        SECRET,
        &client.socket_id,
        channel,
        channel_data,
    ))
}

#[tokio::test]
async fn handshake_and_refused_keys_or_versions() {
    let (server, _prod) = serve(config()).await;
    let client = Client::connect(server.addr).await;
    let (a, b) = client
        .socket_id
        .split_once('.')
        .expect("socket id has a dot");
    assert!(
        a.chars().chain(b.chars()).all(|c| c.is_ascii_digit()),
        "{}",
        client.socket_id
    );

    match Client::connect_key(server.addr, "nope").await {
        Err(Received::Frame(f)) => {
            assert_eq!(f["event"], "pusher:error");
            assert_eq!(f["data"]["code"], 4001);
        }
        other => panic!("unknown key: {:?}", other.map(|c| c.socket_id)),
    }
    // A key long enough that its message would not fit a close frame (125 bytes): the code
    // still arrives, with the reason cut, so pusher-js sees 4001 and stops retrying.
    let long = "k".repeat(300);
    let mut refused = Client::open(&format!("ws://{}/app/{long}?protocol=7", server.addr)).await;
    assert_eq!(refused.frame().await["data"]["code"], 4001);
    assert_eq!(refused.closed().await, Some(4001));
    let mut old = Client::open(&format!("ws://{}/app/{KEY}?protocol=6", server.addr)).await;
    let f = old.frame().await;
    assert_eq!(f["data"]["code"], 4007, "{f}");
    assert_eq!(old.closed().await, Some(4007));
}

#[tokio::test]
async fn public_channels_deliver_published_events_verbatim() {
    let (server, prod) = serve(config()).await;
    let broadcaster = prod.broadcaster().unwrap();
    let mut a = Client::connect(server.addr).await;
    let ok = a.subscribe("orders", None, None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], "orders");
    assert_eq!(ok["data"], "{}");

    let n = broadcaster
        .publish(["orders"], "order.shipped", &json!({"id": 42}))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let f = a.frame().await;
    assert_eq!(f["event"], "order.shipped");
    assert_eq!(f["channel"], "orders");
    assert_eq!(f["data"], r#"{"id":42}"#, "data is a JSON string");

    // Through the HTTP API the data string is forwarded byte for byte.
    let body =
        json!({"name": "raw", "channel": "orders", "data": "{ \"spaced\" : 1 }"}).to_string();
    let (status, _) = api(&server.url(""), "POST", "/apps/1/events", &body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(a.frame().await["data"], "{ \"spaced\" : 1 }");

    a.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "orders"}}))
        .await;
    a.assert_alive().await;
    assert_eq!(
        broadcaster
            .publish(["orders"], "x", &json!({}))
            .await
            .unwrap(),
        0
    );
    assert!(!broadcaster.channel_info("orders").await.unwrap().occupied);
}

#[tokio::test]
async fn private_channels_need_a_valid_signature_for_this_socket() {
    let (server, _prod) = serve(config()).await;
    let mut a = Client::connect(server.addr).await;
    let other = Client::connect(server.addr).await;
    for bad in [
        None,
        Some("app-key:00".to_owned()),
        auth(&other, "private-x", None),
        Some(channel_auth(
            "wrong-key",
            SECRET,
            &a.socket_id,
            "private-x",
            None,
        )),
    ] {
        let f = a.subscribe("private-x", bad, None).await;
        assert_eq!(f["event"], "pusher:subscription_error", "{f}");
        assert_eq!(f["channel"], "private-x");
        assert_eq!(f["data"]["status"], 401);
    }
    let good = auth(&a, "private-x", None);
    assert_eq!(
        a.subscribe("private-x", good, None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    // Encrypted channels authorise like private ones.
    let good = auth(&a, "private-encrypted-x", None);
    assert_eq!(
        a.subscribe("private-encrypted-x", good, None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn presence_counts_users_not_connections_and_refuses_forged_channel_data() {
    let (server, prod) = serve(config()).await;
    let broadcaster = prod.broadcaster().unwrap();
    let ann_data = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
    let bob_data = r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#;
    let mut ann = Client::connect(server.addr).await;
    let f = ann.subscribe_signed("presence-room", Some(ann_data)).await;
    let p = data(&f)["presence"].clone();
    assert_eq!(p["count"], 1);
    assert_eq!(p["ids"], json!(["ann"]));
    assert_eq!(p["hash"]["ann"], json!({"name": "Ann"}));

    let mut bob = Client::connect(server.addr).await;
    let f = bob.subscribe_signed("presence-room", Some(bob_data)).await;
    assert_eq!(data(&f)["presence"]["count"], 2);
    let added = ann.frame().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(
        data(&added),
        json!({"user_id": "bob", "user_info": {"name": "Bob"}})
    );

    // Bob's second tab: no member_added, count stays 2.
    let mut bob2 = Client::connect(server.addr).await;
    let f = bob2.subscribe_signed("presence-room", Some(bob_data)).await;
    assert_eq!(data(&f)["presence"]["count"], 2);
    let info = broadcaster.channel_info("presence-room").await.unwrap();
    assert_eq!((info.subscription_count, info.user_count), (3, Some(2)));
    // A repeated subscribe is idempotent.
    bob2.subscribe_signed("presence-room", Some(bob_data)).await;
    assert_eq!(
        broadcaster
            .channel_info("presence-room")
            .await
            .unwrap()
            .subscription_count,
        3
    );

    // A repeated subscribe with other (validly signed) channel_data keeps the first member.
    let other = r#"{"user_id":"mallory"}"#;
    let signed = auth(&bob2, "presence-room", Some(other));
    bob2.subscribe("presence-room", signed, Some(other)).await;
    let ids = broadcaster.presence("presence-room").await.unwrap().ids;
    assert_eq!(ids, ["ann", "bob"]);

    // Closing one of Bob's tabs removes nobody; closing the last one removes Bob.
    drop(bob2);
    ann.assert_alive().await;
    drop(bob);
    let removed = ann.frame().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed), json!({"user_id": "bob"}));
    assert_eq!(
        broadcaster.presence("presence-room").await.unwrap().ids,
        ["ann"]
    );

    // Forged channel_data: signed for one user, sent as another.
    let mut eve = Client::connect(server.addr).await;
    let signed = auth(&eve, "presence-room", Some(r#"{"user_id":"eve"}"#));
    let f = eve
        .subscribe("presence-room", signed, Some(r#"{"user_id":"ann"}"#))
        .await;
    assert_eq!(f["event"], "pusher:subscription_error");
    assert_eq!(f["data"]["status"], 401);
    let f = eve.subscribe_signed("presence-room", None).await;
    assert_eq!(
        f["event"], "pusher:subscription_error",
        "channel_data is required"
    );
    // A user id is bounded (128 bytes): it is stored per member and sent in every snapshot.
    let long = format!(r#"{{"user_id":"{}"}}"#, "u".repeat(129));
    let f = eve.subscribe_signed("presence-room", Some(&long)).await;
    assert_eq!(f["event"], "pusher:subscription_error", "{f}");
    assert_eq!(f["data"]["status"], 400);
    let longest = format!(r#"{{"user_id":"{}"}}"#, "u".repeat(128));
    let f = eve.subscribe_signed("presence-room", Some(&longest)).await;
    assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
    let f = ann.frame().await;
    assert_eq!(f["event"], "pusher_internal:member_added", "{f}");
    assert_eq!(data(&f)["user_id"].as_str().map(str::len), Some(128));
    ann.assert_alive().await;
}

#[tokio::test]
async fn a_connection_holds_at_most_its_channel_cap() {
    let mut config = config();
    config.max_channels_per_connection = 3;
    let (server, _prod) = serve(config).await;
    let mut client = Client::connect(server.addr).await;
    for channel in ["cap-1", "cap-2", "cap-3"] {
        let f = client.subscribe(channel, None, None).await;
        assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
    }
    // Subscribing again to a channel it holds is not a new channel.
    let f = client.subscribe("cap-2", None, None).await;
    assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
    let f = client.subscribe("cap-4", None, None).await;
    assert_eq!(f["event"], "pusher:subscription_error", "{f}");
    assert_eq!(f["data"]["status"], 429);
    // Leaving one makes room; the connection itself stays up throughout.
    client
        .send(serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": "cap-1"}}))
        .await;
    let f = client.subscribe("cap-4", None, None).await;
    assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
    client.assert_alive().await;
}

#[tokio::test]
async fn a_subscribe_flood_is_cut_off_once_it_used_ten_seconds_worth_of_refusals() {
    use support::pusher::Received;

    let (server, _prod) = serve(config()).await;
    let mut flood = Client::connect(server.addr).await;
    // One subscribe after the other, each answer read first (so that nothing is left unread
    // when the server closes): 50/s succeed, the rest is refused until the refusals — ten
    // seconds' worth of 50/s, refilled at 50/s — run out; then the connection is closed.
    let (mut succeeded, mut refused) = (0, 0);
    let mut code = None;
    for i in 0..2000 {
        let channel = format!("flood-{i}");
        flood
            .send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}}))
            .await;
        match flood.next().await {
            Received::Frame(f) if f["event"] == "pusher:subscription_error" => refused += 1,
            Received::Frame(f) if f["event"] == "pusher:error" => {
                assert_eq!(data(&f)["code"], 4100, "{f}");
                code = Some(flood.closed().await);
                break;
            }
            Received::Frame(f) => {
                assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
                succeeded += 1;
            }
            Received::Closed(closed) => panic!("closed with {closed:?} without a reason"),
        }
    }
    assert_eq!(
        code,
        Some(Some(4100)),
        "{succeeded} succeeded, {refused} refused"
    );
    assert!(refused >= 500, "{refused}");
    assert!(succeeded >= 50, "{succeeded}");
}

#[tokio::test]
async fn deeply_nested_client_event_data_is_refused() {
    let (server, _prod) = serve(config()).await;
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    for c in [&mut a, &mut b] {
        let signed = auth(c, "private-deep", None);
        c.subscribe("private-deep", signed, None).await;
    }
    let nested = |depth: usize| -> Value {
        serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth))).unwrap()
    };
    a.send(json!({"event": "client-deep", "channel": "private-deep", "data": nested(40)}))
        .await;
    let f = a.frame().await;
    assert_eq!(f["event"], "pusher:error", "{f}");
    assert_eq!(data(&f)["code"], 4301, "{f}");
    // 32 levels pass; the other subscriber gets only that one.
    a.send(json!({"event": "client-ok", "channel": "private-deep", "data": nested(32)}))
        .await;
    let f = b.frame().await;
    assert_eq!(f["event"], "client-ok", "{f}");
    a.assert_alive().await;
}

#[tokio::test]
async fn client_events_reach_other_subscribers_only_where_allowed() {
    let (server, _prod) = serve(config()).await;
    let data_a = r#"{"user_id":"a"}"#;
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    for c in [&mut a, &mut b] {
        let signed = auth(c, "private-chat", None);
        c.subscribe("private-chat", signed, None).await;
        c.subscribe("public", None, None).await;
    }
    a.subscribe_signed("presence-p", Some(data_a)).await;
    let data_b = r#"{"user_id":"b"}"#;
    b.subscribe_signed("presence-p", Some(data_b)).await;
    assert_eq!(a.frame().await["event"], "pusher_internal:member_added");

    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "a"}}))
        .await;
    let f = b.frame().await;
    assert_eq!(
        f,
        json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "a"}})
    );
    a.assert_alive().await; // not echoed: the pong is A's next frame

    a.send(json!({"event": "client-typing", "channel": "presence-p", "data": 1}))
        .await;
    let f = b.frame().await;
    assert_eq!(f["user_id"], "a", "presence adds the sender's user id: {f}");

    for refused in [
        json!({"event": "client-x", "channel": "public", "data": {}}),
        json!({"event": "client-x", "channel": "private-elsewhere", "data": {}}),
        json!({"event": "client-x", "data": {}}),
    ] {
        a.send(refused.clone()).await;
        let f = a.frame().await;
        assert_eq!(f["event"], "pusher:error", "{refused}");
        assert_eq!(f["data"]["code"], 4301, "{refused}");
    }
    b.assert_alive().await;

    // Over the rate (10/s, bursts of 10): the rest are refused with 4301.
    for _ in 0..30 {
        a.send(json!({"event": "client-spam", "channel": "private-chat", "data": {}}))
            .await;
    }
    a.assert_alive_after_errors(4301).await;
}

trait AliveAfterErrors {
    async fn assert_alive_after_errors(&mut self, code: u16);
}

impl AliveAfterErrors for Client {
    /// Pings; every frame before the pong must be a `pusher:error` of `code`, and at least one came.
    async fn assert_alive_after_errors(&mut self, code: u16) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let mut errors = 0;
        loop {
            let f = self.frame().await;
            if f["event"] == "pusher:pong" {
                break;
            }
            assert_eq!(f["data"]["code"], code, "{f}");
            errors += 1;
        }
        assert!(errors > 0, "expected refusals with {code}");
    }
}

#[tokio::test]
async fn client_events_can_be_disabled() {
    let (server, _prod) = serve(
        BroadcastConfig::default().app(AppConfig::new(APP_ID, KEY, SECRET).without_client_events()),
    )
    .await;
    let mut a = Client::connect(server.addr).await;
    a.subscribe_signed("private-c", None).await;
    a.send(json!({"event": "client-x", "channel": "private-c", "data": {}}))
        .await;
    assert_eq!(a.frame().await["data"]["code"], 4301);
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let (server, _prod) = serve(config()).await;
    let mut a = Client::connect(server.addr).await;
    // The default message limit is 10 KiB; frames are cut off at 64 KiB.
    a.send_raw(Message::text("x".repeat(100 * 1024))).await;
    assert_eq!(a.closed().await, Some(1009));
    // The server is fine.
    let mut b = Client::connect(server.addr).await;
    b.assert_alive().await;
}

#[tokio::test]
async fn bad_input_gets_protocol_errors_and_the_server_stays_healthy() {
    let (server, prod) = serve(config()).await;
    let mut a = Client::connect(server.addr).await;
    a.send_raw(Message::text("{not json")).await;
    assert_eq!(a.frame().await["event"], "pusher:error");
    a.send_raw(Message::binary(vec![0u8, 1, 2])).await;
    assert_eq!(a.frame().await["event"], "pusher:error");
    a.send(json!({"event": "something-else", "data": {}})).await;
    assert_eq!(a.frame().await["data"]["code"], 4301);
    a.send(json!({"event": "pusher:unknown", "data": {}})).await; // ignored
    let big = "x".repeat(20_000);
    a.send(json!({"event": "client-big", "channel": "private-x", "data": big}))
        .await;
    assert_eq!(a.frame().await["data"]["message"], "Message too large");
    for bad in [
        "",
        "has space",
        "ümlaut",
        &"x".repeat(201),
        "#server-to-user-1",
    ] {
        let f = a.subscribe(bad, None, None).await;
        assert_eq!(f["event"], "pusher:subscription_error", "{bad:?}: {f}");
        assert_eq!(f["channel"], bad);
    }
    a.send(json!({"event": "pusher:subscribe", "data": "not an object"}))
        .await;
    assert_eq!(a.frame().await["event"], "pusher:error");
    a.assert_alive().await;

    // Hundreds of subscribe/unsubscribe from one client: 540 subscribes at once, 490 over the
    // rate — fewer than the 500 refusals in a row that end a connection.
    for i in 0..540 {
        let channel = format!("churn-{}", i % 50);
        a.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}}))
            .await;
        a.send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
            .await;
    }
    a.send(json!({"event": "pusher:ping", "data": {}})).await;
    // Every subscribe is answered: within the subscribe rate (50/s, bursts of 50) it succeeds,
    // past it it is refused with 429 — the connection stays up either way.
    let (mut succeeded, mut refused) = (0, 0);
    loop {
        let f = a.frame().await;
        if f["event"] == "pusher:pong" {
            break;
        }
        if f["event"] == "pusher:subscription_error" {
            assert_eq!(f["data"]["status"], 429, "{f}");
            refused += 1;
            continue;
        }
        assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
        succeeded += 1;
    }
    assert_eq!(succeeded + refused, 540);
    assert!(
        succeeded > 0 && refused > 0,
        "{succeeded} succeeded, {refused} refused"
    );
    let broadcaster = prod.broadcaster().unwrap();
    assert!(
        broadcaster.channels("churn-").await.unwrap().is_empty(),
        "no channel left behind"
    );
    // A frame far over the limit ends only that connection.
    a.send_raw(Message::text("y".repeat(200_000))).await;
    assert!(matches!(a.next().await, Received::Closed(_)));
    let mut b = Client::connect(server.addr).await;
    b.assert_alive().await;
}

#[tokio::test]
async fn frames_that_break_the_protocol_close_with_its_codes() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let (server, _prod) = serve(config()).await;
    // A text frame that is not UTF-8: 1007.
    let mut a = Client::connect(server.addr).await;
    let text = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    a.send_raw(Message::Frame(text)).await;
    assert_eq!(a.closed().await, Some(1007));
    // An RSV bit with no extension negotiated: 1002.
    let mut b = Client::connect(server.addr).await;
    let mut rsv = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    rsv.header_mut().rsv1 = true;
    b.send_raw(Message::Frame(rsv)).await;
    assert_eq!(b.closed().await, Some(1002));
    // Nothing else is affected.
    let mut c = Client::connect(server.addr).await;
    c.assert_alive().await;
}

#[tokio::test]
async fn sign_in_opens_the_user_channel_and_terminate_closes_with_4009() {
    let (server, prod) = serve(config()).await;
    let broadcaster = prod.broadcaster().unwrap();
    let mut a = Client::connect(server.addr).await;
    let f = a.subscribe("#server-to-user-7", None, None).await;
    assert_eq!(f["event"], "pusher:subscription_error", "not signed in yet");
    let user_data = r#"{"id":"7","user_info":{}}"#;
    let signed = user_auth(KEY, SECRET, &a.socket_id, user_data);
    a.send(json!({"event": "pusher:signin", "data": {"auth": signed, "user_data": user_data}}))
        .await;
    let f = a.frame().await;
    assert_eq!(f["event"], "pusher:signin_success");
    assert_eq!(f["data"]["user_data"], user_data);
    let f = a.subscribe("#server-to-user-7", None, None).await;
    assert_eq!(f["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(broadcaster.terminate_user_connections("7").await, 1);
    assert_eq!(a.closed().await, Some(4009));

    // A forged sign-in closes with 4009 too.
    let mut b = Client::connect(server.addr).await;
    let forged = user_auth(KEY, SECRET, "1.1", user_data);
    b.send(json!({"event": "pusher:signin", "data": {"auth": forged, "user_data": user_data}}))
        .await;
    assert_eq!(b.closed().await, Some(4009));
}

#[tokio::test]
async fn the_http_api_checks_signatures_and_answers_like_pusher() {
    let (server, _prod) = serve(config()).await;
    let base = server.url("");
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    let d = r#"{"user_id":"u"}"#;
    for c in [&mut a, &mut b] {
        let signed = auth(c, "presence-lobby", Some(d));
        c.subscribe("presence-lobby", signed, Some(d)).await;
        c.subscribe("feed", None, None).await;
    }

    // Exclusion: A's own event does not come back to A.
    let body = json!({"name": "e", "channels": ["feed"], "data": "1", "socket_id": a.socket_id})
        .to_string();
    assert_eq!(
        api(&base, "POST", "/apps/1/events", &body, &[]).await.0,
        200
    );
    assert_eq!(b.frame().await["data"], "1");
    a.assert_alive().await;

    let body = json!({"name": "e", "channels": ["presence-lobby", "feed"], "data": "{}", "info": "user_count,subscription_count"}).to_string();
    let (status, reply) = api(&base, "POST", "/apps/1/events", &body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["channels"]["presence-lobby"],
        json!({"user_count": 1, "subscription_count": 2})
    );
    assert_eq!(reply["channels"]["feed"], json!({"subscription_count": 2}));
    for c in [&mut a, &mut b] {
        assert_eq!(c.frame().await["channel"], "presence-lobby");
        assert_eq!(c.frame().await["channel"], "feed");
    }

    let (_, channels) = api(
        &base,
        "GET",
        "/apps/1/channels",
        "",
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
    )
    .await;
    assert_eq!(
        channels,
        json!({"channels": {"presence-lobby": {"user_count": 1}}})
    );
    let (_, all) = api(&base, "GET", "/apps/1/channels", "", &[]).await;
    assert_eq!(all["channels"].as_object().unwrap().len(), 2);
    let (_, one) = api(
        &base,
        "GET",
        "/apps/1/channels/presence-lobby",
        "",
        &[("info", "user_count,subscription_count")],
    )
    .await;
    assert_eq!(
        one,
        json!({"occupied": true, "user_count": 1, "subscription_count": 2})
    );
    let (_, empty) = api(&base, "GET", "/apps/1/channels/nobody", "", &[]).await;
    assert_eq!(empty, json!({"occupied": false}));
    let (_, users) = api(
        &base,
        "GET",
        "/apps/1/channels/presence-lobby/users",
        "",
        &[],
    )
    .await;
    assert_eq!(users, json!({"users": [{"id": "u"}]}));
    assert_eq!(
        api(&base, "GET", "/apps/1/channels/feed/users", "", &[])
            .await
            .0,
        400
    );

    let batch = json!({"batch": [
        {"channel": "feed", "name": "b1", "data": "1"},
        {"channel": "feed", "name": "b2", "data": "2"},
    ]})
    .to_string();
    assert_eq!(
        api(&base, "POST", "/apps/1/batch_events", &batch, &[])
            .await
            .0,
        200
    );
    assert_eq!(a.frame().await["event"], "b1");
    assert_eq!(a.frame().await["event"], "b2");

    // Refusals.
    let body = json!({"name": "e", "channel": "feed", "data": "{}"}).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases = [
        ("wrong key", "other", SECRET, now),
        ("wrong secret", KEY, "nope", now),
        ("expired", KEY, SECRET, now - 660),
        ("from the future", KEY, SECRET, now + 660),
    ];
    for (case, key, secret, timestamp) in cases {
        let (status, _) = api_as(
            &base,
            "POST",
            "/apps/1/events",
            &body,
            &[],
            key,
            secret,
            timestamp,
        )
        .await;
        assert_eq!(status, 401, "{case}");
    }
    let (status, _) = api(&base, "POST", "/apps/9/events", &body, &[]).await;
    assert_eq!(status, 404, "unknown app");
    // body_md5 of another body.
    let query =
        support::pusher::signed_query("POST", "/apps/1/events", b"{}", &[], KEY, SECRET, now);
    let res = client()
        .post(format!("{base}/apps/1/events?{query}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let unsigned = client()
        .post(format!("{base}/apps/1/events"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let big = json!({"name": "e", "channel": "feed", "data": "x".repeat(20_000)}).to_string();
    assert_eq!(api(&base, "POST", "/apps/1/events", &big, &[]).await.0, 413);
    for bad in [
        json!({"name": "e", "channel": "bad name", "data": "{}"}),
        json!({"name": "", "channel": "feed", "data": "{}"}),
        json!({"name": "e", "channels": [], "data": "{}"}),
        json!({"name": "e", "channels": ["private-encrypted-a", "feed"], "data": "{}"}),
        json!({"name": "e", "channel": "feed", "data": "{}", "socket_id": "not-a-socket"}),
    ] {
        assert_eq!(
            api(&base, "POST", "/apps/1/events", &bad.to_string(), &[])
                .await
                .0,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        api(&base, "POST", "/apps/1/events", "not json", &[])
            .await
            .0,
        400
    );
    a.assert_alive().await;
}

#[tokio::test]
async fn auth_endpoints_sign_what_the_authorizer_allows() {
    let (server, _prod) = serve(config()).await;
    let url = server.url("/broadcasting/auth");
    let post = |user: Option<&'static str>, form: Vec<(&'static str, String)>, url: String| async move {
        let mut request = client().post(url).form(&form);
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        let res = request.send().await.unwrap();
        (
            res.status().as_u16(),
            res.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let mut a = Client::connect(server.addr).await;
    let socket_id = a.socket_id.clone();
    let form = |channel: &str| {
        vec![
            ("socket_id", socket_id.clone()),
            ("channel_name", channel.to_owned()),
        ]
    };

    let (status, body) = post(Some("5"), form("private-orders"), url.clone()).await;
    assert_eq!(status, 200);
    let signed = body["auth"].as_str().unwrap().to_owned();
    assert_eq!(
        a.subscribe("private-orders", Some(signed), None).await["event"],
        "pusher_internal:subscription_succeeded"
    );

    let (status, body) = post(Some("5"), form("presence-team"), url.clone()).await;
    assert_eq!(status, 200);
    let channel_data = body["channel_data"].as_str().unwrap().to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&channel_data).unwrap(),
        json!({"user_id": "5", "user_info": {"name": "5"}})
    );
    let f = a
        .subscribe(
            "presence-team",
            Some(body["auth"].as_str().unwrap().to_owned()),
            Some(&channel_data),
        )
        .await;
    assert_eq!(data(&f)["presence"]["ids"], json!(["5"]));

    assert_eq!(post(None, form("private-orders"), url.clone()).await.0, 403);
    assert_eq!(post(Some("5"), form("public"), url.clone()).await.0, 400);
    assert_eq!(
        post(
            Some("5"),
            vec![
                ("socket_id", "x".into()),
                ("channel_name", "private-a".into())
            ],
            url.clone()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post(Some("5"), form("private-encrypted-a"), url.clone())
            .await
            .0,
        403,
        "no master key"
    );

    let (status, body) = post(
        Some("5"),
        vec![("socket_id", a.socket_id.clone())],
        server.url("/broadcasting/user-auth"),
    )
    .await;
    assert_eq!(status, 200);
    let user_data = body["user_data"].as_str().unwrap();
    assert_eq!(
        body["auth"],
        user_auth(KEY, SECRET, &a.socket_id, user_data)
    );
}

#[tokio::test]
async fn encrypted_channels_get_a_shared_secret() {
    let master = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="; // 32 × 0x07
    let app = AppConfig::new(APP_ID, KEY, SECRET).encryption_master_key(master);
    let (server, _prod) = serve(BroadcastConfig::default().app(app)).await;
    let res = client()
        .post(server.url("/broadcasting/auth"))
        .header("x-user-id", "1")
        .form(&[
            ("socket_id", "123.456"),
            ("channel_name", "private-encrypted-foo"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["shared_secret"],
        "UsGxKqmP9IdrlCW682IBqbcjk77iOZBrEYVv/cexvcM="
    );
    assert_eq!(
        body["auth"],
        channel_auth(KEY, SECRET, "123.456", "private-encrypted-foo", None)
    );
}

#[tokio::test]
async fn cache_channels_replay_the_last_event_or_report_a_miss() {
    let (server, prod) = serve(config()).await;
    let mut a = Client::connect(server.addr).await;
    a.subscribe("cache-prices", None, None).await;
    let miss = a.frame().await;
    assert_eq!(
        miss,
        json!({"event": "pusher:cache_miss", "channel": "cache-prices"})
    );
    prod.broadcaster()
        .unwrap()
        .publish_event(Event::new(["cache-prices"], "tick", "{\"p\":1}"))
        .await
        .unwrap();
    assert_eq!(a.frame().await["event"], "tick");
    let mut b = Client::connect(server.addr).await;
    b.subscribe("cache-prices", None, None).await;
    let replay = b.frame().await;
    assert_eq!(
        (replay["event"].as_str(), replay["data"].as_str()),
        (Some("tick"), Some("{\"p\":1}"))
    );
}

#[tokio::test]
async fn a_slow_consumer_is_closed_while_others_keep_receiving() {
    let mut settings = config();
    settings.send_queue = 64;
    let (server, prod) = serve(settings).await;
    let broadcaster = prod.broadcaster().unwrap();
    let mut slow = Client::connect(server.addr).await;
    slow.subscribe("firehose", None, None).await;
    let mut fast = Client::connect(server.addr).await;
    fast.subscribe("firehose", None, None).await;
    let payload = json!({"blob": "z".repeat(8000)});
    // The slow client never reads; the fast one reads every event as it is published.
    for i in 0..2000 {
        broadcaster
            .publish(["firehose"], "e", &payload)
            .await
            .unwrap();
        let f = fast.frame().await;
        assert_eq!(f["event"], "e", "event {i}");
    }
    let slow_closed = broadcaster
        .channel_info("firehose")
        .await
        .unwrap()
        .subscription_count
        == 1;
    assert!(slow_closed, "the slow client was disconnected");
    assert_eq!(slow.closed().await, Some(4100));
    assert_metric(&prod, "rustforge_broadcast_slow_consumers_total{app=\"1\"");
}

#[tokio::test]
async fn silent_clients_are_pinged_then_closed_with_4201() {
    let mut settings = config();
    settings.activity_timeout = Duration::from_secs(1);
    settings.pong_timeout = Duration::from_millis(500);
    let (server, _prod) = serve(settings).await;
    let mut a = Client::connect(server.addr).await;
    let ping = a.frame().await;
    assert_eq!(ping["event"], "pusher:ping");
    assert_eq!(a.closed().await, Some(4201));
}

#[tokio::test]
async fn shutdown_closes_with_4200_and_limits_refuse_with_4100() {
    let mut settings = config();
    settings.max_connections_per_ip = 2;
    let (server, prod) = serve(settings).await;
    let mut a = Client::connect(server.addr).await;
    let _b = Client::connect(server.addr).await;
    match Client::connect_key(server.addr, KEY).await {
        Err(Received::Frame(f)) => assert_eq!(f["data"]["code"], 4100),
        other => panic!(
            "third connection from one IP: {:?}",
            other.map(|c| c.socket_id)
        ),
    }
    prod.shutdown().trigger();
    assert_eq!(a.closed().await, Some(4200));
    assert_metric(
        &prod,
        "rustforge_broadcast_refused_connections_total{app=\"1\"",
    );
}

#[tokio::test]
async fn configuration_from_the_environment() {
    let config = rustforge_prod::Config::from_vars([
        ("PUSHER_APP_ID", "42"),
        ("PUSHER_APP_KEY", "k"),
        ("PUSHER_APP_SECRET", "s"),
        ("RUSTFORGE_BROADCAST_CLIENT_EVENTS", "false"),
    ])
    .unwrap();
    assert_eq!(config.broadcast.apps[0].id, "42");
    assert!(!config.broadcast.apps[0].client_events);
    assert!(
        !format!("{:?}", config.broadcast).contains("\"s\""),
        "the secret is not printed"
    );
    let err = rustforge_prod::Config::from_vars([("PUSHER_APP_ID", "42"), ("PUSHER_APP_KEY", "k")])
        .unwrap_err();
    assert_eq!(err.setting(), "PUSHER_APP_SECRET");
    let err = rustforge_prod::Config::from_vars([
        ("PUSHER_APP_ID", "42"),
        ("PUSHER_APP_KEY", "k"),
        ("PUSHER_APP_SECRET", "s"),
        ("RUSTFORGE_BROADCAST_STORE", "redis"),
    ])
    .unwrap_err();
    assert_eq!(err.setting(), "RUSTFORGE_BROADCAST_STORE");
    // What is missing: the URL, or in a build without Redis, the feature.
    #[cfg(feature = "redis")]
    assert!(err.reason().contains("REDIS_URL"), "{err}");
    #[cfg(not(feature = "redis"))]
    assert!(err.reason().contains("`redis` feature"), "{err}");
}

#[tokio::test]
async fn per_ip_limits_count_the_client_behind_a_trusted_proxy() {
    let prod = rustforge_prod::ProductionLayer::builder()
        .from_vars([
            ("PUSHER_APP_ID", APP_ID),
            ("PUSHER_APP_KEY", KEY),
            ("PUSHER_APP_SECRET", SECRET),
            ("RUSTFORGE_BROADCAST_MAX_CONNECTIONS_PER_IP", "1"),
            ("RUSTFORGE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let server = support::http::TestServer::start(axum::Router::new().merge(prod.routes())).await;
    let addr = server.addr;
    let from = move |ip: &'static str| async move {
        Client::connect_with(addr, KEY, &[("x-forwarded-for", ip)]).await
    };
    let _first = from("203.0.113.1")
        .await
        .expect("first connection of a client");
    match from("203.0.113.1").await {
        Err(Received::Frame(f)) => assert_eq!(f["data"]["code"], 4100, "{f}"),
        other => panic!(
            "second connection of one client: {:?}",
            other.map(|c| c.socket_id)
        ),
    }
    // Another client behind the same proxy has its own allowance.
    let _other = from("203.0.113.2").await.expect("another client");
    // IPv6 clients count per /64, as the rate limiter groups them: one network, one allowance.
    let _v6 = from("2001:db8:1:2::1")
        .await
        .expect("first address of a network");
    match from("2001:db8:1:2:ffff::9").await {
        Err(Received::Frame(f)) => assert_eq!(f["data"]["code"], 4100, "{f}"),
        other => panic!(
            "a second address of the same /64: {:?}",
            other.map(|c| c.socket_id)
        ),
    }
    let _next = from("2001:db8:1:3::1")
        .await
        .expect("the next /64 is another client");
}
