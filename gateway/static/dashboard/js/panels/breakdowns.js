// Breakdowns: one session metric by city, device type, OS, age band and gender.

import { barOption, chartBox, drawChart } from "../charts.js";
import { Card, Panel, field, fmt, h, select } from "../dom.js";

const BREAKDOWNS = `query Breakdowns($metric: BreakdownMetric!, $window: TimeWindow) {
  city: breakdown(metric: $metric, by: CITY, window: $window) { key value sessions }
  deviceType: breakdown(metric: $metric, by: DEVICE_TYPE, window: $window) { key value sessions }
  os: breakdown(metric: $metric, by: OS, window: $window) { key value sessions }
  ageBand: breakdown(metric: $metric, by: AGE_BAND, window: $window) { key value sessions }
  gender: breakdown(metric: $metric, by: GENDER, window: $window) { key value sessions }
}`;

const METRICS = [
  ["SESSIONS", "Sessions", (v) => fmt.int(v)],
  ["USERS", "Users", (v) => fmt.int(v)],
  ["CONVERSION_RATE", "Sessions ending in purchase", (v) => fmt.pct(v)],
  ["AVG_SESSION_SECONDS", "Average session length", (v) => fmt.duration(v)],
  ["CRASH_RATE", "Sessions that crashed", (v) => fmt.pct(v, 2)],
];
const DIMENSIONS = [
  ["city", "By city", 12],
  ["deviceType", "By device type", 10],
  ["os", "By OS", 10],
  ["ageBand", "By age band", 10],
  ["gender", "By gender", 10],
];
const AGE_ORDER = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"];

export class BreakdownsPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "breakdowns", title: "Breakdowns",
      intro: "One metric over the sessions that started in the window, split by who and " +
        "where the users are." });
    this.metric = select(METRICS.map(([v, label]) => [v, label]), { value: "SESSIONS",
      name: "metric" });
    this.metric.addEventListener("change", () => this.refresh());
    this.controls.append(h("div", { class: "row" }, field("Metric", this.metric)));
    this.cards = new Map(DIMENSIONS.map(([key, title]) =>
      [key, new Card(title, { id: `breakdown-${key}` })]));
    for (const card of this.cards.values()) this.grid.append(card.el);
  }

  async refresh() {
    const vars = { metric: this.metric.value, window: this.ctx.window() };
    const [, label, format] = METRICS.find(([v]) => v === vars.metric);
    let shared = null;
    const once = () => (shared ??= this.ctx.api.query(BREAKDOWNS, vars));
    await this.run(DIMENSIONS.map(([key, , top]) => () => this.task(this.cards.get(key), once,
      (d) => this.render(key, d[key], { label, format, top }))));
  }

  render(key, rows, { label, format, top }) {
    const card = this.cards.get(key);
    const known = rows.filter((r) => r.key !== null && r.key !== "");
    if (!rows.length) return `No sessions in the ${this.ctx.windowLabel()}.`;
    let shown = (known.length ? known : rows).slice(0, top);
    if (key === "ageBand") {
      shown = [...shown].sort((a, b) => AGE_ORDER.indexOf(a.key) - AGE_ORDER.indexOf(b.key))
        .reverse();
    }
    const unknown = rows.filter((r) => r.key === null || r.key === "")
      .reduce((n, r) => n + r.sessions, 0);
    const box = chartBox(`breakdown-${key}`, Math.max(180, 28 * shown.length + 40));
    card.show(box, unknown && known.length
      ? h("p", { class: "note" }, `${fmt.int(unknown)} sessions with no known value are ` +
        "left out.") : null);
    drawChart(box, barOption(shown.map((r) => ({ name: fmt.key(r.key), value: r.value })),
      { format, name: label }));
    return undefined;
  }
}
