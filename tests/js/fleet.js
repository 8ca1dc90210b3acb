// The fleet as pusher-js clients live it. Started by tests/fleet.rs, which runs two app servers
// on one Redis behind the deployment kit's nginx (PROXY_PORT); SERVER_PORTS are the servers' own
// ports, for their HTTP APIs. USERS presence clients connect through nginx and stay connected
// while the test restarts servers under them. Prints "READY" once every client is subscribed.
// Each "CHECK" line on stdin waits until every client is connected and subscribed again, then
// publishes one event through each server's API, waits until every client got both, and prints
// one JSON line: the members each server's API and each client see, the user and subscription
// counts each server's API gives, how many times each client subscribed, and the events each
// client missed.
"use strict";

const localClient = require("./local-client");
const readline = require("node:readline");

const key = process.env.PUSHER_APP_KEY;
const proxyPort = Number(process.env.PROXY_PORT);
const serverPorts = process.env.SERVER_PORTS.split(",").map(Number);
const users = Number(process.env.USERS || 10);
const channelName = "presence-fleet";
const apis = serverPorts.map((port) => localClient.api(port));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition, ms) {
  for (let waited = 0; !condition() && waited < ms; waited += 50) await sleep(50);
  return condition();
}

function client(userId) {
  const pusher = localClient(key, proxyPort, userId);
  const entry = { userId, pusher, subscriptions: 0, subscribed: false, received: new Set() };
  entry.channel = pusher.subscribe(channelName);
  entry.channel.bind("pusher:subscription_succeeded", () => {
    entry.subscriptions += 1;
    entry.subscribed = true;
  });
  entry.channel.bind("ping", (data) => entry.received.add(`${data.check}:${data.from}`));
  pusher.connection.bind("state_change", ({ current }) => {
    if (current !== "connected") entry.subscribed = false;
  });
  return entry;
}

async function check(clients, n) {
  const ready = (c) => c.pusher.connection.state === "connected" && c.subscribed;
  await waitFor(() => clients.every(ready), 30000);
  // Members converge once every leave and join of the restarts went through.
  const everyone = users;
  await waitFor(() => clients.every((c) => c.channel.members.count === everyone), 10000);
  for (const [i, api] of apis.entries()) {
    await api.trigger(channelName, "ping", { check: n, from: serverPorts[i] });
  }
  const expected = serverPorts.map((port) => `${n}:${port}`);
  const got = (c) => expected.every((e) => c.received.has(e));
  await waitFor(() => clients.every(got), 10000);

  // Each server's API counts one subscription per client: a subscription a stopped server left
  // behind would count here although its user came back under the same id.
  const counts = async () => {
    const all = [];
    for (const api of apis) {
      const params = { info: "user_count,subscription_count" };
      const info = await (await api.get({ path: `/channels/${channelName}`, params })).json();
      all.push([info.user_count, info.subscription_count]);
    }
    return all;
  };
  let apiCounts = await counts();
  for (let i = 0; i < 200 && !apiCounts.every(([u, s]) => u === users && s === users); i++) {
    await sleep(50);
    apiCounts = await counts();
  }
  const apiMembers = [];
  for (const api of apis) {
    const res = await api.get({ path: `/channels/${channelName}/users` });
    apiMembers.push((await res.json()).users.map((u) => u.id).sort());
  }
  const seen = {};
  const missed = {};
  const subscriptions = {};
  for (const c of clients) {
    const ids = [];
    c.channel.members.each((m) => ids.push(m.id));
    seen[c.userId] = ids.sort();
    missed[c.userId] = expected.filter((e) => !c.received.has(e));
    subscriptions[c.userId] = c.subscriptions;
  }
  return {
    connected: clients.filter(ready).length,
    api: apiMembers,
    counts: apiCounts,
    seen,
    missed,
    subscriptions,
  };
}

async function main() {
  const clients = [];
  for (let i = 0; i < users; i++) clients.push(client(`u${i}`));
  if (!(await waitFor(() => clients.every((c) => c.subscribed), 20000))) {
    throw new Error("not every client subscribed");
  }
  console.log("READY");

  let n = 0;
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() !== "CHECK") continue;
    n += 1;
    console.log(JSON.stringify(await check(clients, n)));
  }
  clients.forEach((c) => c.pusher.disconnect());
  setTimeout(() => process.exit(0), 300).unref();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
