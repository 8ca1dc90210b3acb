// What the recovery tests share (tests/js/recovery.test.js on one server,
// tests/js/recovery-fleet.test.js on two servers sharing Redis): a TCP proxy that resets its
// connections and refuses new ones as a dropped network does, pusher-js clients with
// js/pusher-recovery connecting through it, and the main scenario.
"use strict";

const assert = require("node:assert/strict");
const net = require("node:net");
const localClient = require("./local-client");

const { once } = localClient;

const recovery = import("../../js/pusher-recovery/index.js");

/// A proxy to 127.0.0.1:`target` that can reset its connections and refuse new ones, and
/// accept again towards another server.
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
    /** Accepts again on the same port, towards `to` (the same server by default). */
    async restore(to = target) {
      target = to;
      await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close() {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

const clients = [];

/// A pusher-js client with the plugin, connecting through `proxyPort`, authorizing at
/// `serverPort` itself.
async function recovering(serverPort, proxyPort, userId) {
  const { enableRecovery } = await recovery;
  const pusher = localClient(process.env.PUSHER_APP_KEY, serverPort, userId, { wsPort: proxyPort });
  const handle = enableRecovery(pusher);
  clients.push(pusher);
  return { pusher, handle };
}

/// Disconnects every client made here or registered with it.
function disconnectAll() {
  clients.forEach((c) => c.disconnect());
}

async function until(condition, what, ms = 50_000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/// The main scenario: a client on `clientPort` gets 10 events; its connection is reset and
/// refused while 80 are published through `publishPort`; pusher-js comes back on its own
/// schedule, through the proxy now towards `returnPort`, and 20 more are published the moment it
/// does. Every event must arrive once, in order, and no resume fail.
async function missedEventsArriveOnce({ clientPort, publishPort, returnPort }) {
  const api = localClient.api(publishPort);
  const relay = await proxy(clientPort);
  const { pusher } = await recovering(clientPort, relay.port, "ann");
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
  await relay.cut();
  await until(() => pusher.connection.state !== "connected", "pusher-js to see the reset");
  // Missed: 80 events while the connection is refused.
  for (let i = 0; i < 80; i++) await publish();
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const reconnected = once(pusher.connection, "connected");
  await relay.restore(returnPort);
  // pusher-js comes back on its own schedule; the moment it does, more events are published
  // while it subscribes again and the missed ones are replayed: each must arrive once, in its
  // place. (80 + 20 stays within the 100 events a channel keeps.)
  await reconnected;
  for (let i = 0; i < 20; i++) await publish();
  await until(() => got.length >= published, "every event");
  assert.deepEqual(failures, []);
  assert.deepEqual(
    got,
    Array.from({ length: published }, (_, i) => i + 1),
    "every event exactly once, in order",
  );
  relay.close();
}

module.exports = { proxy, recovering, disconnectAll, until, missedEventsArriveOnce, clients };
