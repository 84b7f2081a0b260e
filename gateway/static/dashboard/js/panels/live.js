// Live: sessions open now and events per second (the liveMetrics subscription), the
// sessions in progress, and one user's, one session's or every event as it is processed
// (userActivity, liveSession, liveEvents), over one graphql-transport-ws connection.

import { chartBox, drawChart } from "../charts.js";
import { Card, Panel, field, fmt, h, kpi, select, table } from "../dom.js";

const METRICS = `subscription LiveMetrics($interval: Int!) {
  liveMetrics(intervalSeconds: $interval) {
    activeSessions eventsPerSecond topEvents { event count }
  }
}`;
const EVENT_FIELDS = "id insertId eventName time userId deviceId sessionId url city country " +
  "deviceType os";
const STREAMS = {
  user: `subscription UserActivity($id: String!, $after: String) {
    userActivity(userId: $id, after: $after) { ${EVENT_FIELDS} } }`,
  session: `subscription LiveSession($id: String!, $after: String) {
    liveSession(sessionId: $id, after: $after) { ${EVENT_FIELDS} } }`,
  all: `subscription LiveEvents($after: String) {
    liveEvents(after: $after) { ${EVENT_FIELDS} } }`,
};
const OPEN_SESSIONS = `query OpenSessions($first: Int!) {
  openSessions(first: $first) {
    sessionId userId deviceId startedAt lastEventAt events lastEvent city country deviceType
  }
}`;

const INTERVAL_SECONDS = 2;
const HISTORY = 60; // events-per-second points kept for the chart
const MAX_ROWS = 200; // events kept in the stream list (what a stream retains, too)
const RECONNECT_MS = 3000;
const OPEN_SESSION_ROWS = 50; // the most recently active open sessions listed
const MODES = [["user", "User id"], ["session", "Session id"], ["all", "Every event"]];

