// Retention: cohorts (users whose first start event falls in a period) against the periods
// after it, as a heatmap; and churn per period.

import { chartBox, drawChart, esc } from "../charts.js";
import { Card, Panel, field, fmt, h, select } from "../dom.js";

const RETENTION = `query Retention($window: TimeWindow, $period: Period!, $periods: Int!,
    $startEvent: String, $returnEvent: String, $mode: RetentionMode!) {
  retention(window: $window, period: $period, periods: $periods, startEvent: $startEvent,
            returnEvent: $returnEvent, mode: $mode) {
    cohorts { start size retained }
  }
  churn(period: $period, window: $window) { period active previousActive churned rate }
}`;

const PERIOD_NAMES = { DAY: "Day", WEEK: "Week", MONTH: "Month" };
const DEFAULT_PERIODS = { DAY: 14, WEEK: 8, MONTH: 6 };

export class RetentionPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "retention", title: "Retention",
      intro: "Each row is a cohort: the users whose first start event fell in that period. " +
        "A cell is the share of them who came back in the period after it." });
    this.heatmap = new Card("Cohorts", { id: "retention-heatmap", wide: true });
    this.churn = new Card("Churn", { id: "churn", wide: true });
    this.grid.append(this.heatmap.el, this.churn.el);
    this.form = null;
  }

  async refresh() {
    await this.ensureForm({ events: [] }, (catalogue) => this.buildForm(catalogue.events));
    const vars = this.variables();
    let shared = null;
    const once = () => (shared ??= this.ctx.api.query(RETENTION, vars));
    await this.run([
      () => this.task(this.heatmap, once, (d) => this.renderHeatmap(d.retention, vars)),
      () => this.task(this.churn, once, (d) => this.renderChurn(d.churn, vars)),
    ]);
  }

  buildForm(events) {
    const any = [["", "Any event"]];
    this.period = select([["DAY", "Day"], ["WEEK", "Week"], ["MONTH", "Month"]],
      { value: "DAY", name: "period" });
    this.periods = h("input", { type: "number", min: "1", max: "60", value: "14",
      name: "periods" });
    this.period.addEventListener("change", () => {
      this.periods.value = String(DEFAULT_PERIODS[this.period.value]);
    });
    this.startEvent = select([...any, ...events], { value: "", name: "start-event" });
    this.returnEvent = select([...any, ...events], { value: "", name: "return-event" });
    this.mode = select([["ON", "in that period"], ["ON_OR_AFTER", "in that period or later"]],
      { value: "ON", name: "mode" });
    this.form = h("form", { class: "builder row", onsubmit: (e) => {
      e.preventDefault();
      this.refresh();
    } },
    field("Period", this.period),
    field("Periods", this.periods),
    field("Cohort: first", this.startEvent),
    field("Returned: did", this.returnEvent),
    field("Counted when active", this.mode),
    h("button", { type: "submit", class: "primary" }, "Show retention"));
    this.controls.replaceChildren(this.form);
  }

  variables() {
    return {
      window: this.ctx.window(),
      period: this.period.value,
      periods: Math.min(60, Math.max(1, Number(this.periods.value) || 8)),
      startEvent: this.startEvent.value || null,
      returnEvent: this.returnEvent.value || null,
      mode: this.mode.value,
    };
  }

  renderHeatmap(retention, vars) {
    const cohorts = retention.cohorts.filter((c) => c.size > 0);
    if (!cohorts.length) return `No cohorts: nobody started in the ${this.ctx.windowLabel()}.`;
    const unit = PERIOD_NAMES[vars.period];
    const width = Math.max(...cohorts.map((c) => c.retained.length));
    const xs = Array.from({ length: width }, (_, k) => `${unit} ${k}`);
    const ys = cohorts.map((c) => `${c.start} · ${fmt.int(c.size)}`);
    const cells = [];
    cohorts.forEach((c, y) => c.retained.forEach((n, x) => {
      cells.push({ value: [x, y, Math.round((n / c.size) * 1000) / 10], users: n });
    }));
    const box = chartBox("retention-heatmap", Math.max(240, 34 * cohorts.length + 90));
    this.heatmap.show(box);
    drawChart(box, {
      tooltip: { formatter: (p) => `Cohort ${esc(cohorts[p.value[1]].start)} ` +
        `(${fmt.int(cohorts[p.value[1]].size)} users)<br>${xs[p.value[0]]}: ` +
        `${fmt.int(p.data.users)} users (${p.value[2]}%)` },
      grid: { left: 16, right: 16, top: 8, bottom: 56, containLabel: true },
      xAxis: { type: "category", data: xs, splitArea: { show: true }, position: "top" },
      yAxis: { type: "category", data: ys, inverse: true, splitArea: { show: true } },
      visualMap: { min: 0, max: 100, calculable: false, orient: "horizontal", left: "center",
        bottom: 0, text: ["100%", "0%"], inRange: { color: ["#eef4ff", "#2f6fde", "#173a7a"] } },
      series: [{ type: "heatmap", name: "Retained", data: cells,
        label: { show: true, formatter: (p) => `${Math.round(p.value[2])}%`, fontSize: 11 },
        emphasis: { itemStyle: { borderColor: "#111", borderWidth: 1 } } }],
    });
    return undefined;
  }

  renderChurn(churn, vars) {
    const rows = churn.filter((p) => p.previousActive > 0);
    if (!rows.length) {
      return "No churn yet: it needs users active in two consecutive periods.";
    }
    const box = chartBox("churn", 240);
    this.churn.title.textContent = `Churn per ${PERIOD_NAMES[vars.period].toLowerCase()}`;
    this.churn.show(box, h("p", { class: "note" },
      "Share of the users active in a period who were not active in the next one."));
    drawChart(box, {
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", formatter: (ps) => {
        const p = rows[ps[0].dataIndex];
        return `${esc(p.period)}<br>${fmt.pct(p.rate)} churned (${fmt.int(p.churned)} of ` +
          `${fmt.int(p.previousActive)})<br>${fmt.int(p.active)} active`;
      } },
      xAxis: { type: "category", data: rows.map((p) => p.period) },
      yAxis: { type: "value", max: 1, axisLabel: { formatter: (v) => fmt.pct(v, 0) } },
      series: [{ type: "line", name: "Churn", data: rows.map((p) => p.rate), areaStyle: {},
        smooth: true }],
    });
    return undefined;
  }
}
