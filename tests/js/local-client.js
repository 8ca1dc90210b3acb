// A pusher-js client of a rustforge-prod server on 127.0.0.1:`port` (plain WebSocket), signing
// private and presence channels at the server's auth endpoint as the test user `userId` (the
// test apps read it from X-User-Id), `overrides` replacing any option (a `wsPort` through a
// proxy); `localClient.api(port)`, the pusher server SDK on that server's HTTP API with the
// app's credentials from the environment; and `localClient.once(target, event)`. Shared by
// fleet.js, chaos.js, rolling-deploy.js and the test files.
"use strict";

const Pusher = require("pusher-js");
const PusherServer = require("pusher");

module.exports = function localClient(key, port, userId, overrides = {}) {
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
    ...overrides,
  });
};

// The server SDK on 127.0.0.1:`port`'s HTTP API (PUSHER_APP_ID, _KEY, _SECRET); `options` adds
// to it (a `timeout`).
module.exports.api = function api(port, options = {}) {
  return new PusherServer({
    appId: process.env.PUSHER_APP_ID,
    key: process.env.PUSHER_APP_KEY,
    secret: process.env.PUSHER_APP_SECRET,
    host: "127.0.0.1",
    port: String(port),
    useTLS: false,
    ...options,
  });
};

// Resolves with the first emission of `event` on `target` (a channel, the connection, the user).
module.exports.once = function once(target, event) {
  return new Promise((resolve) => {
    const handler = (data) => {
      target.unbind(event, handler);
      resolve(data);
    };
    target.bind(event, handler);
  });
};
