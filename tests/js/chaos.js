// The chaos test's broadcasting workload (tests/chaos.rs). USERS pusher-js presence clients
// connect through the kit's nginx (PROXY_PORT) and stay connected while the test breaks Redis
// and the app servers under them; a publisher sends an event through each server's HTTP API
// (SERVER_PORTS) every 50 ms, numbered per server. Prints "READY" once every client is
// subscribed, then answers each stdin line with one JSON line:
//   PHASE <name>  events sent from now on belong to phase <name>
//   CHECK         waits until every client is connected and subscribed and presence converged
//                 (members, user and subscription counts on both servers' APIs), then until every
//                 event the API acknowledged reached every client that was subscribed when it was
//                 sent; reports per phase what was acknowledged, missed, duplicated or reordered.
"use strict";

const localClient = require("./local-client");
const readline = require("node:readline");

const key = process.env.PUSHER_APP_KEY;
const proxyPort = Number(process.env.PROXY_PORT);
const serverPorts = process.env.SERVER_PORTS.split(",").map(Number);
const users = Number(process.env.USERS || 10);
const channelName = "presence-chaos";
const apis = serverPorts.map((port) => localClient.api(port, { timeout: 3000 }));
const everyone = Array.from({ length: users }, (_, i) => `u${i}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

// Per phase: events acknowledged (with when they were sent) and publishes that failed.
const phases = new Map();
let phase = "start";
function phaseStats(name) {
  if (!phases.has(name)) phases.set(name, { acked: [], failed: 0 });
  return phases.get(name);
}

function client(userId) {
  const pusher = localClient(key, proxyPort, userId);
  // `since`: when the current subscription succeeded (null while not subscribed); `got`: how
  // many times each event arrived; `last`: the last number received from each server.
  const c = { userId, pusher, subscriptions: 0, since: null, got: new Map(), last: {}, reordered: 0 };
  c.channel = pusher.subscribe(channelName);
  c.channel.bind("pusher:subscription_succeeded", () => {
    c.subscriptions += 1;
    c.since = Date.now();
  });
  c.channel.bind("tick", ({ from, n }) => {
    const id = `${from}:${n}`;
    c.got.set(id, (c.got.get(id) || 0) + 1);
    if (n <= (c.last[from] || 0)) c.reordered += 1;
    else c.last[from] = n;
  });
  pusher.connection.bind("state_change", ({ current }) => {
    if (current !== "connected") c.since = null;
  });
  return c;
}

// One loop per server: an event, its answer, 50 ms, the next.
let publishing = true;
async function publish(i) {
  let n = 0;
  while (publishing) {
    n += 1;
    const stats = phaseStats(phase);
    const sentAt = Date.now();
    try {
      const res = await apis[i].trigger(channelName, "tick", { from: i, n });
      if (res.status === 200) stats.acked.push({ id: `${i}:${n}`, sentAt });
      else stats.failed += 1;
    } catch {
      stats.failed += 1;
    }
    await sleep(50);
  }
}

async function channelInfo(api) {
  try {
    const res = await api.get({
      path: `/channels/${channelName}`,
      params: { info: "user_count,subscription_count" },
    });
    const info = await res.json();
    const members = await (await api.get({ path: `/channels/${channelName}/users` })).json();
    return { ...info, users: members.users.map((u) => u.id).sort() };
  } catch (err) {
    return { error: String(err) };
  }
}

// Presence is right everywhere: each client sees every user, and each server's API counts
// exactly one subscription per client and every user (a dead server's members and
// subscriptions would show here even when its users came back under the same ids).
async function presenceConverged(clients) {
  if (!clients.every((c) => c.channel.members.count === users)) return false;
  for (const api of apis) {
    const info = await channelInfo(api);
    if (info.subscription_count !== users || info.user_count !== users) return false;
    if (JSON.stringify(info.users) !== JSON.stringify(everyone)) return false;
  }
  return true;
}

// The events of `stats` that `c` had to receive: sent while it was subscribed.
const owed = (c, stats) => stats.acked.filter((e) => c.since !== null && c.since < e.sentAt);

async function check(clients) {
  const started = Date.now();
  const ready = (c) => c.pusher.connection.state === "connected" && c.since !== null;
  const connected = await waitFor(() => clients.every(ready), 30000);
  const converged = await waitFor(() => presenceConverged(clients), 30000);
  const convergedAt = Date.now();
  const delivered = () =>
    [...phases.values()].every((stats) =>
      clients.every((c) => owed(c, stats).every((e) => c.got.has(e.id))),
    );
  await waitFor(delivered, 20000);

  const report = {};
  for (const [name, stats] of phases) {
    const row = { acked: stats.acked.length, failed: stats.failed, deliveries: 0, missed: [], duplicates: 0, not_owed_missed: 0 };
    for (const c of clients) {
      const due = new Set(owed(c, stats).map((e) => e.id));
      for (const e of stats.acked) {
        const times = c.got.get(e.id) || 0;
        if (times > 1) row.duplicates += times - 1;
        if (due.has(e.id)) {
          if (times === 0) row.missed.push(`${c.userId} missed ${e.id}`);
          else row.deliveries += 1;
        } else if (times === 0) {
          row.not_owed_missed += 1;
        }
      }
    }
    row.missed = row.missed.slice(0, 20);
    report[name] = row;
  }
  const subscriptions = {};
  for (const c of clients) subscriptions[c.userId] = c.subscriptions;
  return {
    connected: clients.filter(ready).length,
    converged,
    converged_at_ms: convergedAt,
    waited_ms: convergedAt - started,
    api: await Promise.all(apis.map(channelInfo)),
    reordered: clients.reduce((sum, c) => sum + c.reordered, 0),
    subscriptions,
    phases: report,
  };
}

async function main() {
  const clients = everyone.map(client);
  if (!(await waitFor(() => clients.every((c) => c.since !== null), 20000))) {
    throw new Error("not every client subscribed");
  }
  const loops = apis.map((_, i) => publish(i));
  console.log("READY");

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [command, arg] = line.trim().split(/\s+/);
    if (command === "PHASE") {
      phase = arg;
      console.log(JSON.stringify({ phase }));
    } else if (command === "CHECK") {
      console.log(JSON.stringify(await check(clients)));
    }
  }
  publishing = false;
  await Promise.all(loops);
  clients.forEach((c) => c.pusher.disconnect());
  setTimeout(() => process.exit(0), 300).unref();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