export class LivePanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "live", title: "Live",
      intro: "What is happening now, pushed by the gateway over a WebSocket subscription." });
    this.metrics = new Card("Right now", { id: "live-metrics", wide: true });
    this.sessions = new Card("Open sessions", { id: "open-sessions", wide: true,
      tools: [h("button", { type: "button", class: "secondary",
        onclick: () => this.loadOpenSessions() }, "Refresh")] });
    this.stream = new Card("Event stream", { id: "live-stream", wide: true });
    this.grid.append(this.metrics.el, this.stream.el, this.sessions.el);
    this.socket = null;
    this.stopStream = null;
    this.target = null; // {kind, id} being watched
    this.pending = null; // asked for before the connection was up
    this.lastEventId = "0";
    this.history = [];
    this.metricsView = null;
    this.retryTimer = 0;
    this.visible = false;
    this.buildStreamForm();
  }

  /** Watch a user from another panel (a drop-off user, a person's page). */
  open({ userId }) {
    this.mode.value = "user";
    this.idInput.value = userId;
    this.pending = { kind: "user", id: userId };
  }

  buildStreamForm() {
    this.mode = select(MODES, { value: "user", name: "live-mode" });
    this.idInput = h("input", { type: "text", name: "live-id", autocomplete: "off",
      placeholder: "a distinct_user_id, or a device id" });
    this.mode.addEventListener("change", () => {
      this.idInput.disabled = this.mode.value === "all";
      this.idInput.placeholder = this.mode.value === "session" ? "a session id (s_…)"
        : "a distinct_user_id, or a device id";
    });
    this.streamStatus = h("p", { class: "stream-status", role: "status",
      "data-stream-state": "idle" }, "Pick a user or a session, or every event, and press Watch.");
    this.streamList = h("ol", { class: "events", reversed: true });
    this.stream.show(
      h("form", { class: "builder row", onsubmit: (e) => {
        e.preventDefault();
        const kind = this.mode.value;
        const id = this.idInput.value.trim();
        if (kind !== "all" && !id) {
          this.setStreamStatus("error", `Type a ${kind} id to watch.`);
          return;
        }
        this.watch({ kind, id });
      } },
      field("Watch", this.mode),
      field("Id", this.idInput, { wide: true }),
      h("button", { type: "submit", class: "primary" }, "Watch"),
      h("button", { type: "button", class: "secondary", onclick: () => this.unwatch() },
        "Stop")),
      this.streamStatus,
      this.streamList,
    );
    this.stream.setState("ready");
  }

  async refresh() {
    this.visible = true;
    if (!this.socket) await this.connect();
    this.loadOpenSessions();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.retryTimer);
    this.generation += 1;
    this.stopStream = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    if (this.target) this.setStreamStatus("idle", "Paused while another panel is open.");
  }

  async connect() {
    const generation = ++this.generation;
    clearTimeout(this.retryTimer);
    this.el.dataset.state = "loading";
    this.metrics.loading("Connecting…");
    const socket = this.ctx.api.socket();
    socket.onclose = (err) => this.lost(err, socket);
    try {
      await socket.connect();
    } catch (err) {
      if (generation === this.generation) this.lost(err, socket);
      return;
    }
    if (generation !== this.generation) {
      socket.close();
      return;
    }
    this.socket = socket;
    this.metrics.loading(`Connected; the first update comes within ${INTERVAL_SECONDS} s…`);
    socket.subscribe(METRICS, { interval: INTERVAL_SECONDS }, {
      next: (d) => this.renderMetrics(d.liveMetrics),
      error: (err) => this.metrics.error(err),
    });
    const target = this.pending || this.target;
    this.pending = null;
    if (target) this.watch(target, { resume: target === this.target });
  }

  /** The connection failed or dropped: say so, and try again while the panel is shown. */
  lost(err, socket) {
    if (this.socket && socket !== this.socket) return;
    this.socket = null;
    this.stopStream = null;
    this.el.dataset.state = "error";
    if (err.kind === "refused") {
      this.metrics.error(err);
      this.ctx.refused(err);
      return;
    }
    const retry = `${err.message} Trying again every ${RECONNECT_MS / 1000} s…`;
    this.metrics.setState("error", retry, { retry: () => this.connect() });
    if (this.target) this.setStreamStatus("error", retry);
    if (this.visible) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.visible && this.connect(), RECONNECT_MS);
    }
  }

  renderMetrics(m) {
    this.history.push([new Date().toLocaleTimeString(), m.eventsPerSecond]);
    if (this.history.length > HISTORY) this.history.shift();
    if (!this.metricsView || !this.metrics.body.contains(this.metricsView.box)) {
      const view = { kpis: h("div", { class: "kpis" }), box: chartBox("events-per-second", 180),
        top: h("div", {}) };
      this.metrics.show(view.kpis, h("div", { class: "columns" }, view.box, view.top));
      this.metricsView = view;
    }
    const { kpis, box, top } = this.metricsView;
    kpis.replaceChildren(
      kpi("Sessions open now", fmt.int(m.activeSessions), { id: "active-sessions" }),
      kpi("Events per second", fmt.dec(m.eventsPerSecond, 2), { id: "events-per-second",
        hint: `over the last ${INTERVAL_SECONDS} s` }));
    top.replaceChildren(m.topEvents.length
      ? table([
        { label: `Events in the last ${INTERVAL_SECONDS} s`, key: "event", value: (r) => r.event },
        { label: "Count", key: "count", num: true, value: (r) => fmt.int(r.count) },
      ], m.topEvents.slice(0, 6))
      : h("p", { class: "muted" }, `No events in the last ${INTERVAL_SECONDS} s.`));
    this.metrics.setState("ready");
    this.el.dataset.state = "ready";
    drawChart(box, {
      animation: false,
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: this.history.map((p) => p[0]), boundaryGap: false },
      yAxis: { type: "value", minInterval: 1, name: "events/s",
        nameTextStyle: { align: "left" } },
      series: [{ type: "line", name: "Events per second", data: this.history.map((p) => p[1]),
        showSymbol: false, areaStyle: { opacity: 0.2 } }],
    });
  }

  async loadOpenSessions() {
    const generation = this.generation;
    this.sessions.loading();
    let open;
    try {
      // Open: an event within the inactivity timeout; the latest activity comes first.
      ({ openSessions: open } = await this.ctx.api.query(OPEN_SESSIONS,
        { first: OPEN_SESSION_ROWS }));
    } catch (err) {
      if (generation !== this.generation) return;
      this.sessions.error(err, () => this.loadOpenSessions());
      if (err.kind === "refused") this.ctx.refused(err);
      return;
    }
    if (generation !== this.generation) return;
    if (!open.length) {
      this.sessions.empty("No session in progress: none had an event within the inactivity " +
        "timeout.");
      return;
    }
    this.sessions.ready(table([
      { label: "Last event", key: "lastEventAt", value: (s) => fmt.time(s.lastEventAt) },
      { label: "User", key: "userId", value: (s) => s.userId || s.deviceId || "–" },
      { label: "Events", key: "events", num: true, value: (s) => fmt.int(s.events) },
      { label: "Latest", key: "lastEvent", value: (s) => s.lastEvent },
      { label: "Started", key: "startedAt", value: (s) => fmt.time(s.startedAt) },
      { label: "Where", key: "where", value: (s) => [s.city, s.country, s.deviceType]
        .filter((x) => x).join(" · ") || "–" },
      { label: "", key: "watch", value: (s) => h("button", { type: "button", class: "link",
        "aria-label": `Watch session ${s.sessionId}`, onclick: () => {
          this.mode.value = "session";
          this.idInput.value = s.sessionId;
          this.watch({ kind: "session", id: s.sessionId });
        } }, "Watch") },
    ], open, { attrs: (s) => ({ "data-session": s.sessionId }) }));
  }

  setStreamStatus(state, message) {
    this.streamStatus.dataset.streamState = state;
    this.streamStatus.className = `stream-status ${state}`;
    this.streamStatus.textContent = message;
  }

  /**
   * Stream a user's, a session's or every event. A new target starts from everything the
   * gateway still retains (`after: "0"`, so an event sent just before is not missed); a
   * reconnection resumes after the last event shown.
   */
  watch(target, { resume = false } = {}) {
    this.stopStream?.();
    this.stopStream = null;
    if (!resume) {
      this.target = target;
      this.lastEventId = "0";
      this.streamList.replaceChildren();
    }
    if (!this.socket) {
      this.pending = target;
      this.setStreamStatus("connecting", "Connecting…");
      return;
    }
    const what = target.kind === "all" ? "every event of this project"
      : `${target.kind} ${target.id}`;
    const variables = { after: this.lastEventId,
      ...(target.kind === "all" ? {} : { id: target.id }) };
    this.stopStream = this.socket.subscribe(STREAMS[target.kind], variables, {
      next: (data) => this.addEvent(Object.values(data)[0]),
      error: (err) => this.setStreamStatus("error", `The stream failed: ${err.message}`),
      complete: () => this.setStreamStatus("idle", `The stream of ${what} ended.`),
    });
    this.setStreamStatus("listening", `Watching ${what}: events appear here as they are ` +
      "processed.");
  }

  unwatch() {
    this.stopStream?.();
    this.stopStream = null;
    this.target = null;
    this.setStreamStatus("idle", "Stopped.");
  }

  addEvent(e) {
    this.lastEventId = e.id;
    const where = [e.city, e.country, e.deviceType, e.os].filter((x) => x).join(" · ");
    this.streamList.prepend(h("li", { class: "event", "data-insert-id": e.insertId,
      "data-event": e.eventName },
    h("time", { datetime: e.time }, fmt.time(e.time)),
    h("strong", {}, e.eventName),
    h("span", { class: "muted" }, e.userId || e.deviceId || "–"),
    e.url ? h("span", { class: "url" }, e.url) : null,
    where ? h("span", { class: "muted" }, where) : null,
    h("span", { class: "session muted", title: "session" }, e.sessionId)));
    while (this.streamList.children.length > MAX_ROWS) this.streamList.lastChild.remove();
  }
}
