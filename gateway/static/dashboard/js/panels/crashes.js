// Crashes: crash rate per 1,000 sessions, crash-free users, top causes, and the rate per OS,
// app version, device type or country.

import { barOption, chartBox, drawChart } from "../charts.js";
import { Card, Panel, field, fmt, h, kpi, select, table } from "../dom.js";

const CRASHES = `query Crashes($window: TimeWindow, $by: CrashDimension) {
  crashes(window: $window, by: $by, first: 10) {
    crashes sessions crashesPer1000Sessions crashFreeUsers
    topCauses { cause count }
    groups { key crashes sessions crashesPer1000Sessions crashFreeUsers }
  }
}`;

const DIMENSIONS = [["OS", "OS"], ["APP_VERSION", "App version"], ["DEVICE_TYPE", "Device type"],
  ["COUNTRY", "Country"]];

export class CrashesPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "crashes", title: "Crashes",
      intro: "App Crash events against the sessions that started in the window." });
    this.by = select(DIMENSIONS, { value: "OS", name: "crash-by" });
    this.by.addEventListener("change", () => this.refresh());
    this.controls.append(h("div", { class: "row" }, field("Compare by", this.by)));
    this.summary = new Card("Crash rate", { id: "crash-summary", wide: true });
    this.causes = new Card("Top causes", { id: "crash-causes" });
    this.groups = new Card("Crash rate by OS", { id: "crash-groups" });
    this.grid.append(this.summary.el, this.causes.el, this.groups.el);
  }

  async refresh() {
    const vars = { window: this.ctx.window(), by: this.by.value };
    let shared = null;
    const once = () => (shared ??= this.ctx.api.query(CRASHES, vars));
    await this.run([
      () => this.task(this.summary, once, (d) => this.renderSummary(d.crashes)),
      () => this.task(this.causes, once, (d) => this.renderCauses(d.crashes)),
      () => this.task(this.groups, once, (d) => this.renderGroups(d.crashes, vars)),
    ]);
  }

  renderSummary(c) {
    if (c.sessions === 0) return `No sessions in the ${this.ctx.windowLabel()} yet.`;
    this.summary.show(h("div", { class: "kpis" },
      kpi("Crashes", fmt.int(c.crashes), { id: "crashes" }),
      kpi("Sessions", fmt.int(c.sessions), { id: "crash-sessions" }),
      kpi("Crashes per 1,000 sessions", fmt.dec(c.crashesPer1000Sessions),
        { id: "crashes-per-1000" }),
      kpi("Crash-free users", fmt.pct(c.crashFreeUsers, 2), { id: "crash-free-users" })));
    return undefined;
  }

  renderCauses(c) {
    if (!c.topCauses.length) return `No crashes in the ${this.ctx.windowLabel()}.`;
    const box = chartBox("crash-causes", Math.max(180, 30 * c.topCauses.length + 40));
    this.causes.show(box, table([
      { label: "Cause", key: "cause", value: (r) => r.cause },
      { label: "Crashes", key: "count", num: true, value: (r) => fmt.int(r.count) },
    ], c.topCauses));
    drawChart(box, barOption(c.topCauses.map((r) => ({ name: r.cause, value: r.count })),
      { format: fmt.int, name: "Crashes", color: "#d9485f" }));
    return undefined;
  }

  renderGroups(c, vars) {
    const label = DIMENSIONS.find(([v]) => v === vars.by)[1];
    this.groups.title.textContent = `Crash rate by ${label}`;
    const groups = c.groups.filter((g) => g.sessions > 0);
    if (!groups.length) return `No sessions in the ${this.ctx.windowLabel()} yet.`;
    const ordered = [...groups].sort((a, b) => b.crashesPer1000Sessions - a.crashesPer1000Sessions);
    const box = chartBox("crash-groups", Math.max(180, 30 * ordered.length + 40));
    this.groups.show(box, table([
      { label, key: "key", value: (g) => fmt.key(g.key) },
      { label: "Crashes", key: "crashes", num: true, value: (g) => fmt.int(g.crashes) },
      { label: "Sessions", key: "sessions", num: true, value: (g) => fmt.int(g.sessions) },
      { label: "Per 1,000", key: "per-1000", num: true,
        value: (g) => fmt.dec(g.crashesPer1000Sessions) },
      { label: "Crash-free users", key: "crash-free", num: true,
        value: (g) => fmt.pct(g.crashFreeUsers) },
    ], ordered));
    drawChart(box, barOption(ordered.map((g) => ({ name: fmt.key(g.key),
      value: g.crashesPer1000Sessions })), { format: (v) => fmt.dec(v), name: "Per 1,000",
      color: "#f0a020" }));
    return undefined;
  }
}
