// The dashboard's entry point: sign-in with a read key (kept in sessionStorage only), the
// panel navigation, and the context the panels share (API client, window, event names).

import { Api, ApiError } from "./api.js";
import { chartsAvailable, resizeCharts } from "./charts.js";
import { h } from "./dom.js";
import { BreakdownsPanel } from "./panels/breakdowns.js";
import { CrashesPanel } from "./panels/crashes.js";
import { FunnelPanel } from "./panels/funnel.js";
import { LivePanel } from "./panels/live.js";
import { OverviewPanel } from "./panels/overview.js";
import { PathsPanel } from "./panels/paths.js";
import { PeoplePanel } from "./panels/people.js";
import { RetentionPanel } from "./panels/retention.js";
import { SegmentsPanel } from "./panels/segments.js";
import { TrendsPanel } from "./panels/trends.js";

const KEY_STORAGE = "cep.dashboard.readKey";
const WINDOW_STORAGE = "cep.dashboard.window";
const PANELS = [OverviewPanel, TrendsPanel, FunnelPanel, RetentionPanel, PathsPanel,
  SegmentsPanel, PeoplePanel, BreakdownsPanel, CrashesPanel, LivePanel];
// Suggestions for pickers: the event names and dimension values seen over this long.
const CATALOGUE_WINDOW = { last: "90d" };

const SIGN_IN = `query SignIn {
  sessionSettings { timeoutMinutes conversionEvents startEvents endEvents }
  about { version profile }
}`;

const CATALOGUE = `query Catalogue($window: TimeWindow) {
  events: featureUsage(window: $window, by: EVENT, first: 500, retentionDays: 1) { key }
  urls: featureUsage(window: $window, by: URL, first: 200, retentionDays: 1) { key }
  city: breakdown(metric: USERS, by: CITY, window: $window) { key }
  country: breakdown(metric: USERS, by: COUNTRY, window: $window) { key }
  os: breakdown(metric: USERS, by: OS, window: $window) { key }
  deviceType: breakdown(metric: USERS, by: DEVICE_TYPE, window: $window) { key }
}`;

// The event catalogue: names by volume, with the custom properties their latest events carry.
const DEFINITIONS = `query EventDefinitions($window: TimeWindow) {
  eventDefinitions(window: $window, first: 500) { name count users properties { key count } }
}`;

const $ = (id) => document.getElementById(id);

class Dashboard {
  constructor() {
    this.api = null;
    this.panels = new Map();
    this.current = null;
    this.catalogue = null;
    this.definitions = null;
    this.settings = null;
  }

