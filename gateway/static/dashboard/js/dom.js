// Small DOM helpers shared by the panels: element builder, number formats, tables, and the
// Card/Panel pair that carries the loading / empty / error / ready states.

import { disposeCharts } from "./charts.js";

/** h("div", {class: "x", onclick: fn, "data-id": 1}, child, [children], "text") */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name in el && typeof value !== "string") {
      el[name] = value; // properties such as `value`, `checked`, `hidden`, `disabled`
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : integer.format(n)),
  /** A number with exactly `digits` decimals ("6.0", not "6": figures side by side align). */
  dec: (n, digits = 1) => (n === null || n === undefined ? "–"
    : new Intl.NumberFormat(undefined, {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(n)),
  /** A share (0-1) as a percentage. */
  pct: (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? "–"
    : `${new Intl.NumberFormat(undefined, {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(x * 100)}%`),
  /** Seconds as "1h 02m", "10m 27s" or "42s". */
  duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours}h ${String(m % 60).padStart(2, "0")}m`;
    return `${decimal.format(hours / 24)}d`;
  },
  time: (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–"),
  dateTime: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
  key: (k) => (k === null || k === undefined || k === "" ? "(unknown)" : String(k)),
  path: (steps) => steps.join(" → "),
};

/**
 * A table: columns are {label, value: row => text|Node, num?: true, key?: string};
 * `attrs(row)` adds attributes to each row (e.g. data-* for tests and links).
 */
export function table(columns, rows, { attrs, caption, className } = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { class: className || "data" },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) =>
        h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h("tbody", {}, rows.map((row, i) => h("tr", attrs ? attrs(row, i) : {},
        columns.map((c) => h("td", {
          class: c.num ? "num" : null,
          "data-col": c.key || null,
        }, c.value(row, i))))))));
}

/** A headline number. */
export function kpi(label, value, { hint, id } = {}) {
  return h("div", { class: "kpi", "data-kpi": id || null },
    h("div", { class: "kpi-label" }, label),
    h("div", { class: "kpi-value" }, value),
    hint ? h("div", { class: "kpi-hint" }, hint) : null);
}

/** A labelled form control. */
export function field(label, control, { wide } = {}) {
  return h("label", { class: wide ? "field wide" : "field" },
    h("span", { class: "field-label" }, label), control);
}

export function select(options, { value, id, name } = {}) {
  const el = h("select", { id, name });
  for (const opt of options) {
    const [v, text] = Array.isArray(opt) ? opt : [opt, opt];
    el.append(h("option", { value: v }, text));
  }
  if (value !== undefined) el.value = value;
  return el;
}

/**
 * One box of a panel. `state` is idle, loading, empty, error or ready (also set as
 * data-state, which the end-to-end tests wait on).
 */
export class Card {
  constructor(title, { id, wide, tools } = {}) {
    this.title = h("h3", {}, title);
    this.tools = h("div", { class: "card-tools" }, tools || []);
    this.status = h("div", { class: "card-status", role: "status" });
    this.body = h("div", { class: "card-body" });
    this.el = h("section", {
      class: wide ? "card wide" : "card", "data-card": id || null, "data-state": "idle",
    }, h("header", {}, this.title, this.tools), this.status, this.body);
  }

  setState(state, message = "", { retry } = {}) {
    this.el.dataset.state = state;
    this.el.setAttribute("aria-busy", state === "loading" ? "true" : "false");
    this.status.className = `card-status ${state}`;
    this.status.replaceChildren();
    if (message) this.status.append(h("span", {}, message));
    if (retry) this.status.append(h("button", { type: "button", class: "link", onclick: retry },
      "Retry"));
  }

  loading(message = "Loading…") {
    this.setState("loading", message);
  }

  empty(message) {
    this.show();
    this.setState("empty", message);
  }

  error(err, retry) {
    this.show();
    this.setState("error", err.message || String(err), { retry });
  }

  ready(...content) {
    this.show(...content);
    this.setState("ready");
  }

  /** Replace the body (disposing the charts it held). */
  show(...content) {
    disposeCharts(this.body);
    this.body.replaceChildren();
    append(this.body, content);
  }
}

/**
 * A panel: a heading, optional controls, and cards. `run(tasks)` sets the panel's
 * data-state from its cards' outcome; answers from a superseded run are dropped.
 */
export class Panel {
  constructor(ctx, { id, title, intro }) {
    this.ctx = ctx;
    this.id = id;
    this.title = title;
    this.generation = 0;
    this.controls = h("div", { class: "controls" });
    this.banner = h("div", { class: "banner message error", role: "alert", hidden: true });
    this.grid = h("div", { class: "grid" });
    this.el = h("section", { class: "panel", "data-panel": id, "data-state": "idle",
      hidden: true, "aria-labelledby": `panel-title-${id}` },
    h("div", { class: "panel-head" },
      h("h2", { id: `panel-title-${id}` }, title),
      intro ? h("p", { class: "intro" }, intro) : null),
    this.banner, this.controls, this.grid);
  }

  /** Called when shown (first time and on every change of the window). */
  async refresh() {}

  /** Called when another panel is shown. */
  hide() {}

  /**
   * Build the panel's form from the catalogue (event names, URLs, dimension values) once,
   * or from `fallback` when it cannot be loaded, and then again on the next refresh.
   */
  async ensureForm(fallback, build) {
    if (this.form && !this.formFromFallback) return;
    let catalogue = fallback;
    try {
      catalogue = await this.ctx.catalogue();
      this.formFromFallback = false;
    } catch {
      this.formFromFallback = true; // the queries that follow say what went wrong
    }
    build(catalogue);
  }

  /**
   * Load one card: `fetch()` returns data, `render(data)` fills the card and returns a
   * string to show the card as empty with that message instead.
   */
  async task(card, fetchData, render) {
    const generation = this.generation;
    card.loading();
    try {
      const data = await fetchData();
      if (generation !== this.generation) return;
      const emptyMessage = render(data);
      if (typeof emptyMessage === "string") card.empty(emptyMessage);
      else card.setState("ready");
    } catch (err) {
      if (generation !== this.generation || err.name === "AbortError") return;
      card.error(err, () => this.refresh());
      if (err.kind === "refused") this.ctx.refused(err);
      throw err;
    }
  }

  /**
   * Run the tasks of one load; the panel's data-state is `error` if any failed. When the
   * cards failed for one reason (the gateway is down, say) it is said once, above them.
   */
  async run(tasks) {
    const generation = ++this.generation;
    this.el.dataset.state = "loading";
    this.banner.hidden = true;
    const outcomes = await Promise.allSettled(tasks.map((t) => t()));
    if (generation !== this.generation) return;
    const failures = outcomes.filter((o) => o.status === "rejected").map((o) => o.reason);
    this.el.dataset.state = failures.length ? "error" : "ready";
    const reasons = new Set(failures.map((err) => err.message));
    if (failures.length > 1 && reasons.size === 1) {
      this.banner.replaceChildren(h("span", {}, failures[0].message),
        h("button", { type: "button", class: "link", onclick: () => this.refresh() }, "Retry"));
      this.banner.hidden = false;
      for (const card of this.el.querySelectorAll('.card[data-state="error"] .card-status')) {
        card.replaceChildren("Not loaded (see above).");
      }
    }
  }
}

/** Rows as CSV (RFC 4180), with cells that a spreadsheet would run as a formula defused. */
export function toCsv(columns, rows) {
  const cell = (value) => {
    if (value === null || value === undefined) return "";
    let text = String(value);
    if (/^[=@\t\r]/.test(text) || (/^[+-]/.test(text) && !/^[+-][\d\s().]*$/.test(text))) {
      text = `'${text}`;
    }
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [columns.map(cell).join(",")];
  for (const row of rows) lines.push(columns.map((c) => cell(row[c])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
