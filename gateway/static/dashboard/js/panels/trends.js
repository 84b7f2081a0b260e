// Trends: events, users or sessions per hour, day, week or month for a few events, one line
// per event (or per event and value of a property), with each line's total over the window.

import { PALETTE, chartBox, drawChart } from "../charts.js";
import { Card, Panel, field, fmt, h, select, table } from "../dom.js";

const TRENDS = `query Trends($series: [TrendSeriesInput!]!, $interval: TrendInterval!,
    $window: TimeWindow, $breakdown: String, $timezone: String, $breakdownLimit: Int!) {
  trends(series: $series, interval: $interval, window: $window, breakdown: $breakdown,
         timezone: $timezone, breakdownLimit: $breakdownLimit) {
    interval buckets series { name event math breakdownValue total values }
  }
}`;

const ALL_EVENTS = ""; // the series' `event: null`
const MATHS = [
  ["TOTAL", "Total events"],
  ["UNIQUE_USERS", "Unique users"],
  ["PER_USER_AVERAGE", "Events per user"],
  ["SESSIONS", "Sessions"],
];
// What a total over the window is, where it is not the sum of the buckets.
const NOTES = {
  UNIQUE_USERS: "Totals count each user once over the whole window, so they can be less " +
    "than the sum of the buckets.",
  SESSIONS: "Totals count each session once over the whole window, so they can be less " +
    "than the sum of the buckets.",
  PER_USER_AVERAGE: "Totals are the window's events divided by its distinct users.",
};
const INTERVALS = [["HOUR", "Hour"], ["DAY", "Day"], ["WEEK", "Week"], ["MONTH", "Month"]];
// Event fields every event has (see `trends(breakdown)`); custom properties come from the
// catalogue of the events picked.
const FIELDS = [["city", "City"], ["country", "Country"], ["device_type", "Device type"],
  ["os", "OS"]];
const MAX_SERIES = 5;
const DEFAULT_SERIES = 3; // the project's busiest events
const BREAKDOWN_LIMIT = 5; // values per series, so at most 25 lines
const MAX_BUCKETS = 1000; // what the API answers at most
const HOURS = { m: 1 / 60, h: 1, d: 24, w: 24 * 7 };

/** The browser's time zone, so that days start at the user's midnight. */
function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

/** Hours in a window such as {last: "30d"}, or null when it cannot tell. */
function windowHours(win) {
  const m = /^(\d+)([mhdw])$/.exec(win?.last || "");
  return m ? Number(m[1]) * HOURS[m[2]] : null;
}

/** A bucket's start (ISO-8601 with the zone's offset) as the wall-clock text it stands for. */
function bucketLabel(iso, interval) {
  const date = iso.slice(0, 10);
  if (interval === "HOUR") return `${date.slice(5)} ${iso.slice(11, 16)}`;
  if (interval === "MONTH") return date.slice(0, 7);
  return date;
}

