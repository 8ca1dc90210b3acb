// A rolling deploy as pusher-js clients live it. Started by tests/broadcast_js.rs, which runs
// server A (a process it will SIGTERM) and server B on one Redis, and a round-robin TCP proxy in
// front of both (PROXY_PORT). USERS presence clients connect through the proxy; an observer
// connects to B directly (B_PORT). Prints "READY" once every client is subscribed; reads
// "TERMINATED" on stdin once A has exited; then waits until every client is subscribed again and
// prints one JSON line: what the observer saw, what B's HTTP API says, and the member events
// per user since READY.
"use strict";

const localClient = require("./local-client");
const readline = require("node:readline");

const key = process.env.PUSHER_APP_KEY;
const proxyPort = Number(process.env.PROXY_PORT);
const bPort = Number(process.env.B_PORT);
const users = Number(process.env.USERS || 10);
const channelName = "presence-deploy";
const api = localClient.api(bPort);

function subscribed(channel) {
  return new Promise((resolve) => channel.bind("pusher:subscription_succeeded", resolve));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const observer = localClient(key, bPort, "observer");
  const watched = observer.subscribe(channelName);
  await subscribed(watched);
  const events = {};
  let counting = false;
  const count = (kind) => (member) => {
    if (!counting) return;
    events[member.id] = events[member.id] || { added: 0, removed: 0 };
    events[member.id][kind] += 1;
  };
  watched.bind("pusher:member_added", count("added"));
  watched.bind("pusher:member_removed", count("removed"));

  const clients = [];
  for (let i = 0; i < users; i++) {
    const pusher = localClient(key, proxyPort, `u${i}`);
    const channel = pusher.subscribe(channelName);
    // Every (re)subscription is counted: after A is gone, each client must have one more.
    const entry = { pusher, channel, subscriptions: 0 };
    channel.bind("pusher:subscription_succeeded", () => (entry.subscriptions += 1));
    clients.push(entry);
  }
  for (let i = 0; i < 400 && clients.some((c) => c.subscriptions === 0); i++) await sleep(50);
  if (clients.some((c) => c.subscriptions === 0)) throw new Error("not every client subscribed");
  for (let i = 0; i < 400 && watched.members.count < users + 1; i++) await sleep(50);
  counting = true;
  const before = clients.map((c) => c.subscriptions);
  const socketsBefore = clients.map((c) => c.pusher.connection.socket_id);
  console.log("READY");

  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.on("line", (l) => l.trim() === "TERMINATED" && resolve()));

  // The clients A had were disconnected and subscribed again on B; those on B were not. A
  // client on a new socket must have subscribed again (a count already reached before the roll
  // proves nothing).
  const again = (c, i) =>
    c.pusher.connection.state === "connected" &&
    (c.pusher.connection.socket_id === socketsBefore[i] ? c.subscriptions >= before[i] : c.subscriptions > before[i]);
  for (let i = 0; i < 600 && !clients.every(again); i++) await sleep(50);
  // The observer's view settles on the truth: every user once, and the observer.
  for (let i = 0; i < 200 && watched.members.count !== users + 1; i++) await sleep(50);
  const members = [];
  watched.members.each((m) => members.push(m.id));
  const apiUsers = (await (await api.get({ path: `/channels/${channelName}/users` })).json()).users.map(
    (u) => u.id,
  );
  // Subscriptions as B's API counts them: one per client and the observer. A subscription A
  // left behind would count here even though its user came back under the same id.
  const info = await (
    await api.get({ path: `/channels/${channelName}`, params: { info: "user_count,subscription_count" } })
  ).json();
  const resubscribed = clients.filter((c, i) => c.subscriptions > before[i]).length;
  const moved = clients.filter((c, i) => c.pusher.connection.socket_id !== socketsBefore[i]).length;
  console.log(JSON.stringify({ members: members.sort(), api: apiUsers.sort(), info, events, resubscribed, moved }));
  observer.disconnect();
  clients.forEach((c) => c.pusher.disconnect());
  setTimeout(() => process.exit(0), 300).unref();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
