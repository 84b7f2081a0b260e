// Segment explorer: users active in the window who match a filter, page by page, with their
// place, device and contact fields; the whole segment as CSV.

import { Card, Panel, download, fmt, h, table, toCsv } from "../dom.js";
import { SegmentForm } from "../segment-form.js";

const SEGMENT = `query Segment($filter: SegmentFilter, $window: TimeWindow, $first: Int!,
    $after: String) {
  segment(filter: $filter, window: $window, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } rows
  }
}`;

const PAGE_SIZE = 25;
const EXPORT_PAGE_SIZE = 1000;
const COLUMNS = ["userId", "city", "state", "country", "postalCode", "lat", "long",
  "deviceType", "os", "appVersion", "gender", "age", "email", "phone"];

export class SegmentsPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "segments", title: "Segments",
      intro: "Users active in the window who match every filter you set; profile traits win " +
        "over what was inferred from IP address and user agent." });
    this.users = new Card("Users", { id: "segment-users", wide: true });
    this.grid.append(this.users.el);
    this.form = null;
    this.cursors = [null]; // the `after` of each page seen, for Previous
    this.exporting = false;
  }

  async refresh() {
    const fallback = { events: [], dims: { city: [], country: [], os: [], deviceType: [] } };
    await this.ensureForm(fallback, (catalogue) => this.buildForm(catalogue));
    this.cursors = [null];
    await this.loadPage();
  }

  buildForm({ events, dims }) {
    this.segment = new SegmentForm({ dims, events, prefix: "segment" });
    this.form = h("form", { class: "builder", onsubmit: (e) => {
      e.preventDefault();
      this.refresh();
    } },
    this.segment.el,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, "Apply filters"),
      h("button", { type: "reset", class: "secondary", onclick: () => {
        setTimeout(() => this.refresh(), 0); // after the form has been reset
      } }, "Clear")));
    this.controls.replaceChildren(this.form);
  }

  async loadPage() {
    const vars = { filter: this.segment.value(), window: this.ctx.window(), first: PAGE_SIZE,
      after: this.cursors[this.cursors.length - 1] };
    this.shown = vars;
    await this.run([() => this.task(this.users, () => this.ctx.api.query(SEGMENT, vars),
      (d) => this.render(d.segment, vars))]);
  }

  render(segment, vars) {
    if (segment.totalCount === 0) {
      return vars.filter
        ? `Nobody active in the ${this.ctx.windowLabel()} matches ${this.segment.describe()}.`
        : `No users were active in the ${this.ctx.windowLabel()} yet.`;
    }
    const page = this.cursors.length;
    const first = (page - 1) * PAGE_SIZE + 1;
    const last = first + segment.rows.length - 1;
    const status = this.exporting ? "Exporting…" : "Export CSV";
    this.users.show(
      h("div", { class: "row spread" },
        h("p", { class: "note", "data-total": segment.totalCount },
          `${fmt.int(segment.totalCount)} users match ${this.segment.describe()} ` +
          `(showing ${fmt.int(first)}–${fmt.int(last)}).`),
        h("div", { class: "row" },
          h("button", { type: "button", class: "secondary", disabled: page === 1,
            onclick: () => {
              this.cursors.pop();
              this.loadPage();
            } }, "Previous"),
          h("button", { type: "button", class: "secondary",
            disabled: !segment.pageInfo.hasNextPage, onclick: () => {
              this.cursors.push(segment.pageInfo.endCursor);
              this.loadPage();
            } }, "Next"),
          h("button", { type: "button", class: "primary", "data-action": "export-csv",
            disabled: this.exporting, onclick: (e) => this.exportCsv(e.currentTarget) },
          status))),
      table([
        { label: "User", key: "userId", value: (r) => h("a", { href: "#people",
          title: "Open this user's page", onclick: (e) => {
            e.preventDefault();
            this.ctx.go("people", { userId: r.userId });
          } }, r.userId) },
        { label: "City", key: "city", value: (r) => r.city || "–" },
        { label: "Country", key: "country", value: (r) => r.country || "–" },
        { label: "Device", key: "deviceType", value: (r) => r.deviceType || "–" },
        { label: "OS", key: "os", value: (r) => r.os || "–" },
        { label: "App", key: "appVersion", value: (r) => r.appVersion || "–" },
        { label: "Gender", key: "gender", value: (r) => r.gender || "–" },
        { label: "Age", key: "age", num: true, value: (r) => fmt.int(r.age) },
        { label: "Email", key: "email", value: (r) => r.email || "–" },
        { label: "Phone", key: "phone", value: (r) => r.phone || "–" },
      ], segment.rows, { attrs: (r) => ({ "data-user": r.userId }) }),
    );
    return undefined;
  }

  /** Every page of the segment shown (not just this page) as one CSV file. */
  async exportCsv(button) {
    if (this.exporting) return;
    this.exporting = true;
    button.disabled = true;
    button.textContent = "Exporting…";
    const rows = [];
    try {
      let after = null;
      do {
        const page = (await this.ctx.api.query(SEGMENT,
          { ...this.shown, first: EXPORT_PAGE_SIZE, after })).segment;
        rows.push(...page.rows);
        button.textContent = `Exporting… ${fmt.int(rows.length)} of ${fmt.int(page.totalCount)}`;
        after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      } while (after);
      download("segment-users.csv", toCsv(COLUMNS, rows));
      button.textContent = `Exported ${fmt.int(rows.length)} users`;
    } catch (err) {
      button.textContent = "Export CSV";
      this.users.setState("error", `Export failed: ${err.message}`);
      if (err.kind === "refused") this.ctx.refused(err);
    } finally {
      this.exporting = false;
      button.disabled = false;
    }
  }
}
