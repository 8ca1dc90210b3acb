// pusher-js 8 with js/pusher-recovery against rustforge-prod's broadcaster (one server, the
// memory bus). Started by tests/broadcast_recovery.rs, which serves the app twice — with the
// default history (BROADCAST_PORT) and with 10 events per channel (SMALL_HISTORY_PORT) — and
// sets PUSHER_APP_*. The client reaches the server through a TCP proxy of this script's own that
// resets its connection and refuses new ones for a while, as a dropped network does; the auth
// endpoint and the HTTP API are reached directly.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const localClient = require("./local-client");

const { once } = localClient;

const recovery = import("../../js/pusher-recovery/index.js");

/// A proxy to 127.0.0.1:`target` that can reset its connections and refuse new ones.
async function proxy(target) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target), "127.0.0.1");
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      a.on("data", (chunk) => b.write(chunk));
      a.on("error", () => b.destroy());
      a.on("close", () => b.destroy());
      sockets.add(a);
      a.on("close", () => sockets.delete(a));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  return {
    port,
    /** Resets every connection (RST) and stops accepting: connects are refused. */
    async cut() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.resetAndDestroy();
      await closed;
    },
    /** Accepts again on the same port. */
    async restore() {
      await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close() {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

const clients = [];
async function recovering(serverPort, proxyPort, userId) {
  const { enableRecovery } = await recovery;
  // Connects through the proxy; authorizes at the server itself.
  const pusher = localClient(process.env.PUSHER_APP_KEY, serverPort, userId, { wsPort: proxyPort });
  const handle = enableRecovery(pusher);
  clients.push(pusher);
  return { pusher, handle };
}

async function until(condition, what, ms = 50_000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test.after(() => {
  clients.forEach((c) => c.disconnect());
  setTimeout(() => process.exit(), 500).unref();
});

test("every event missed across a reset and refused connection arrives once, in order", async () => {
  const port = process.env.BROADCAST_PORT;
  const api = localClient.api(port);
  const relay = await proxy(port);
  const { pusher } = await recovering(port, relay.port, "ann");
  const channel = pusher.subscribe("private-recovery");
  await once(channel, "pusher:subscription_succeeded");
  const got = [];
  const failures = [];
  channel.bind("n", (data) => got.push(data.n));
  channel.bind("pusher:resume_failed", (data) => failures.push(data));
  let published = 0;
  const publish = async () => {
    published += 1;
    await api.trigger("private-recovery", "n", { n: published });
  };

  for (let i = 0; i < 10; i++) await publish();
  await until(() => got.length === 10, "the first 10 events");
  const states = [];
  pusher.connection.bind("state_change", ({ current }) => states.push(current));
  await relay.cut();
  await until(() => pusher.connection.state !== "connected", "pusher-js to see the reset");
  // Missed: 80 events while the connection is refused.
  for (let i = 0; i < 80; i++) await publish();
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const reconnected = once(pusher.connection, "connected");
  await relay.restore();
  // pusher-js comes back on its own schedule; the moment it does, more events are published
  // while it subscribes again and the missed ones are replayed: each must arrive once, in its
  // place. (80 + 15 stays within the 100 events a channel keeps.)
  await reconnected;
  for (let i = 0; i < 15; i++) await publish();
  for (let i = 0; i < 5; i++) await publish();
  await until(() => got.length >= published, "every event");
  assert.deepEqual(failures, []);
  assert.deepEqual(
    got,
    Array.from({ length: published }, (_, i) => i + 1),
    "every event exactly once, in order",
  );
  assert.ok(states.includes("connected"), `reconnected: ${states}`);
  relay.close();
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
