// Overview: today's sessions, session length, purchase rate, DAU/WAU/MAU and stickiness,
// crash rate, top landing pages and sessions per day.

import { chartBox, drawChart } from "../charts.js";
import { Card, Panel, fmt, h, kpi, table } from "../dom.js";

const QUERY = `query Overview($window: TimeWindow!, $today: TimeWindow!) {
  today: sessionMetrics(window: $today) { count }
  period: sessionMetrics(window: $window) {
    count averageDurationSeconds purchaseSessionRate bounceRate averageEventsPerSession
    perDay { day sessions }
    topLandingPages(first: 10) { url sessions }
  }
  engagement(window: $window) { activeUsers dau wau mau stickiness sessionsPerUser }
  crashes(window: $window, first: 1) { crashes sessions crashesPer1000Sessions crashFreeUsers }
}`;
// Asked only when the window is empty: has the project ever had a session?
const EVER = "query Ever { sessions(first: 1) { totalCount } }";

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

export class OverviewPanel extends Panel {
  constructor(ctx) {
    super(ctx, { id: "overview", title: "Overview",
      intro: "How many people use the app, for how long, and how often it ends in a purchase." });
    this.kpis = new Card("Key figures", { id: "kpis", wide: true });
    this.perDay = new Card("Sessions per day", { id: "sessions-per-day", wide: true });
    this.landing = new Card("Top landing pages", { id: "landing-pages" });
    this.grid.append(this.kpis.el, this.perDay.el, this.landing.el);
  }

  async refresh() {
    const answer = async () => {
      const d = await this.ctx.api.query(QUERY, {
        window: this.ctx.window(), today: { from: startOfToday() } });
      if (d.period.count === 0 && d.engagement.activeUsers === 0) {
        d.everSessions = (await this.ctx.api.query(EVER)).sessions.totalCount;
      }
      return d;
    };
    let shared = null;
    const once = () => (shared ??= answer());
    await this.run([
      () => this.task(this.kpis, once, (d) => this.renderKpis(d)),
      () => this.task(this.perDay, once, (d) => this.renderPerDay(d)),
      () => this.task(this.landing, once, (d) => this.renderLanding(d)),
    ]);
  }

  renderKpis(d) {
    const p = d.period;
    const e = d.engagement;
    if (d.everSessions === 0) {
      return "No data yet: this project has not received any events. Send some to " +
        "POST /v1/events with its write key; they show here within seconds.";
    }
    if (d.everSessions !== undefined) {
      return `No sessions in the ${this.ctx.windowLabel()}: pick a longer window.`;
    }
    this.kpis.show(h("div", { class: "kpis" },
      kpi("Sessions today", fmt.int(d.today.count), { id: "sessions-today" }),
      kpi(`Sessions, ${this.ctx.windowLabel()}`, fmt.int(p.count), { id: "sessions",
        hint: `${fmt.dec(p.averageEventsPerSession)} events each, ` +
          `${fmt.pct(p.bounceRate, 0)} bounced` }),
      kpi("Average session length", fmt.duration(p.averageDurationSeconds),
        { id: "average-session" }),
      kpi("Sessions ending in purchase", fmt.pct(p.purchaseSessionRate),
        { id: "purchase-rate" }),
      kpi("DAU", fmt.int(e.dau), { id: "dau", hint: "users active in the last day" }),
      kpi("WAU", fmt.int(e.wau), { id: "wau", hint: "in the last 7 days" }),
      kpi("MAU", fmt.int(e.mau), { id: "mau", hint: "in the last 30 days" }),
      kpi("Stickiness", fmt.pct(e.stickiness), { id: "stickiness", hint: "DAU / MAU" }),
      kpi("Crash rate", `${fmt.dec(d.crashes.crashesPer1000Sessions)} ‰`, { id: "crash-rate",
        hint: `crashes per 1,000 sessions; ${fmt.pct(d.crashes.crashFreeUsers)} of users ` +
          "crash-free" })));
    return undefined;
  }

  renderPerDay(d) {
    const days = d.period.perDay;
    if (!days.length) return "No sessions in this window yet.";
    const box = chartBox("sessions-per-day", 280);
    this.perDay.show(box);
    drawChart(box, {
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: days.map((x) => x.day) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", name: "Sessions", data: days.map((x) => x.sessions),
        barMaxWidth: 36 }],
    });
    return undefined;
  }

  renderLanding(d) {
    const pages = d.period.topLandingPages;
    if (!pages.length) return "No landing pages: no session in this window sent a URL.";
    const top = pages[0].sessions || 1;
    this.landing.show(table([
      { label: "Page", value: (r) => r.url, key: "url" },
      { label: "Sessions", num: true, key: "sessions", value: (r) => fmt.int(r.sessions) },
      { label: "", value: (r) => h("span", { class: "bar",
        style: `width: ${Math.round((r.sessions / top) * 100)}%` }) },
    ], pages));
    return undefined;
  }
}
