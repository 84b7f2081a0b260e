// Funnel builder: ordered steps, a conversion window, an optional segment and breakdown; the
// funnel chart, each step's numbers, a breakdown chart, and the users who dropped off.

import { PALETTE, chartBox, drawChart, esc } from "../charts.js";
import { Card, Panel, field, fmt, h, select, table } from "../dom.js";
import { SegmentForm } from "../segment-form.js";

const FUNNEL = `query Funnel($steps: [FunnelStepInput!]!, $window: TimeWindow,
    $conversionWindow: String!, $segment: SegmentFilter, $breakdown: String) {
  funnel(steps: $steps, window: $window, conversionWindow: $conversionWindow,
         segment: $segment, breakdown: $breakdown) {
    steps { event users conversionFromPrevious conversionFromFirst dropOff
            medianSecondsFromPrevious }
    breakdowns { key steps { event users conversionFromFirst } }
  }
}`;

const DROPPED = `query Dropped($steps: [FunnelStepInput!]!, $step: Int!, $window: TimeWindow,
    $conversionWindow: String!, $segment: SegmentFilter, $after: String) {
  funnelUsers(steps: $steps, step: $step, dropped: true, window: $window,
              conversionWindow: $conversionWindow, segment: $segment, first: 50,
              after: $after) {
    totalCount users pageInfo { hasNextPage endCursor }
  }
}`;

// A shop's usual funnel, used as the starting steps when the project has these events.
const SUGGESTED = ["Product View", "Add to Cart", "Begin Checkout", "Purchase"];
const CONVERSION_WINDOWS = [["30m", "30 minutes"], ["1h", "1 hour"], ["6h", "6 hours"],
  ["1d", "1 day"], ["3d", "3 days"], ["7d", "7 days"], ["14d", "14 days"], ["30d", "30 days"]];
const BREAKDOWNS = ["os", "device_type", "city", "country", "app_version", "browser"];
const MAX_STEPS = 10;
const MAX_BREAKDOWN_SERIES = 8;

