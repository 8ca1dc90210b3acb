// pusher-js 8 with js/pusher-recovery on two rustforge-prod servers sharing Redis (or a Redis
// Cluster): started by tests/broadcast_recovery_redis.rs with SERVER_A and SERVER_B. The client
// is on A; its connection is reset and refused while 80 events are published on B; it comes
// back on B (./recovery-support.js) and gets every event once, in order, from the fleet's
// history.
"use strict";

const test = require("node:test");
const { disconnectAll, missedEventsArriveOnce } = require("./recovery-support");

test.after(() => {
  disconnectAll();
  setTimeout(() => process.exit(), 500).unref();
});

test("events missed on one server arrive once, in order, on the other", async () => {
  await missedEventsArriveOnce({
    clientPort: process.env.SERVER_A,
    publishPort: process.env.SERVER_B,
    returnPort: process.env.SERVER_B,
  });
});
