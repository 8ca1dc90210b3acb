// pusher-js 8 with js/pusher-recovery against rustforge-prod's broadcaster (one server, the
// memory bus). Started by tests/broadcast_recovery.rs, which serves the app twice — with the
// default history (BROADCAST_PORT) and with 10 events per channel (SMALL_HISTORY_PORT) — and
// sets PUSHER_APP_*. The client reaches the server through a proxy (./recovery-support.js) that
// resets its connection and refuses new ones for a while, as a dropped network does; the auth
// endpoint and the HTTP API are reached directly.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const localClient = require("./local-client");
const {
  proxy,
  recovering,
  disconnectAll,
  until,
  missedEventsArriveOnce,
  clients,
} = require("./recovery-support");

const { once } = localClient;

test.after(() => {
  disconnectAll();
  setTimeout(() => process.exit(), 500).unref();
});

test("every event missed across a reset and refused connection arrives once, in order", async () => {
  const port = process.env.BROADCAST_PORT;
  await missedEventsArriveOnce({ clientPort: port, publishPort: port, returnPort: port });
});

test("more missed events than the history keeps: resume_failed with the reason, then live events", async () => {
  const port = process.env.SMALL_HISTORY_PORT;
  const api = localClient.api(port);
  const relay = await proxy(port);
  const { pusher } = await recovering(port, relay.port, "ann");
  const channel = pusher.subscribe("private-small");
  await once(channel, "pusher:subscription_succeeded");
  const got = [];
  channel.bind("n", (data) => got.push(data.n));
  await api.trigger("private-small", "n", { n: 1 });
  await until(() => got.length === 1, "the first event");
  await relay.cut();
  await until(() => pusher.connection.state !== "connected", "pusher-js to see the reset");
  for (let n = 2; n <= 31; n++) await api.trigger("private-small", "n", { n });
  const failed = once(channel, "pusher:resume_failed");
  await relay.restore();
  assert.deepEqual(await failed, { reason: "too_old" });
  await api.trigger("private-small", "n", { n: 100 });
  await until(() => got.includes(100), "a live event after resume_failed");
  assert.deepEqual(got, [1, 100], "nothing replayed: the app refetches");
  relay.close();
});

test("a resumed presence channel replays app events, not member events", async () => {
  const port = process.env.BROADCAST_PORT;
  const api = localClient.api(port);
  const relay = await proxy(port);
  const { pusher } = await recovering(port, relay.port, "ann");
  const channel = pusher.subscribe("presence-recovery");
  await once(channel, "pusher:subscription_succeeded");
  const joined = [];
  const got = [];
  channel.bind("pusher:member_added", (member) => joined.push(member.id));
  channel.bind("n", (data) => got.push(data.n));
  const bob = localClient(process.env.PUSHER_APP_KEY, port, "bob");
  clients.push(bob);
  await once(bob.subscribe("presence-recovery"), "pusher:subscription_succeeded");
  await until(() => joined.length === 1, "bob's member_added");
  await api.trigger("presence-recovery", "n", { n: 1 });
  await until(() => got.length === 1, "the first event");
  await relay.cut();
  await until(() => pusher.connection.state !== "connected", "pusher-js to see the reset");
  await api.trigger("presence-recovery", "n", { n: 2 });
  const resubscribed = once(channel, "pusher:subscription_succeeded");
  await relay.restore();
  const members = await resubscribed;
  assert.deepEqual(Object.keys(members.members).sort(), ["ann", "bob"]);
  await until(() => got.length === 2, "the missed event");
  await api.trigger("presence-recovery", "n", { n: 3 });
  await until(() => got.length === 3, "a live event");
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(joined, ["bob"], "member_added once");
  relay.close();
});
