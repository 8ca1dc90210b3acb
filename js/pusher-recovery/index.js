// Connection recovery for pusher-js (and Laravel Echo's Pusher connector) on a rustforge-prod
// broadcaster. The server gives each event of a recoverable channel a position; this plugin
// remembers the last one per channel and, when pusher-js subscribes again after a reconnect,
// sends it along, so the server replays every event the client missed before the live ones.
// When it cannot prove that nothing was lost, the channel gets a `pusher:resume_failed` event
// with the reason, and the application refetches.
//
// Wire format (docs/broadcasting.md, "Connection recovery"): `pusher:subscribe` carries
// `"position": "<epoch>:<serial>"` (or `""` for a first subscription) and
// `"previous_socket_id"`; event frames and `pusher_internal:subscription_succeeded` carry
// `"position"` as an extra top-level field, which pusher-js itself does not keep — so the plugin
// reads the frames as they arrive on the transport.

/**
 * Adds connection recovery to an existing `Pusher` instance (pusher-js 7 or 8), or to Laravel
 * Echo's: `enableRecovery(echo.connector.pusher)`. Call it once, right after creating it.
 *
 * @param {object} pusher a pusher-js `Pusher` instance
 * @param {{ onPosition?: (channel: string, position: string) => void }} [options]
 *   `onPosition` is told each position as it is recorded (for logging or tests).
 * @returns {{ position(channel: string): string | undefined, disable(): void }}
 */
export function enableRecovery(pusher, options = {}) {
  if (!pusher || !pusher.connection || typeof pusher.send_event !== 'function') {
    throw new TypeError('enableRecovery expects a pusher-js Pusher instance');
  }
  if (pusher.__rustforgeRecovery) {
    return pusher.__rustforgeRecovery;
  }
  const positions = new Map();
  // The connection's socket id and the one before it: sent as previous_socket_id after a
  // reconnect, so the events that were not for this client are not replayed to it.
  let socketId = pusher.connection.socket_id;
  let previousSocketId;
  let transport = null;

  const record = (message) => {
    const text = message && message.data;
    if (typeof text !== 'string' || !text.includes('"position"')) {
      return;
    }
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof frame.channel === 'string' && typeof frame.position === 'string') {
      positions.set(frame.channel, frame.position);
      if (options.onPosition) {
        options.onPosition(frame.channel, frame.position);
      }
    }
  };

  // pusher-js's connection (and its transport) is replaced at each reconnect.
  const watch = () => {
    const current = pusher.connection.connection && pusher.connection.connection.transport;
    if (current && current !== transport) {
      if (transport) {
        transport.unbind('message', record);
      }
      transport = current;
      // Bound after pusher-js's own listener: a position is recorded once its event was
      // handed to the application's handlers.
      transport.bind('message', record);
    }
    if (pusher.connection.socket_id !== socketId) {
      previousSocketId = socketId;
      socketId = pusher.connection.socket_id;
    }
  };
  pusher.connection.bind('connected', watch);
  if (pusher.connection.state === 'connected') {
    watch();
  }

  const send = pusher.send_event;
  pusher.send_event = function (name, data, channel) {
    if (name === 'pusher:subscribe' && data && typeof data.channel === 'string') {
      data = { ...data, position: positions.get(data.channel) || '' };
      // pusher-js subscribes its public channels again before `watch` hears of the new
      // connection (the old id is still `socketId`), its private ones after their auth call.
      const previous =
        socketId !== pusher.connection.socket_id ? socketId : previousSocketId;
      if (previous) {
        data.previous_socket_id = previous;
      }
    } else if (name === 'pusher:unsubscribe' && data && typeof data.channel === 'string') {
      positions.delete(data.channel);
    }
    return send.call(this, name, data, channel);
  };

  const handle = {
    /** The last position recorded for `channel`, if any. */
    position(channel) {
      return positions.get(channel);
    },
    /** Removes the plugin: pusher-js behaves as before. */
    disable() {
      pusher.send_event = send;
      pusher.connection.unbind('connected', watch);
      if (transport) {
        transport.unbind('message', record);
      }
      positions.clear();
      delete pusher.__rustforgeRecovery;
    },
  };
  Object.defineProperty(pusher, '__rustforgeRecovery', {
    value: handle,
    configurable: true,
  });
  return handle;
}