export class FunnelPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "funnel", title: "Funnels",
      intro: "Pick the steps in order: each user counts once, at the furthest step reached " +
        "within the conversion window of their first step." });
    this.events = null;
    this.form = null;
    this.chart = new Card("Funnel", { id: "funnel-chart", wide: true });
    this.breakdown = new Card("Breakdown", { id: "funnel-breakdown", wide: true });
    this.dropped = new Card("Drop-off users", { id: "funnel-dropped", wide: true });
    this.grid.append(this.chart.el, this.breakdown.el, this.dropped.el);
    this.lastRun = null;
  }

  async refresh() {
    if (!this.form) {
      await this.run([() => this.task(this.chart, () => this.ctx.catalogue(),
        (catalogue) => this.buildForm(catalogue))]);
      if (!this.form) return;
    }
    await this.runFunnel();
  }

  buildForm({ events, dims }) {
    if (events.length < 2) {
      return "No data yet: a funnel needs at least two different events.";
    }
    this.events = events;
    this.stepList = h("ol", { class: "steps" });
    const defaults = SUGGESTED.filter((e) => events.includes(e));
    for (const event of defaults.length >= 2 ? defaults : events.slice(0, 3)) {
      this.addStep(event);
    }
    this.conversionWindow = select(CONVERSION_WINDOWS, { value: "1d",
      name: "conversion-window" });
    this.breakdownInput = h("input", { type: "text", name: "breakdown", list: "breakdowns",
      placeholder: "none", autocomplete: "off" });
    this.segment = new SegmentForm({ dims, events, prefix: "funnel" });
    this.form = h("form", { class: "builder", onsubmit: (e) => {
      e.preventDefault();
      this.runFunnel();
    } },
    h("fieldset", { class: "steps-field" }, h("legend", {}, "Steps"), this.stepList,
      h("button", { type: "button", class: "secondary", "data-action": "add-step",
        onclick: () => this.addStep(events[0]) }, "Add step")),
    h("div", { class: "row" },
      field("Conversion window", this.conversionWindow),
      field("Breakdown by property", [this.breakdownInput,
        h("datalist", { id: "breakdowns" }, BREAKDOWNS.map((b) => h("option", { value: b })))]),
      h("button", { type: "submit", class: "primary" }, "Run funnel")),
    h("details", { class: "segment" }, h("summary", {}, "Segment (optional)"), this.segment.el));
    this.controls.replaceChildren(this.form);
    return undefined;
  }

  addStep(event) {
    if (this.stepList.children.length >= MAX_STEPS) return;
    const choice = select(this.events, { value: event, name: "step" });
    const item = h("li", { class: "step" }, choice,
      h("button", { type: "button", class: "icon", title: "Remove this step",
        "aria-label": "Remove this step", onclick: () => {
          if (this.stepList.children.length > 2) item.remove();
        } }, "×"));
    this.stepList.append(item);
  }

  /** The funnel's variables, as sent to `funnel` (the drop-off query reuses them). */
  variables() {
    const steps = [...this.stepList.querySelectorAll("select")].map((s) => ({ event: s.value }));
    return {
      steps,
      window: this.ctx.window(),
      conversionWindow: this.conversionWindow.value,
      segment: this.segment.value(),
      breakdown: this.breakdownInput.value.trim() || null,
    };
  }

  async runFunnel() {
    const vars = this.variables();
    this.lastRun = vars;
    let shared = null;
    const once = () => (shared ??= this.ctx.api.query(FUNNEL, vars));
    await this.run([
      () => this.task(this.chart, once, (d) => this.renderFunnel(d.funnel, vars)),
      () => this.task(this.breakdown, once, (d) => this.renderBreakdown(d.funnel, vars)),
      () => this.task(this.dropped, once, (d) => this.renderDropped(d.funnel, vars)),
    ]);
  }

  renderFunnel(funnel, vars) {
    const steps = funnel.steps;
    if (!steps.length || steps[0].users === 0) {
      return `Nobody did ${vars.steps[0].event} in the ${this.ctx.windowLabel()}` +
        (vars.segment ? ` (segment: ${this.segment.describe()})` : "") + ".";
    }
    const box = chartBox("funnel", Math.max(260, 64 * steps.length));
    const names = steps.map((s, i) => `${i + 1}. ${s.event}`);
    this.chart.show(
      box,
      table([
        { label: "Step", key: "event", value: (s, i) => names[i] },
        { label: "Users", key: "users", num: true, value: (s) => fmt.int(s.users) },
        { label: "From previous", key: "conversion-from-previous", num: true,
          value: (s) => fmt.pct(s.conversionFromPrevious) },
        { label: "From first", key: "conversion-from-first", num: true,
          value: (s) => fmt.pct(s.conversionFromFirst) },
        { label: "Dropped", key: "drop-off", num: true, value: (s) => fmt.int(s.dropOff) },
        { label: "Median time from previous", key: "median", num: true,
          value: (s) => fmt.duration(s.medianSecondsFromPrevious) },
      ], steps, { attrs: (s, i) => ({ "data-step": i + 1, "data-users": s.users }) }),
    );
    drawChart(box, {
      tooltip: { trigger: "item", formatter: (p) => `${esc(p.name)}<br>${fmt.int(p.value)} users ` +
        `(${fmt.pct(steps[p.dataIndex].conversionFromFirst)} of step 1)` },
      series: [{
        type: "funnel", name: "Users", sort: "none", gap: 4, minSize: "8%",
        left: "8%", right: "8%", top: 8, bottom: 8,
        label: { show: true, position: "inside", color: "#fff",
          formatter: (p) => `${p.name}: ${fmt.int(p.value)}` },
        data: steps.map((s, i) => ({ name: names[i], value: s.users })),
      }],
    });
    return undefined;
  }

  renderBreakdown(funnel, vars) {
    if (!vars.breakdown) {
      this.breakdown.el.hidden = true;
      return undefined;
    }
    this.breakdown.el.hidden = false;
    this.breakdown.title.textContent = `Breakdown by ${vars.breakdown}`;
    const groups = funnel.breakdowns.filter((b) => b.steps[0]?.users > 0);
    if (!groups.length) return `No values of ${vars.breakdown} among the users in this funnel.`;
    const shown = groups.slice(0, MAX_BREAKDOWN_SERIES);
    const box = chartBox("funnel-breakdown", 300);
    const last = (b) => b.steps[b.steps.length - 1];
    this.breakdown.show(
      box,
      groups.length > shown.length
        ? h("p", { class: "note" }, `The chart shows the ${shown.length} largest of ` +
          `${groups.length} values; the table has them all.`) : null,
      table([
        { label: vars.breakdown, key: "key", value: (b) => fmt.key(b.key) },
        { label: "Entered", key: "entered", num: true, value: (b) => fmt.int(b.steps[0].users) },
        { label: "Converted", key: "converted", num: true, value: (b) => fmt.int(last(b).users) },
        { label: "Conversion", key: "conversion", num: true,
          value: (b) => fmt.pct(last(b).conversionFromFirst) },
      ], groups),
    );
    drawChart(box, {
      color: PALETTE,
      legend: { top: 0, type: "scroll" },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "category", data: vars.steps.map((s, i) => `${i + 1}. ${s.event}`) },
      yAxis: { type: "value", minInterval: 1, name: "users" },
      series: shown.map((b) => ({ type: "bar", name: fmt.key(b.key),
        data: b.steps.map((s) => s.users) })),
    });
    return undefined;
  }

  renderDropped(funnel, vars) {
    const steps = funnel.steps;
    if (!steps.length || steps[0].users === 0) return "Nobody entered this funnel.";
    // the step that lost the most users first
    let worst = 2;
    for (let k = 2; k <= steps.length; k += 1) {
      if (steps[k - 1].dropOff > steps[worst - 1].dropOff) worst = k;
    }
    const choice = select(steps.slice(1).map((s, i) => [String(i + 2),
      `Dropped before step ${i + 2} (${s.event}): ${fmt.int(s.dropOff)}`]),
    { value: String(worst), name: "dropped-step" });
    const list = h("div", { class: "dropped-list" });
    choice.addEventListener("change", () => this.loadDropped(list, vars, Number(choice.value)));
    this.dropped.show(field("Step", choice), list);
    this.loadDropped(list, vars, worst);
    return undefined;
  }

  async loadDropped(list, vars, step, after = null) {
    const { breakdown, ...rest } = vars; // funnelUsers has no breakdown
    if (!after) list.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    list.dataset.state = "loading";
    let page;
    try {
      page = (await this.ctx.api.query(DROPPED, { ...rest, step, after })).funnelUsers;
    } catch (err) {
      list.dataset.state = "error";
      list.replaceChildren(h("p", { class: "message error" }, err.message));
      if (err.kind === "refused") this.ctx.refused(err);
      return;
    }
    if (this.lastRun !== vars) return;
    if (!after) {
      list.replaceChildren(h("p", { class: "note", "data-total": page.totalCount },
        `${fmt.int(page.totalCount)} users reached step ${step - 1} but not step ${step}. ` +
        "Open one to follow them live."), h("ul", { class: "users" }));
    }
    list.querySelector(".more")?.remove();
    const ul = list.querySelector("ul");
    for (const user of page.users) {
      ul.append(h("li", {}, h("a", { href: "#live", "data-user": user, onclick: (e) => {
        e.preventDefault();
        this.ctx.go("live", { userId: user });
      } }, user)));
    }
    if (page.pageInfo.hasNextPage) {
      list.append(h("button", { type: "button", class: "secondary more", onclick: () =>
        this.loadDropped(list, vars, step, page.pageInfo.endCursor) }, "Load more"));
    }
    list.dataset.state = page.totalCount ? "ready" : "empty";
    if (!page.totalCount) ul.replaceWith(h("p", { class: "muted" }, "Nobody dropped here."));
  }
}
