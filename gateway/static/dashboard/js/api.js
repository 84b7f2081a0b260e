// The public GraphQL API, over HTTP (queries) and WebSocket (subscriptions), with a read key.
// Failures become an ApiError whose `kind` says what the page can tell the user:
//   refused      the key (unknown, revoked, or not a read key)
//   unreachable  the gateway did not answer (down, restarting, network)
//   limited      too many requests for this key
//   input        the question itself (BAD_USER_INPUT names the field)
//   unavailable  a store behind the gateway is down (UNAVAILABLE)
//   server       anything else

export class ApiError extends Error {
  constructor(kind, message, errors = []) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.errors = errors;
  }
}

const KIND_BY_CODE = {
  UNAUTHENTICATED: "refused",
  FORBIDDEN: "refused",
  BAD_USER_INPUT: "input",
  UNAVAILABLE: "unavailable",
  NOT_FOUND: "input",
};

export function unreachable() {
  return new ApiError(
    "unreachable",
    `Cannot reach the CEP gateway at ${window.location.origin}: is it running? ` +
      "(make run starts one with demo data.)",
  );
}

function refusedMessage(error) {
  if (error.extensions?.code === "UNAUTHENTICATED") {
    return "The gateway refused this key: it is not a valid key for any project " +
      "(mistyped, or revoked).";
  }
  return `The gateway refused this key: ${error.message}.`;
}

export class Api {
  constructor(key, endpoint = "/graphql") {
    this.key = key;
    this.endpoint = endpoint;
  }

  /** The query's `data`, or an ApiError. A partial answer counts as a failure. */
  async query(query, variables = {}, { signal } = {}) {
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: `Bearer ${this.key}`,
        },
        body: JSON.stringify({ query, variables }),
        signal,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw unreachable();
    }
    if (response.status === 429) {
      throw new ApiError("limited", "Too many requests for this key: try again in a moment.");
    }
    if (response.status >= 502 && response.status <= 504) throw unreachable();
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError("server", `The gateway answered ${response.status} without a ` +
        "GraphQL response.");
    }
    const errors = body.errors || [];
    if (errors.length) {
      const refused = errors.find((e) => KIND_BY_CODE[e.extensions?.code] === "refused");
      if (refused) throw new ApiError("refused", refusedMessage(refused), errors);
      const kind = KIND_BY_CODE[errors[0].extensions?.code] || "server";
      throw new ApiError(kind, errors[0].message, errors);
    }
    return body.data;
  }

  /** A graphql-transport-ws connection with this key in its connection params. */
  socket() {
    const url = new URL(this.endpoint, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return new LiveSocket(url.href, this.key);
  }
}

const UNAUTHORIZED = 4401;
const FORBIDDEN = 4403;

/**
 * One WebSocket speaking graphql-transport-ws: `connect()` resolves once the gateway
 * accepted the key (connection_ack); `subscribe()` runs a subscription over it.
 * `onclose(error)` is called when an acknowledged connection ends without `close()`.
 */
export class LiveSocket {
  constructor(url, key) {
    this.url = url;
    this.key = key;
    this.ws = null;
    this.subs = new Map();
    this.lastId = 0;
    this.closing = false;
    this.onclose = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, "graphql-transport-ws");
      this.ws = ws;
      let acked = false;
      ws.onopen = () => {
        ws.send(JSON.stringify({
          type: "connection_init",
          payload: { Authorization: `Bearer ${this.key}` },
        }));
      };
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch {
          return;
        }
        const sub = this.subs.get(msg.id);
        switch (msg.type) {
          case "connection_ack":
            acked = true;
            resolve(this);
            break;
          case "ping":
            ws.send(JSON.stringify({ type: "pong" }));
            break;
          case "next":
            if (sub) {
              const errors = msg.payload?.errors;
              if (errors?.length) sub.error?.(toError(errors));
              else sub.next(msg.payload.data);
            }
            break;
          case "error":
            this.subs.delete(msg.id);
            sub?.error?.(toError(msg.payload || []));
            break;
          case "complete":
            this.subs.delete(msg.id);
            sub?.complete?.();
            break;
          default:
            break;
        }
      };
      ws.onclose = (event) => {
        const error = this.closing ? null : closeError(event);
        const subs = [...this.subs.values()];
        this.subs.clear();
        if (!acked) {
          reject(error || unreachable());
          return;
        }
        for (const sub of subs) sub.closed?.(error);
        if (error) this.onclose?.(error);
      };
    });
  }

  /** Start a subscription; returns a function that stops it. */
  subscribe(query, variables, handlers) {
    const id = String(++this.lastId);
    this.subs.set(id, handlers);
    this.ws.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
    return () => {
      if (this.subs.delete(id) && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  }

  close() {
    this.closing = true;
    this.subs.clear();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "done");
  }
}

function toError(errors) {
  const list = Array.isArray(errors) ? errors : [errors];
  const refused = list.find((e) => KIND_BY_CODE[e.extensions?.code] === "refused");
  if (refused) return new ApiError("refused", refusedMessage(refused), list);
  const kind = KIND_BY_CODE[list[0]?.extensions?.code] || "server";
  return new ApiError(kind, list[0]?.message || "The subscription failed.", list);
}

function closeError(event) {
  if (event.code === UNAUTHORIZED || event.code === FORBIDDEN) {
    return new ApiError("refused", "The gateway refused this key for live updates" +
      (event.reason ? `: ${event.reason}.` : "."));
  }
  return new ApiError("unreachable", "The live connection to the gateway was lost" +
    (event.reason ? ` (${event.reason})` : "") + ".");
}
