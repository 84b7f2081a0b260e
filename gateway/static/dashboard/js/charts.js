// Apache ECharts (the vendored global `echarts`), with the dashboard's defaults. Each chart's
// element gets data-rendered="true" once ECharts has finished drawing it, so tests and
// screenshots can wait for a finished chart rather than for time to pass.

export const PALETTE = ["#2f6fde", "#16a37f", "#f0a020", "#d9485f", "#7b61d9", "#1aa3c4",
  "#8c9a2b", "#c0568f", "#5b6b82", "#e07b39"];

const BASE = {
  color: PALETTE,
  animationDuration: 400,
  animationDurationUpdate: 300,
  textStyle: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" },
  tooltip: { confine: true },
};

export function chartsAvailable() {
  return typeof window.echarts?.init === "function";
}

/** Draw `option` into `el` (a new element each time, already in the document). */
export function drawChart(el, option) {
  const { echarts } = window;
  let chart = echarts.getInstanceByDom(el);
  if (!chart) {
    chart = echarts.init(el, null, { renderer: "svg" });
    chart.on("finished", () => {
      el.dataset.rendered = "true";
    });
  }
  el.dataset.rendered = "false";
  chart.setOption({ ...BASE, ...option }, true);
  return chart;
}

/** A chart element of the given height, for drawChart. */
export function chartBox(name, height = 320) {
  const el = document.createElement("div");
  el.className = "chart";
  el.dataset.chart = name;
  el.style.height = `${height}px`;
  return el;
}

export function disposeCharts(root) {
  const { echarts } = window;
  if (!echarts) return;
  for (const el of root.querySelectorAll("[data-chart]")) {
    echarts.getInstanceByDom(el)?.dispose();
  }
}

export function resizeCharts(root) {
  const { echarts } = window;
  if (!echarts) return;
  for (const el of root.querySelectorAll("[data-chart]")) {
    echarts.getInstanceByDom(el)?.resize();
  }
}

/** A horizontal bar chart of [{name, value}] (largest on top). */
export function barOption(rows, { format = String, name = "", color } = {}) {
  const ordered = [...rows].reverse();
  return {
    grid: { left: 8, right: 56, top: 8, bottom: 8, containLabel: true },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
      valueFormatter: (v) => format(v) },
    xAxis: { type: "value", axisLabel: { formatter: (v) => format(v) } },
    yAxis: { type: "category", data: ordered.map((r) => r.name),
      axisLabel: { width: 160, overflow: "truncate" } },
    series: [{ type: "bar", name, data: ordered.map((r) => r.value),
      itemStyle: color ? { color } : undefined,
      label: { show: true, position: "right", formatter: (p) => format(p.value) } }],
  };
}

/** Text for an HTML tooltip (event names and URLs come from the apps that send events). */
export function esc(text) {
  return window.echarts.format.encodeHTML(String(text ?? ""));
}
