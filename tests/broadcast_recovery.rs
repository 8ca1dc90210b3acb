//! Connection recovery on the wire, one server (the memory bus): positions for the clients that
//! ask, every missed event after a resume, `pusher:resume_failed` with its reason when that
//! cannot be proven, and today's frames for the clients that do not ask. pusher-js with the
//! `js/pusher-recovery` plugin across a reset and refused connection: tests/js/recovery.test.js.

mod support;

use serde_json::{Value, json};
use support::pusher::{
    APP_ID, Client, api, config, data, frames, publish_n as publish, serve, subscribe_recovering,
};

const USER_A: &str = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;

#[tokio::test]
async fn a_resumed_subscription_gets_every_missed_event_once_in_order() {
    let (server, _prod) = serve(config()).await;
    let base = server.url("");
    let mut ann = Client::connect(server.addr).await;
    let succeeded = subscribe_recovering(&mut ann, "private-orders", "", json!({})).await;
    assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
    let start = succeeded["position"].as_str().unwrap().to_owned();
    assert!(start.ends_with(":0"), "a new stream: {start}");
    for n in 1..=3 {
        publish(&base, "private-orders", n, None).await;
    }
    let got = frames(&mut ann, 3).await;
    let positions: Vec<String> = got.iter().map(|f| f.2.clone().unwrap()).collect();
    let epoch = start.split(':').next().unwrap();
    assert_eq!(
        positions,
        [1, 2, 3].map(|n| format!("{epoch}:{n}")),
        "one stream, serials from 1"
    );
    let had = positions[1].clone();
    let old_socket = ann.socket_id.clone();
    drop(ann);

    // Missed while away: 4 and 5, and 6, which was not for this client's old connection.
    publish(&base, "private-orders", 4, None).await;
    publish(&base, "private-orders", 5, None).await;
    publish(&base, "private-orders", 6, Some(&old_socket)).await;
    let mut back = Client::connect(server.addr).await;
    let succeeded = subscribe_recovering(
        &mut back,
        "private-orders",
        &had,
        json!({ "previous_socket_id": old_socket }),
    )
    .await;
    assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(succeeded["position"], had.as_str(), "resumed where it was");
    publish(&base, "private-orders", 7, None).await;
    let got = frames(&mut back, 4).await;
    let numbers: Vec<&str> = got.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(numbers, ["3", "4", "5", "7"], "{got:?}");
    assert_eq!(got[3].2.as_deref(), Some(format!("{epoch}:7").as_str()));
    back.assert_alive().await;
}

#[tokio::test]
async fn without_the_extension_frames_are_todays() {
    let (server, _prod) = serve(config()).await;
    let mut plain = Client::connect(server.addr).await;
    let succeeded = plain.subscribe_signed("private-orders", None).await;
    assert_eq!(succeeded.as_object().unwrap().len(), 3, "{succeeded}");
    let mut recovering = Client::connect(server.addr).await;
    subscribe_recovering(&mut recovering, "private-orders", "", json!({})).await;
    publish(&server.url(""), "private-orders", 1, None).await;
    let frame = plain.frame().await;
    assert_eq!(
        frame,
        json!({ "event": "n", "channel": "private-orders", "data": "1" }),
        "no position for a client that did not ask"
    );
    assert!(recovering.frame().await["position"].is_string());
}

#[tokio::test]
async fn what_cannot_be_resumed_is_said_with_its_reason_then_live_events_follow() {
    let mut settings = config();
    settings.history_events = 3;
    let (server, _prod) = serve(settings).await;
    let base = server.url("");
    let mut ann = Client::connect(server.addr).await;
    let start = subscribe_recovering(&mut ann, "private-feed", "", json!({})).await;
    let start = start["position"].as_str().unwrap().to_owned();
    drop(ann);
    for n in 1..=5 {
        publish(&base, "private-feed", n, None).await;
    }
    let epoch = start.split(':').next().unwrap().to_owned();
    // (position, channel, reason)
    let cases = [
        (start.clone(), "private-feed", "too_old"),
        (
            format!("{:016x}:1", u64::from_str_radix(&epoch, 16).unwrap() ^ 2),
            "private-feed",
            "reset",
        ),
        (format!("{epoch}:99"), "private-feed", "invalid_position"),
        (
            "not-a-position".to_owned(),
            "private-feed",
            "invalid_position",
        ),
        (format!("{epoch}:1"), "public-feed", "not_recoverable"),
    ];
    let mut last = 5;
    for (position, channel, reason) in cases {
        let mut client = Client::connect(server.addr).await;
        let succeeded = subscribe_recovering(&mut client, channel, &position, json!({})).await;
        assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
        let failed = client.frame().await;
        assert_eq!(failed["event"], "pusher:resume_failed", "{failed}");
        assert_eq!(failed["channel"], channel);
        assert_eq!(data(&failed), json!({ "reason": reason }), "{position}");
        let recoverable = channel == "private-feed";
        if recoverable {
            // Where it is now: the stream's last event, so it resumes from there next time.
            assert_eq!(succeeded["position"], format!("{epoch}:{last}").as_str());
            last += 1;
        }
        publish(&base, channel, 100 + last, None).await;
        let live = client.frame().await;
        assert_eq!(live["data"], (100 + last).to_string(), "live events follow");
    }
    // Within the window: the 3 kept events after `last - 3`.
    let mut client = Client::connect(server.addr).await;
    let from = format!("{epoch}:{}", last - 3);
    subscribe_recovering(&mut client, "private-feed", &from, json!({})).await;
    let got = frames(&mut client, 3).await;
    let positions: Vec<String> = got.iter().map(|f| f.2.clone().unwrap()).collect();
    assert_eq!(
        positions,
        [last - 2, last - 1, last].map(|n| format!("{epoch}:{n}"))
    );
    client.assert_alive().await;
}

