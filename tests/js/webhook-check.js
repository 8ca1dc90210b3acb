// Checks a webhook request the way a Pusher app does: the `pusher` SDK's webhook(req).isValid().
// Usage: node webhook-check.js <file with {"headers": {...}, "body": "..."}>; prints the events
// as JSON when valid, "invalid" otherwise. Run by tests/broadcast_webhooks.rs.
"use strict";
const fs = require("node:fs");
const Pusher = require("pusher");

const { headers, body } = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const pusher = new Pusher({
  appId: process.env.PUSHER_APP_ID,
  key: process.env.PUSHER_APP_KEY,
  secret: process.env.PUSHER_APP_SECRET,
});
const webhook = pusher.webhook({ headers, rawBody: body });
if (webhook.isValid()) {
  console.log(JSON.stringify(webhook.getEvents()));
} else {
  console.log("invalid");
}
