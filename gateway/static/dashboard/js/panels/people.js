// People: one user's page over the window (`user`): profile, place, device and contact
// fields, devices, first and last seen, what they did most, their sessions, and their events
// newest first, a page at a time.

import { barOption, chartBox, drawChart } from "../charts.js";
import { Card, Panel, field, fmt, h, kpi, select, table } from "../dom.js";

const EVENT_FIELDS = `totalCount pageInfo { hasNextPage endCursor }
  edges { node { insertId eventName time sessionId deviceId url properties city country
                 deviceType os } }`;

const PERSON = `query Person($userId: String!, $window: TimeWindow, $first: Int!) {
  user(userId: $userId, window: $window) {
    userId traits city state country postalCode deviceType os email phone deviceIds
    firstSeen lastSeen eventCount sessionCount
    topEvents(first: 50) { event count }
    events(first: $first) { ${EVENT_FIELDS} }
    sessions(first: 10) { id startTime durationSeconds eventCount landingPage converted
                          crashed }
  }
}`;

const PERSON_EVENTS = `query PersonEvents($userId: String!, $window: TimeWindow, $first: Int!,
    $after: String, $eventName: String) {
  user(userId: $userId, window: $window) {
    events(first: $first, after: $after, eventName: $eventName) { ${EVENT_FIELDS} }
  }
}`;

const PAGE_SIZE = 25;
const TOP_EVENTS = 8; // bars in the chart
// Traits already shown as fields of the profile card.
const SHOWN_TRAITS = new Set(["city", "state", "country", "postal_code", "email", "phone"]);

const MAX_VALUE_CHARS = 60; // of one property's value in the events table
const MAX_PROPERTIES_CHARS = 240; // of the properties cell (the whole text is its tooltip)

const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** A compact view of an event's custom properties (cut short, the whole on hover). */
function properties(props) {
  const entries = Object.entries(props || {});
  if (!entries.length) return "–";
  const text = (v) => (typeof v === "string" ? v : JSON.stringify(v));
  return h("span", { title: entries.map(([k, v]) => `${k}: ${text(v)}`).join("\n") },
    clip(entries.map(([k, v]) => `${k}: ${clip(text(v), MAX_VALUE_CHARS)}`).join(", "),
      MAX_PROPERTIES_CHARS));
}

const EVENT_COLUMNS = [
  { label: "Time", key: "time", value: (e) => h("time", { datetime: e.time },
    fmt.dateTime(e.time)) },
  { label: "Event", key: "event", value: (e) => e.eventName },
  { label: "Properties", key: "properties", value: (e) => properties(e.properties) },
  { label: "Page", key: "url", value: (e) => e.url || "–" },
  { label: "Session", key: "session", value: (e) => e.sessionId || "–" },
];

const joined = (...parts) => parts.filter((p) => p).join(", ") || "–";