export class TrendsPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "trends", title: "Trends",
      intro: "How often events happen over time: events, distinct users or sessions per " +
        "bucket, for up to five events, optionally split by a property." });
    this.form = null;
    this.chart = new Card("Trend", { id: "trends-chart", wide: true });
    this.grid.append(this.chart.el);
  }

  async refresh() {
    if (!this.form) {
      await this.run([() => this.task(this.chart, () => this.ctx.definitions(),
        (definitions) => this.buildForm(definitions))]);
      if (!this.form) return;
    }
    await this.runTrends();
  }

  buildForm(definitions) {
    if (!definitions.length) {
      return "No data yet: this project has not received any events.";
    }
    this.definitions = definitions; // most events first
    this.names = definitions.map((d) => d.name).sort((a, b) => a.localeCompare(b));
    this.seriesList = h("ol", { class: "steps series" });
    for (const d of definitions.slice(0, DEFAULT_SERIES)) this.addSeries(d.name);
    this.math = select(MATHS, { value: "TOTAL", name: "trends-math" });
    this.interval = select(INTERVALS, { value: "DAY", name: "trends-interval" });
    this.breakdown = h("select", { name: "trends-breakdown" });
    this.fillBreakdowns();
    for (const control of [this.math, this.interval, this.breakdown]) {
      control.addEventListener("change", () => this.runTrends());
    }
    this.addButton = h("button", { type: "button", class: "secondary",
      "data-action": "add-series", onclick: () => {
        const chosen = this.chosenEvents();
        const next = definitions.find((d) => !chosen.includes(d.name));
        this.addSeries(next ? next.name : ALL_EVENTS);
        this.changed();
      } }, "Add series");
    this.form = h("form", { class: "builder", onsubmit: (e) => {
      e.preventDefault();
      this.runTrends();
    } },
    h("fieldset", { class: "steps-field" }, h("legend", {}, "Series"), this.seriesList,
      this.addButton),
    h("div", { class: "row" },
      field("Measure", this.math),
      field("Interval", this.interval),
      field("Breakdown", this.breakdown)));
    this.controls.replaceChildren(this.form);
    this.updateSeriesButtons();
    return undefined;
  }

  addSeries(event) {
    if (this.seriesList.children.length >= MAX_SERIES) return;
    const choice = select([[ALL_EVENTS, "All events"], ...this.names],
      { value: event, name: "trends-event" });
    choice.addEventListener("change", () => this.changed());
    const item = h("li", { class: "step" }, choice,
      h("button", { type: "button", class: "icon", title: "Remove this series",
        "aria-label": "Remove this series", onclick: () => {
          if (this.seriesList.children.length > 1) {
            item.remove();
            this.changed();
          }
        } }, "×"));
    this.seriesList.append(item);
  }

  /** The events picked changed: their properties are the breakdowns on offer. */
  changed() {
    this.updateSeriesButtons();
    this.fillBreakdowns();
    this.runTrends();
  }

  updateSeriesButtons() {
    const count = this.seriesList.children.length;
    if (this.addButton) this.addButton.disabled = count >= MAX_SERIES;
    for (const button of this.seriesList.querySelectorAll("button")) {
      button.disabled = count <= 1;
    }
  }

  chosenEvents() {
    return [...this.seriesList.querySelectorAll("select")].map((s) => s.value);
  }

  /** Event fields, then the custom properties of the events picked (of all, for "All"). */
  fillBreakdowns() {
    const current = this.breakdown.value;
    const chosen = this.chosenEvents();
    const fields = new Set(FIELDS.map(([key]) => key));
    const counts = new Map();
    for (const d of this.definitions) {
      if (!chosen.includes(ALL_EVENTS) && !chosen.includes(d.name)) continue;
      for (const p of d.properties) {
        if (!fields.has(p.key)) counts.set(p.key, (counts.get(p.key) || 0) + p.count);
      }
    }
    const properties = [...counts.keys()].sort((a, b) => a.localeCompare(b));
    this.breakdown.replaceChildren(
      h("option", { value: "" }, "None"),
      h("optgroup", { label: "Event fields" },
        FIELDS.map(([key, label]) => h("option", { value: key }, label))),
      properties.length ? h("optgroup", { label: "Properties" },
        properties.map((key) => h("option", { value: key }, key))) : null);
    this.breakdown.value = [...fields, ...properties].includes(current) ? current : "";
  }

  /** Hour buckets only where the window holds no more than the API answers. */
  fitInterval() {
    const hours = windowHours(this.ctx.window());
    const tooMany = hours !== null && hours >= MAX_BUCKETS;
    const hour = this.interval.querySelector('option[value="HOUR"]');
    hour.disabled = tooMany;
    hour.textContent = tooMany ? "Hour (a shorter window)" : "Hour";
    if (tooMany && this.interval.value === "HOUR") this.interval.value = "DAY";
  }

  /** The variables sent to `trends`. */
  variables() {
    const math = this.math.value;
    return {
      series: this.chosenEvents().map((event) => ({ event: event || null, math })),
      interval: this.interval.value,
      window: this.ctx.window(),
      breakdown: this.breakdown.value || null,
      timezone: timeZone(),
      breakdownLimit: BREAKDOWN_LIMIT,
    };
  }

  async runTrends() {
    this.fitInterval();
    const vars = this.variables();
    await this.run([() => this.task(this.chart, () => this.ctx.api.query(TRENDS, vars),
      (d) => this.render(d.trends, vars))]);
  }

  render(trends, vars) {
    const math = MATHS.find(([v]) => v === vars.series[0].math)[1];
    this.chart.title.textContent = `${math} per ${vars.interval.toLowerCase()}` +
      (vars.breakdown ? `, by ${vars.breakdown}` : "");
    const lines = trends.series;
    if (!lines.length || lines.every((s) => s.total === 0)) {
      return `None of these events happened in the ${this.ctx.windowLabel()}.`;
    }
    const format = vars.series[0].math === "PER_USER_AVERAGE" ? (v) => fmt.dec(v, 2)
      : (v) => fmt.int(v);
    const label = (s) => (vars.breakdown ? `${s.name} · ${fmt.key(s.breakdownValue)}` : s.name);
    const color = (i) => PALETTE[i % PALETTE.length];
    const box = chartBox("trends", 340);
    const columns = [
      { label: "Series", key: "name", value: (s, i) => [
        h("span", { class: "swatch", style: `background: ${color(i)}` }), s.name] },
      vars.breakdown ? { label: vars.breakdown, key: "breakdown-value",
        value: (s) => fmt.key(s.breakdownValue) } : null,
      { label: `${math}, ${this.ctx.windowLabel()}`, key: "total", num: true,
        value: (s) => format(s.total) },
    ].filter((c) => c);
    this.chart.show(
      box,
      NOTES[vars.series[0].math] ? h("p", { class: "note" }, NOTES[vars.series[0].math]) : null,
      table(columns, lines, { attrs: (s, i) => ({ "data-series": i, "data-total": s.total }) }),
    );
    const labels = trends.buckets.map((b) => bucketLabel(b, trends.interval));
    drawChart(box, {
      color: PALETTE,
      legend: { top: 0, type: "scroll" },
      grid: { left: 24, right: 36, top: 40, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", valueFormatter: (v) => format(v) },
      xAxis: { type: "category", data: labels, boundaryGap: false },
      yAxis: { type: "value", minInterval: vars.series[0].math === "PER_USER_AVERAGE" ? 0 : 1,
        axisLabel: { formatter: (v) => format(v) } },
      series: lines.map((s) => ({ type: "line", name: label(s), data: s.values,
        showSymbol: labels.length <= 45, emphasis: { focus: "series" } })),
    });
    return undefined;
  }
}
