// pusher-js 8 and the `pusher` server SDK against rustforge-prod's broadcaster.
// Started by tests/broadcast_js.rs, which serves the app and sets BROADCAST_PORT, PUSHER_APP_*.
// The app's authorizer admits the user named by the `X-User-Id` header (none: denied).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const Pusher = require("pusher-js");
const PusherServer = require("pusher");
const { once } = require("./local-client");

const port = process.env.BROADCAST_PORT;
const appId = process.env.PUSHER_APP_ID;
const key = process.env.PUSHER_APP_KEY;
const secret = process.env.PUSHER_APP_SECRET;
const base = `http://127.0.0.1:${port}`;
const server = new PusherServer({ appId, key, secret, host: "127.0.0.1", port: String(port), useTLS: false });

const clients = [];
function client(userId) {
  const headers = userId ? { "X-User-Id": userId } : {};
  const pusher = new Pusher(key, {
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: Number(port),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: { endpoint: `${base}/broadcasting/auth`, transport: "ajax", headers },
    userAuthentication: { endpoint: `${base}/broadcasting/user-auth`, transport: "ajax", headers },
  });
  clients.push(pusher);
  return pusher;
}

function connected(pusher) {
  if (pusher.connection.state === "connected") return Promise.resolve();
  return new Promise((resolve) => pusher.connection.bind("connected", resolve));
}

async function subscribed(pusher, name) {
  const channel = pusher.subscribe(name);
  await once(channel, "pusher:subscription_succeeded");
  return channel;
}

// pusher-js keeps timers of disconnected clients alive: once every client is disconnected, end
// the process (with the exit code the test runner has set).
test.after(() => {
  clients.forEach((c) => c.disconnect());
  setTimeout(() => process.exit(), 500).unref();
});

// Sign-in completes when pusher-js has subscribed the user's server-to-user channel.
async function signedIn(pusher, userId) {
  await connected(pusher);
  pusher.signin();
  const path = `/channels/${encodeURIComponent(`#server-to-user-${userId}`)}`;
  for (let i = 0; i < 100; i++) {
    const info = await (await server.get({ path })).json();
    if (info.occupied) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`user ${userId} never signed in`);
}

test("connects with a protocol-conformant socket id", async () => {
  const pusher = client();
  await connected(pusher);
  assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
});

test("public channel receives events triggered through the HTTP API", async () => {
  const pusher = client();
  const channel = await subscribed(pusher, "orders");
  const got = once(channel, "order.shipped");
  await server.trigger("orders", "order.shipped", { id: 42 });
  assert.deepEqual(await got, { id: 42 });
});

test("socket_id exclusion skips the sender", async () => {
  const a = client();
  const b = client();
  const [ca, cb] = await Promise.all([subscribed(a, "news"), subscribed(b, "news")]);
  const firstOnA = once(ca, "item");
  const onB = once(cb, "item");
  await server.trigger("news", "item", { n: 1 }, { socket_id: a.connection.socket_id });
  assert.deepEqual(await onB, { n: 1 });
  // Frames to one connection keep their order: A's first item is the second event.
  await server.trigger("news", "item", { n: 2 });
  assert.deepEqual(await firstOnA, { n: 2 });
});

test("private channels go through the auth endpoint; a refusal is a subscription_error", async () => {
  const allowed = client("7");
  await subscribed(allowed, "private-user.7");
  const denied = client();
  const channel = denied.subscribe("private-user.7");
  const error = await once(channel, "pusher:subscription_error");
  assert.equal(error.status, 403);
});

test("presence: members, member_added and member_removed", async () => {
  const ann = client("ann");
  const room = await subscribed(ann, "presence-room.1");
  assert.equal(room.members.count, 1);
  assert.equal(room.members.me.id, "ann");
  const added = once(room, "pusher:member_added");
  const bob = client("bob");
  const bobRoom = await subscribed(bob, "presence-room.1");
  assert.equal(bobRoom.members.count, 2);
  assert.deepEqual(bobRoom.members.get("ann").info, { name: "ann" });
  const member = await added;
  assert.equal(member.id, "bob");
  assert.deepEqual(member.info, { name: "bob" });
  const removed = once(room, "pusher:member_removed");
  bob.disconnect();
  assert.equal((await removed).id, "bob");
  const users = await (await server.get({ path: "/channels/presence-room.1/users" })).json();
  assert.deepEqual(users, { users: [{ id: "ann" }] });
});

test("client events reach the others, never the sender", async () => {
  const a = client("a");
  const b = client("b");
  const [ca, cb] = await Promise.all([subscribed(a, "private-chat.1"), subscribed(b, "private-chat.1")]);
  const onB = once(cb, "client-typing");
  const firstOnA = new Promise((resolve) => ca.bind_global((event, data) => resolve(event)));
  ca.trigger("client-typing", { who: "a" });
  assert.deepEqual(await onB, { who: "a" });
  await server.trigger("private-chat.1", "marker", {});
  assert.equal(await firstOnA, "marker");
});

test("sign-in, then events sent to the user", async () => {
  const pusher = client("u1");
  const got = new Promise((resolve) => pusher.user.bind("hello", resolve));
  await signedIn(pusher, "u1");
  await server.sendToUser("u1", "hello", { text: "hi" });
  assert.deepEqual(await got, { text: "hi" });
});

test("after a 4200 close the client reconnects and resubscribes", async () => {
  const pusher = client();
  const channel = await subscribed(pusher, "reconnect-me");
  const before = pusher.connection.socket_id;
  const back = new Promise((resolve) => channel.bind("pusher:subscription_succeeded", resolve));
  const res = await fetch(`${base}/test/close-all`, { method: "POST" });
  assert.equal(res.status, 200);
  await back;
  assert.notEqual(pusher.connection.socket_id, before);
  const got = once(channel, "again");
  await server.trigger("reconnect-me", "again", { ok: true });
  assert.deepEqual(await got, { ok: true });
});

test("terminate_connections disconnects a signed-in user for good", async () => {
  const pusher = client("gone");
  await signedIn(pusher, "gone");
  const closed = new Promise((resolve) => pusher.connection.bind("disconnected", resolve));
  await server.terminateUserConnections("gone");
  await closed;
  // pusher-js reconnects at once after 4200-4299 and after 1 s for 4100-4199; a 4009 (4000-4099)
  // must not bring it back at all. Watch every state change for twice the longest delay.
  const changes = [];
  pusher.connection.bind("state_change", (states) => changes.push(states.current));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.deepEqual(changes, [], "the client came back after a 4009");
  assert.equal(pusher.connection.state, "disconnected");
});

