// The plugin's own tests, against a stand-in with pusher-js's shape (the end-to-end tests with
// real pusher-js, Laravel Echo and the server are tests/broadcast_recovery.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enableRecovery } from '../index.js';

class Emitter {
  constructor() {
    this.handlers = new Map();
  }
  bind(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, []);
    this.handlers.get(name).push(fn);
  }
  unbind(name, fn) {
    this.handlers.set(name, (this.handlers.get(name) || []).filter((f) => f !== fn));
  }
  emit(name, value) {
    for (const fn of this.handlers.get(name) || []) fn(value);
  }
}

/** pusher-js as the plugin sees it: a connection manager, its transport, `send_event`. */
function fakePusher() {
  const pusher = {
    sent: [],
    connection: Object.assign(new Emitter(), { state: 'initialized', socket_id: undefined }),
    send_event(name, data, channel) {
      this.sent.push({ name, data, channel });
      return true;
    },
  };
  pusher.connect = (socketId) => {
    pusher.connection.connection = { transport: new Emitter() };
    pusher.connection.socket_id = socketId;
    pusher.connection.state = 'connected';
    pusher.connection.emit('connected');
  };
  pusher.frame = (frame) =>
    pusher.connection.connection.transport.emit('message', { data: JSON.stringify(frame) });
  return pusher;
}

test('a first subscription asks for positions', () => {
  const pusher = fakePusher();
  enableRecovery(pusher);
  pusher.connect('1.1');
  pusher.send_event('pusher:subscribe', { channel: 'private-a', auth: 'k:s' });
  assert.deepEqual(pusher.sent[0].data, { channel: 'private-a', auth: 'k:s', position: '' });
});

test('the last position of each channel is sent again after a reconnect', () => {
  const pusher = fakePusher();
  const seen = [];
  const recovery = enableRecovery(pusher, { onPosition: (c, p) => seen.push([c, p]) });
  pusher.connect('1.1');
  pusher.frame({ event: 'pusher_internal:subscription_succeeded', channel: 'private-a', data: '{}', position: 'ab:0' });
  pusher.frame({ event: 'e', channel: 'private-a', data: '1', position: 'ab:1' });
  pusher.frame({ event: 'e', channel: 'private-a', data: '2', position: 'ab:2' });
  pusher.frame({ event: 'e', channel: 'public', data: '3' });
  pusher.frame({ event: 'pusher:ping', data: {} });
  pusher.connection.connection.transport.emit('message', { data: 'not json "position"' });
  assert.equal(recovery.position('private-a'), 'ab:2');
  assert.equal(recovery.position('public'), undefined);
  assert.equal(seen.length, 3);

  // pusher-js resubscribes from its own 'connected' handler, bound before the plugin's.
  pusher.connection.socket_id = '2.2';
  pusher.send_event('pusher:subscribe', { channel: 'private-a', auth: 'k:t' });
  pusher.connect('2.2');
  assert.deepEqual(pusher.sent.at(-1).data, {
    channel: 'private-a',
    auth: 'k:t',
    position: 'ab:2',
    previous_socket_id: '1.1',
  });
  // A private channel's subscribe comes after its auth call, once the plugin has heard.
  pusher.send_event('pusher:subscribe', { channel: 'private-b', auth: 'k:u' });
  assert.equal(pusher.sent.at(-1).data.previous_socket_id, '1.1');
  // Frames on the new transport are recorded; the old one is no longer listened to.
  pusher.frame({ event: 'e', channel: 'private-a', data: '4', position: 'ab:3' });
  assert.equal(recovery.position('private-a'), 'ab:3');
});

test('unsubscribing forgets the channel', () => {
  const pusher = fakePusher();
  const recovery = enableRecovery(pusher);
  pusher.connect('1.1');
  pusher.frame({ event: 'e', channel: 'private-a', data: '1', position: 'ab:1' });
  pusher.send_event('pusher:unsubscribe', { channel: 'private-a' });
  assert.equal(recovery.position('private-a'), undefined);
  pusher.send_event('pusher:subscribe', { channel: 'private-a' });
  assert.equal(pusher.sent.at(-1).data.position, '');
});

test('enabled twice is enabled once; disabled, pusher-js is as before', () => {
  const pusher = fakePusher();
  const original = pusher.send_event;
  const recovery = enableRecovery(pusher);
  assert.equal(enableRecovery(pusher), recovery);
  pusher.connect('1.1');
  recovery.disable();
  assert.equal(pusher.send_event, original);
  pusher.send_event('pusher:subscribe', { channel: 'private-a' });
  assert.deepEqual(pusher.sent.at(-1).data, { channel: 'private-a' });
  assert.throws(() => enableRecovery({}), TypeError);
});