#[tokio::test]
async fn a_resumed_presence_subscription_does_not_replay_member_events() {
    let (server, _prod) = serve(config()).await;
    let base = server.url("");
    let mut ann = Client::connect(server.addr).await;
    let extra = json!({ "channel_data": USER_A });
    let start = subscribe_recovering(&mut ann, "presence-room", "", extra.clone()).await;
    let start = start["position"].as_str().unwrap().to_owned();
    let mut bob = Client::connect(server.addr).await;
    bob.subscribe_signed(
        "presence-room",
        Some(r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#),
    )
    .await;
    assert_eq!(ann.frame().await["event"], "pusher_internal:member_added");
    publish(&base, "presence-room", 1, None).await;
    assert_eq!(ann.frame().await["data"], "1");
    drop(ann);
    drop(bob);
    publish(&base, "presence-room", 2, None).await;
    let mut back = Client::connect(server.addr).await;
    let succeeded = subscribe_recovering(&mut back, "presence-room", &start, extra).await;
    let presence = data(&succeeded)["presence"].clone();
    assert_eq!(presence["ids"], json!(["ann"]), "the members of now");
    let got = frames(&mut back, 2).await;
    let events: Vec<(&str, &str)> = got.iter().map(|f| (f.0.as_str(), f.1.as_str())).collect();
    assert_eq!(events, [("n", "1"), ("n", "2")], "app events only");
    back.assert_alive().await;
}

#[tokio::test]
async fn backends_read_a_channels_history_newest_first_in_pages() {
    let (server, prod) = serve(config()).await;
    let base = server.url("");
    for n in 1..=5 {
        publish(&base, "private-log", n, None).await;
    }
    let path = format!("/apps/{APP_ID}/channels/private-log/events");
    let (status, first) = api(&base, "GET", &path, "", &[("limit", "2")]).await;
    assert_eq!(status, 200, "{first}");
    let data = |page: &Value| -> Vec<String> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(data(&first), ["5", "4"]);
    assert_eq!(first["events"][0]["event"], "n");
    assert_eq!(first["events"][0]["channel"], "private-log");
    let next = first["next"].as_str().unwrap().to_owned();
    assert_eq!(first["events"][1]["position"], next.as_str());
    let (_, second) = api(
        &base,
        "GET",
        &path,
        "",
        &[("before", &next), ("limit", "2")],
    )
    .await;
    assert_eq!(data(&second), ["3", "2"]);
    let next = second["next"].as_str().unwrap().to_owned();
    let (_, last) = api(&base, "GET", &path, "", &[("before", &next)]).await;
    assert_eq!(
        (data(&last), &last["next"]),
        (vec!["1".to_owned()], &Value::Null)
    );
    // The Rust API says the same.
    let page = prod
        .broadcaster()
        .unwrap()
        .history("private-log", 100, None)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 5);
    assert_eq!(page.events[4].data, "1");

    for (query, status) in [
        (vec![("limit", "0")], 400),
        (vec![("limit", "101")], 400),
        (vec![("before", "nope")], 400),
        (vec![("before", "0000000000000002:3")], 400),
    ] {
        let (got, body) = api(&base, "GET", &path, "", &query).await;
        assert_eq!(got, status, "{query:?}: {body}");
    }
    let public = format!("/apps/{APP_ID}/channels/news/events");
    assert_eq!(
        api(&base, "GET", &public, "", &[]).await.0,
        404,
        "keeps none"
    );
    let unsigned = support::http::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
}

/// pusher-js 8 with `js/pusher-recovery`, through a proxy that resets the connection and
/// refuses new ones while events keep being published (tests/js/recovery.test.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_with_the_plugin_recovers_across_a_reset_and_refused_connection() {
    let (server, _prod) = serve(config()).await;
    let mut small = config();
    small.history_events = 10;
    let (small_server, _small_prod) = serve(small).await;
    let env = [
        ("BROADCAST_PORT", server.addr.port().to_string()),
        ("SMALL_HISTORY_PORT", small_server.addr.port().to_string()),
    ];
    support::node::run_tests("recovery.test.js", 3, 150_000, &env).await;
}
