// Paths: how sessions flow through their first steps (a Sankey of `journeyGraph`), and how
// sessions that reach a target differ from the rest (`compareJourneys`).

import { PALETTE, chartBox, drawChart, esc } from "../charts.js";
import { Card, Panel, field, fmt, h, select, table } from "../dom.js";

const GRAPH = `query Journeys($window: TimeWindow, $by: PathBy!, $maxDepth: Int!,
    $maxLinks: Int!, $minCount: Int!) {
  journeyGraph(window: $window, by: $by, maxDepth: $maxDepth, maxLinks: $maxLinks,
               minCount: $minCount) {
    sessions nodes { id label depth count } links { source target count }
  }
}`;

const COMPARE = `query Compare($target: String!, $window: TimeWindow, $by: PathBy!,
    $maxLength: Int!) {
  compareJourneys(target: $target, window: $window, by: $by, maxLength: $maxLength, top: 8) {
    converterSessions otherSessions
    converters { path share sessions }
    others { path share sessions }
    distinctive { path lift converterShare otherShare }
  }
}`;

const DROP_OFF = "Drop-off";
// With URLs as steps, the default goal is the first page that looks like the end of a sale.
const GOAL_URL = /(thank|success|confirm|order|checkout|purchase)/i;

// journeyGraph node ids are "depth:label"
const depthOf = (id) => Number.parseInt(id, 10);
const stepOf = (id) => id.slice(id.indexOf(":") + 1);
/** A URL without its scheme and host: "https://shop.com/cart" and "shop.com/cart" → "/cart". */
const shortUrl = (url) => url.replace(/^(?:[a-z][a-z0-9+.-]*:\/\/)?[^/]+(?=\/)/i, "");

