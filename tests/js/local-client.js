// A pusher-js client of a rustforge-prod server on 127.0.0.1:`port` (plain WebSocket), signing
// private and presence channels at the server's auth endpoint as the test user `userId` (the
// test apps read it from X-User-Id). Shared by fleet.js and rolling-deploy.js.
"use strict";

const Pusher = require("pusher-js");

module.exports = function localClient(key, port, userId) {
  return new Pusher(key, {
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: port,
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: {
      endpoint: `http://127.0.0.1:${port}/broadcasting/auth`,
      transport: "ajax",
      headers: { "X-User-Id": userId },
    },
  });
};