export class PeoplePanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "people", title: "People",
      intro: "One person's page: who they are, where and on what, and everything they did " +
        "in the window, newest first." });
    this.userId = "";
    this.search = h("input", { type: "search", name: "people-user", autocomplete: "off",
      spellcheck: false, placeholder: "a distinct_user_id" });
    this.controls.append(h("form", { class: "builder row", role: "search", onsubmit: (e) => {
      e.preventDefault();
      this.userId = this.search.value.trim();
      this.refresh();
    } },
    field("User id", this.search, { wide: true }),
    h("button", { type: "submit", class: "primary" }, "Show")));
    this.profile = new Card("Profile", { id: "person-profile" });
    this.activity = new Card("What they did most", { id: "person-top-events" });
    this.events = new Card("Events", { id: "person-events", wide: true });
    this.sessions = new Card("Latest sessions", { id: "person-sessions", wide: true });
    this.others = [this.activity, this.events, this.sessions];
    this.grid.append(this.profile.el, this.activity.el, this.sessions.el, this.events.el);
    this.shown = null; // the variables of the page shown, for "Load more"
  }

  /** Show a user from another panel (a segment member). */
  open({ userId }) {
    this.userId = userId;
    this.search.value = userId;
  }

  async refresh() {
    const userId = this.userId;
    const vars = { userId, window: this.ctx.window(), first: PAGE_SIZE };
    this.shown = vars;
    let shared = null;
    const once = () => (shared ??= userId
      ? this.ctx.api.query(PERSON, vars).then((d) => d.user) : Promise.resolve(undefined));
    await this.run([
      () => this.task(this.profile, once, (user) => this.renderProfile(user, vars)),
      () => this.task(this.activity, once, (user) => this.renderTopEvents(user)),
      () => this.task(this.events, once, (user) => this.renderEvents(user, vars)),
      () => this.task(this.sessions, once, (user) => this.renderSessions(user)),
    ]);
  }

  renderProfile(user, vars) {
    for (const card of this.others) card.el.hidden = !user;
    this.profile.title.textContent = user ? `Profile: ${user.userId}` : "Profile";
    if (user === undefined) {
      return "Type a user id above, or open a user from the Segments panel.";
    }
    if (user === null) {
      return `Nobody with the id ${vars.userId} in the ${this.ctx.windowLabel()}: no ` +
        "profile and no event.";
    }
    const traits = Object.entries(user.traits || {})
      .filter(([k]) => !SHOWN_TRAITS.has(k))
      .sort(([a], [b]) => a.localeCompare(b));
    const item = (label, value, key) => [h("dt", {}, label),
      h("dd", { "data-field": key }, value)];
    this.profile.show(
      h("div", { class: "kpis" },
        kpi("Events", fmt.int(user.eventCount), { id: "user-events",
          hint: `in the ${this.ctx.windowLabel()}` }),
        kpi("Sessions", fmt.int(user.sessionCount), { id: "user-sessions",
          hint: "starting in the window" })),
      h("dl", { class: "profile" },
        item("User id", user.userId, "userId"),
        item("Place", joined(user.city, user.state, user.country, user.postalCode), "place"),
        item("Device", joined(user.deviceType, user.os), "device"),
        item("Email", user.email || "–", "email"),
        item("Phone", user.phone || "–", "phone"),
        item("Devices", user.deviceIds.join(", ") || "–", "deviceIds"),
        item("First seen", fmt.dateTime(user.firstSeen), "firstSeen"),
        item("Last seen", fmt.dateTime(user.lastSeen), "lastSeen")),
      traits.length ? h("details", { class: "traits" },
        h("summary", {}, `Other traits (${traits.length})`),
        table([
          { label: "Trait", key: "trait", value: ([k]) => k },
          { label: "Value", key: "value",
            value: ([, v]) => (typeof v === "string" ? v : JSON.stringify(v)) },
        ], traits)) : null,
      h("div", { class: "row" },
        h("button", { type: "button", class: "secondary", onclick: () =>
          this.ctx.go("live", { userId: user.userId }) }, "Watch live")),
    );
    return undefined;
  }

  renderTopEvents(user) {
    if (!user) return undefined;
    if (!user.topEvents.length) return `No events in the ${this.ctx.windowLabel()}.`;
    const top = user.topEvents.slice(0, TOP_EVENTS);
    const box = chartBox("person-top-events", Math.max(160, 28 * top.length + 40));
    this.activity.show(box);
    drawChart(box, barOption(top.map((e) => ({ name: e.event, value: e.count })),
      { format: (v) => fmt.int(v), name: "Events" }));
    return undefined;
  }

  renderEvents(user, vars) {
    if (!user) return undefined;
    const page = user.events;
    if (!page.totalCount) return `No events in the ${this.ctx.windowLabel()}.`;
    this.eventFilter = select([["", "All events"],
      ...user.topEvents.map((e) => [e.event, `${e.event} (${fmt.int(e.count)})`])],
    { name: "people-event" });
    this.eventFilter.addEventListener("change", () => this.loadEvents(vars));
    this.eventList = h("div", { class: "person-events" });
    this.events.show(h("div", { class: "row" }, field("Event", this.eventFilter)),
      this.eventList);
    this.showEvents(page, vars, false);
    return undefined;
  }

  /** A page of events: the first again for the event name picked, or the next (`after`). */
  async loadEvents(vars, after = null) {
    const list = this.eventList;
    const eventName = this.eventFilter.value || null;
    list.dataset.state = "loading";
    const more = list.querySelector("button.more");
    if (more) {
      more.disabled = true;
      more.textContent = "Loading…";
    }
    let page;
    try {
      page = (await this.ctx.api.query(PERSON_EVENTS,
        { ...vars, after, eventName })).user?.events;
    } catch (err) {
      if (this.shown !== vars || this.eventList !== list) return;
      list.dataset.state = "error";
      list.querySelector(".message.error")?.remove();
      list.append(h("p", { class: "message error" }, err.message));
      if (more) {
        more.disabled = false;
        more.textContent = "Load more";
      }
      if (err.kind === "refused") this.ctx.refused(err);
      return;
    }
    if (this.shown !== vars || this.eventList !== list) return;
    if (!page || eventName !== (this.eventFilter.value || null)) return;
    this.showEvents(page, vars, Boolean(after));
  }

  showEvents(page, vars, append) {
    const list = this.eventList;
    if (!append) {
      list.replaceChildren(h("p", { class: "note", "data-total": page.totalCount }),
        table(EVENT_COLUMNS, [], { className: "data events-table" }));
    }
    list.querySelector("button.more")?.remove();
    list.querySelector(".message.error")?.remove();
    const body = list.querySelector("tbody");
    const rows = table(EVENT_COLUMNS, page.edges.map((edge) => edge.node),
      { attrs: (e) => ({ "data-insert-id": e.insertId }) });
    body.append(...rows.querySelector("tbody").children);
    const shown = body.children.length;
    const note = list.querySelector("p[data-total]");
    note.dataset.total = page.totalCount;
    note.dataset.shown = shown;
    note.textContent = `Showing ${fmt.int(shown)} of ${fmt.int(page.totalCount)} events, ` +
      "newest first.";
    if (page.pageInfo.hasNextPage) {
      list.append(h("button", { type: "button", class: "secondary more",
        "data-action": "load-more", onclick: () =>
          this.loadEvents(vars, page.pageInfo.endCursor) }, "Load more"));
    }
    list.dataset.state = page.totalCount ? "ready" : "empty";
  }

  renderSessions(user) {
    if (!user) return undefined;
    if (!user.sessions.length) return `No session started in the ${this.ctx.windowLabel()}.`;
    this.sessions.show(table([
      { label: "Started", key: "startTime", value: (s) => fmt.dateTime(s.startTime) },
      { label: "Length", key: "duration", num: true,
        value: (s) => fmt.duration(s.durationSeconds) },
      { label: "Events", key: "events", num: true, value: (s) => fmt.int(s.eventCount) },
      { label: "Landing page", key: "landingPage", value: (s) => s.landingPage || "–" },
      { label: "Outcome", key: "outcome", value: (s) => [s.converted ? "converted" : null,
        s.crashed ? "crash" : null].filter((x) => x).join(", ") || "–" },
      { label: "Session", key: "session", value: (s) => s.id },
    ], user.sessions, { attrs: (s) => ({ "data-session": s.id }) }));
    return undefined;
  }
}