  boot() {
    if (!chartsAvailable()) {
      this.fatal("The chart library (Apache ECharts) did not load from /dashboard/vendor/. " +
        "Run make dashboard on the gateway's machine, then reload this page.");
      return;
    }
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn($("read-key").value.trim());
    });
    $("signout").addEventListener("click", () => this.signOut());
    const picker = $("window");
    picker.value = sessionStorage.getItem(WINDOW_STORAGE) || picker.value;
    picker.addEventListener("change", () => {
      sessionStorage.setItem(WINDOW_STORAGE, picker.value);
      this.current?.refresh();
    });
    window.addEventListener("hashchange", () => this.route());
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.current && resizeCharts(this.current.el), 100);
    });
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) {
      $("boot").textContent = "Signing in…";
      this.signIn(key);
    } else {
      this.showSignIn();
    }
  }

  fatal(message) {
    $("boot").hidden = true;
    $("signin").hidden = true;
    $("app").hidden = true;
    const box = $("fatal");
    box.replaceChildren(h("h1", {}, "The dashboard cannot start"), h("p", {}, message));
    box.hidden = false;
  }

  showSignIn(message = "") {
    this.current?.hide();
    this.current = null;
    $("boot").hidden = true;
    $("app").hidden = true;
    $("signin").hidden = false;
    const error = $("signin-error");
    error.textContent = message;
    error.hidden = !message;
    $("signin-form").dataset.state = message ? "error" : "idle";
    $("read-key").focus();
  }

  async signIn(key) {
    const form = $("signin-form");
    if (!key) {
      this.showSignIn("Paste a project's read key first.");
      return;
    }
    form.dataset.state = "loading";
    form.querySelector("button").disabled = true;
    const api = new Api(key);
    let answer;
    try {
      answer = await api.query(SIGN_IN);
    } catch (err) {
      // keep a key that was not refused (the gateway may just be restarting): one click on
      // Sign in tries it again
      if (err.kind === "refused") sessionStorage.removeItem(KEY_STORAGE);
      else $("read-key").value = key;
      this.showSignIn(err instanceof ApiError ? err.message : String(err));
      return;
    } finally {
      form.querySelector("button").disabled = false;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("read-key").value = "";
    this.api = api;
    this.settings = answer.sessionSettings;
    this.catalogue = null;
    this.definitions = null;
    $("whoami").textContent = `${key.slice(0, 10)}… · CEP ${answer.about.version} · ` +
      `${answer.about.profile}`;
    this.buildPanels();
    $("boot").hidden = true;
    $("signin").hidden = true;
    $("app").hidden = false;
    form.dataset.state = "idle";
    this.route();
  }

  signOut(message = "") {
    sessionStorage.removeItem(KEY_STORAGE);
    for (const panel of this.panels.values()) panel.hide();
    this.panels.clear();
    $("panels").replaceChildren();
    this.api = null;
    this.showSignIn(message);
  }

  /** The context every panel gets. */
  context() {
    return {
      api: this.api,
      settings: this.settings,
      window: () => ({ last: $("window").value }),
      windowLabel: () => $("window").selectedOptions[0].textContent.toLowerCase(),
      catalogue: () => this.loadCatalogue(),
      definitions: () => this.loadDefinitions(),
      refused: (err) => this.signOut(err.message),
      go: (id, params) => {
        window.location.hash = `#${id}`;
        if (params) this.panels.get(id)?.open?.(params);
      },
    };
  }

  /** Event names and dimension values for the pickers, fetched once per sign-in. */
  loadCatalogue() {
    if (!this.catalogue) {
      const keys = (rows) => rows.map((r) => r.key).filter((k) => k);
      this.catalogue = this.api.query(CATALOGUE, { window: CATALOGUE_WINDOW }).then((d) => ({
        events: d.events.map((e) => e.key).sort((a, b) => a.localeCompare(b)),
        urls: keys(d.urls), // most used first
        dims: { city: keys(d.city), country: keys(d.country), os: keys(d.os),
          deviceType: keys(d.deviceType) },
      }));
      this.catalogue.catch(() => {
        this.catalogue = null; // try again next time a panel asks
      });
    }
    return this.catalogue;
  }

  /** `eventDefinitions` over the catalogue's window (most events first), once per sign-in. */
  loadDefinitions() {
    if (!this.definitions) {
      this.definitions = this.api.query(DEFINITIONS, { window: CATALOGUE_WINDOW })
        .then((d) => d.eventDefinitions);
      this.definitions.catch(() => {
        this.definitions = null; // try again next time a panel asks
      });
    }
    return this.definitions;
  }

  buildPanels() {
    const ctx = this.context();
    const nav = $("nav");
    nav.replaceChildren();
    $("panels").replaceChildren();
    this.panels.clear();
    for (const Panel of PANELS) {
      const panel = new Panel(ctx);
      this.panels.set(panel.id, panel);
      $("panels").append(panel.el);
      nav.append(h("a", { href: `#${panel.id}`, "data-nav": panel.id }, panel.title));
    }
  }

  route() {
    if (!this.api) return;
    const id = window.location.hash.slice(1);
    const panel = this.panels.get(id) || this.panels.get("overview");
    if (panel === this.current) return;
    this.current?.hide();
    if (this.current) this.current.el.hidden = true;
    this.current = panel;
    for (const link of $("nav").querySelectorAll("a")) {
      if (link.dataset.nav === panel.id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    panel.el.hidden = false;
    document.title = `${panel.title} · CEP dashboard`;
    panel.refresh();
  }
}

new Dashboard().boot();