export class PathsPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "paths", title: "Paths",
      intro: "Where sessions go from their first step, and what sessions that reach a goal " +
        "do differently from the others." });
    this.sankey = new Card("Journeys", { id: "journey-sankey", wide: true });
    this.compare = new Card("Converters vs others", { id: "compare-journeys", wide: true });
    this.grid.append(this.sankey.el, this.compare.el);
    this.form = null;
  }

  async refresh() {
    await this.ensureForm({ events: [], urls: [] }, (catalogue) => this.buildForm(catalogue));
    const base = { window: this.ctx.window(), by: this.by.value };
    const graphVars = { ...base, maxDepth: Number(this.depth.value),
      maxLinks: Number(this.links.value), minCount: 1 };
    const compareVars = { ...base, target: this.target.value,
      maxLength: Number(this.maxLength.value) };
    await this.run([
      () => this.task(this.sankey, () => this.ctx.api.query(GRAPH, graphVars),
        (d) => this.renderSankey(d.journeyGraph, graphVars.by)),
      () => (compareVars.target
        ? this.task(this.compare, () => this.ctx.api.query(COMPARE, compareVars),
          (d) => this.renderCompare(d.compareJourneys, compareVars))
        : this.compare.empty("No goal to compare against: no events yet.")),
    ]);
  }

  buildForm({ events, urls }) {
    this.by = select([["EVENT", "Event names"], ["URL", "URLs"]], { value: "EVENT",
      name: "path-by" });
    this.depth = select(["3", "4", "5", "6", "7", "8"], { value: "5", name: "depth" });
    this.links = select(["20", "40", "80", "150"], { value: "40", name: "links" });
    this.target = select([], { name: "target" });
    this.maxLength = select(["2", "3", "4", "5", "6", "8"], { value: "4", name: "max-length" });
    const goals = () => {
      if (this.by.value === "URL") {
        const target = urls.find((u) => GOAL_URL.test(u)) || urls[0];
        this.setTargets(urls, target);
      } else {
        const conversions = this.ctx.settings?.conversionEvents || [];
        const target = conversions.find((e) => events.includes(e)) || conversions[0];
        this.setTargets([...new Set([...conversions, ...events])], target);
      }
    };
    goals();
    this.by.addEventListener("change", goals);
    this.form = h("form", { class: "builder row", onsubmit: (e) => {
      e.preventDefault();
      this.refresh();
    } },
    field("Steps are", this.by),
    field("Steps shown", this.depth),
    field("Strongest links", this.links),
    field("Goal (converters reached it)", this.target),
    field("Path length before the goal", this.maxLength),
    h("button", { type: "submit", class: "primary" }, "Show paths"));
    this.controls.replaceChildren(this.form);
  }

  setTargets(values, value) {
    this.target.replaceChildren(...values.map((v) => h("option", { value: v }, v)));
    if (value) this.target.value = value;
  }

  renderSankey(graph, by) {
    // Keeping only the strongest links can leave runs of later steps whose way in was cut;
    // drawn, they float unattached, so only what flows from a first step is shown.
    const reached = new Set(graph.nodes.filter((n) => n.depth === 1).map((n) => n.id));
    const links = [];
    for (const link of [...graph.links].sort((x, y) => depthOf(x.source) - depthOf(y.source))) {
      if (reached.has(link.source)) {
        links.push(link);
        reached.add(link.target);
      }
    }
    const nodes = graph.nodes.filter((n) => reached.has(n.id));
    if (!links.length) return `No journeys: no sessions in the ${this.ctx.windowLabel()}.`;
    const labelColor = new Map();
    for (const node of nodes) {
      if (node.label !== DROP_OFF && !labelColor.has(node.label)) {
        labelColor.set(node.label, PALETTE[labelColor.size % PALETTE.length]);
      }
    }
    const short = by === "URL" ? shortUrl : (label) => label;
    const box = chartBox("journey-sankey", 520);
    this.sankey.show(h("p", { class: "note" },
      `${fmt.int(graph.sessions)} sessions, their first ` +
      `${Math.max(...nodes.map((n) => n.depth))} steps; a session that ends early flows ` +
      `into "${DROP_OFF}".`), box);
    drawChart(box, {
      tooltip: { trigger: "item", formatter: (p) => (p.dataType === "edge"
        ? `${esc(p.data.sourceLabel)} → ${esc(p.data.targetLabel)}: ` +
          `${fmt.int(p.value)} sessions`
        : `Step ${p.data.depth + 1}: ${esc(p.data.step)}, ${fmt.int(p.data.count)} sessions`) },
      series: [{
        type: "sankey", left: 8, right: 160, top: 8, bottom: 8, nodeGap: 10,
        nodeAlign: "left", layoutIterations: 32, draggable: false,
        emphasis: { focus: "adjacency" },
        lineStyle: { color: "gradient", opacity: 0.35, curveness: 0.5 },
        label: { formatter: (p) => short(p.data.step), fontSize: 11, width: 150,
          overflow: "truncate" },
        data: nodes.map((n) => ({
          name: n.id, step: n.label, depth: n.depth - 1, count: n.count,
          itemStyle: { color: n.label === DROP_OFF ? "#b8bfca" : labelColor.get(n.label) },
        })),
        links: links.map((l) => ({
          source: l.source, target: l.target, value: l.count,
          sourceLabel: stepOf(l.source), targetLabel: stepOf(l.target),
        })),
      }],
    });
    return undefined;
  }

  renderCompare(cmp, vars) {
    if (cmp.converterSessions === 0) {
      return `No session reached ${vars.target} in the ${this.ctx.windowLabel()}, so there ` +
        "is nothing to compare.";
    }
    const short = vars.by === "URL" ? shortUrl : (step) => step;
    const pathCell = (r) => h("span", { class: "path" }, r.path.map((step, i) => [
      i ? h("span", { class: "arrow" }, "→") : null,
      h("span", { class: "chip", title: step }, short(step))]));
    const shares = (rows, key) => table([
      { label: "Path", key: "path", value: pathCell },
      { label: "Sessions", key: "sessions", num: true, value: (r) => fmt.int(r.sessions) },
      { label: "Share", key: "share", num: true, value: (r) => fmt.pct(r.share) },
    ], rows, { attrs: () => ({ "data-group": key }) });
    const lifts = cmp.distinctive.slice(0, 8);
    const box = chartBox("compare-journeys", Math.max(200, 40 * lifts.length + 60));
    this.compare.show(
      h("div", { class: "kpis" },
        h("div", { class: "kpi", "data-kpi": "converter-sessions" },
          h("div", { class: "kpi-label" }, `Sessions that reached ${vars.target}`),
          h("div", { class: "kpi-value" }, fmt.int(cmp.converterSessions))),
        h("div", { class: "kpi", "data-kpi": "other-sessions" },
          h("div", { class: "kpi-label" }, "Other sessions"),
          h("div", { class: "kpi-value" }, fmt.int(cmp.otherSessions)))),
      h("h4", {}, "Step runs that set converters apart"),
      lifts.length ? box : h("p", { class: "muted" }, "No step run stands out."),
      h("div", { class: "columns" },
        h("div", {}, h("h4", {}, `Converters: commonest paths to ${vars.target}`),
          shares(cmp.converters, "converters")),
        h("div", {}, h("h4", {}, "Others: commonest paths"), shares(cmp.others, "others"))),
    );
    if (lifts.length) {
      const labels = lifts.map((r) => fmt.path(r.path.map(short))).reverse();
      drawChart(box, {
        legend: { top: 0 },
        grid: { left: 8, right: 48, top: 32, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, formatter: (ps) => {
          const r = lifts[lifts.length - 1 - ps[0].dataIndex];
          return `${esc(fmt.path(r.path))}<br>converters ${fmt.pct(r.converterShare)}, others ` +
            `${fmt.pct(r.otherShare)} (×${fmt.dec(r.lift)})`;
        } },
        xAxis: { type: "value", max: 1, axisLabel: { formatter: (v) => fmt.pct(v, 0) } },
        yAxis: { type: "category", data: labels, axisLabel: { width: 260, overflow: "truncate" } },
        series: [
          { type: "bar", name: "Converters", data: lifts.map((r) => r.converterShare).reverse() },
          { type: "bar", name: "Others", data: lifts.map((r) => r.otherShare).reverse() },
        ],
      });
    }
    return undefined;
  }
}
