// targets studio: metric charts (uPlot, vendored), for a run's metrics fragment, the
// compare page and a sweep's trials. Everything is drawn from JSON the server gives in
// data- attributes (the CSP forbids inline scripts):
//
//   <section class="studio-metrics" data-src="/runs/ID/metrics.json" data-live="true">
//     one chart per metric; while a run is open the JSON is fetched again every few
//     seconds and the charts are updated in place (uPlot's setData).
//   <div class="trial-chart" data-trials='[{"x", "label", "value", "best"}]'>
//     the primary metric per trial of a sweep, the best trial marked.
//
// Each metric chart's element carries what it shows in data-series
// ([{"run", "label", "points": [[step, timestamp, value], ...]}]), also kept in
// window.studioCharts[metric]: what a user sees, readable by tests and tools.
"use strict";

(function () {
  if (window.studioMetrics) {
    window.studioMetrics.scan(document);
    return;
  }
  const REFRESH_MS = 3000;
  const COLORS = ["#0b63ce", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#1b7c83", "#57606a"];
  window.studioCharts = window.studioCharts || {};

  let uplotLoading = null;
  function loadUPlot() {
    if (window.uPlot) return Promise.resolve(window.uPlot);
    if (!uplotLoading) {
      uplotLoading = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = "/static/vendor/uPlot-1.6.32.min.css";
        document.head.appendChild(css);
        const script = document.createElement("script");
        script.src = "/static/vendor/uPlot-1.6.32.iife.min.js";
        script.onload = () => resolve(window.uPlot);
        script.onerror = () => reject(new Error("uPlot could not be loaded"));
        document.head.appendChild(script);
      });
    }
    return uplotLoading;
  }

  // Ticks at whole steps and trial numbers only.
  const WHOLE = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9];

  function chartWidth(el) {
    return Math.max(260, (el.clientWidth || 440) - 16);
  }

  // One run's points of one metric as [xs, ys] for the axis: steps when they increase
  // (else the order logged), or times (seconds; equal times nudged apart: uPlot wants a
  // strictly increasing x).
  function column(points, axis) {
    const xs = [];
    const ys = [];
    let byIndex = false;
    if (axis === "step") {
      for (let i = 1; i < points.length; i++) {
        if (points[i].step <= points[i - 1].step) { byIndex = true; break; }
      }
    }
    let last = -Infinity;
    points.forEach((p, i) => {
      let x = axis === "time" ? p.timestamp : (byIndex ? i : p.step);
      if (axis === "time") {
        if (x <= last) x = last + 1e-3;
        last = x;
      }
      xs.push(x);
      ys.push(p.value);
    });
    return { xs, ys, byIndex };
  }

  function aligned(uPlot, columns) {
    if (columns.length === 1) return [columns[0].xs, columns[0].ys];
    return uPlot.join(columns.map((c) => [c.xs, c.ys]));
  }

  function makePlot(uPlot, el, name, runs, axis, data, byIndex) {
    const xLabel = axis === "time" ? "time" : (byIndex ? "order logged" : "step");
    const opts = {
      width: chartWidth(el),
      height: 220,
      scales: { x: { time: axis === "time" } },
      series: [{ label: xLabel }].concat(
        runs.map((run, i) => ({
          label: run.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: true,
          points: { show: data[0].length <= 60 },
        }))
      ),
      axes: [axis === "time" ? { label: xLabel } : { label: xLabel, incrs: WHOLE }, {}],
      legend: { show: true },
    };
    return new uPlot(opts, data, el.querySelector(".plot"));
  }

  class MetricsView {
    constructor(root) {
      this.root = root;
      this.src = root.dataset.src;
      this.axis = "step";
      this.charts = new Map(); // metric -> {el, plot, axis, count}
      this.timer = null;
      root.querySelectorAll("[data-axis]").forEach((button) => {
        button.addEventListener("click", () => this.setAxis(button.dataset.axis));
      });
      this.onResize = () => this.charts.forEach((c) => c.plot && c.plot.setSize({ width: chartWidth(c.el), height: 220 }));
      window.addEventListener("resize", this.onResize);
      this.fetch();
    }

    alive() {
      return document.body.contains(this.root);
    }

    setAxis(axis) {
      if (axis === this.axis) return;
      this.axis = axis;
      this.root.querySelectorAll("[data-axis]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.axis === axis)));
      this.charts.forEach((c) => { if (c.plot) c.plot.destroy(); c.plot = null; });
      if (this.data) this.render(this.data);
    }

    fetch() {
      clearTimeout(this.timer);
      if (!this.alive()) { window.removeEventListener("resize", this.onResize); return; }
      Promise.all([loadUPlot(), fetch(this.src, { headers: { Accept: "application/json" } }).then((r) => {
        if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
        return r.json();
      })]).then(([, data]) => {
        this.data = data;
        this.render(data);
        this.root.dataset.loaded = String((Number(this.root.dataset.loaded) || 0) + 1);
        const open = data.runs ? data.open : data.open;
        this.root.dataset.live = String(Boolean(open));
        if (open) this.timer = setTimeout(() => this.fetch(), REFRESH_MS);
      }).catch((err) => {
        this.state(`could not load the metrics: ${err.message}`);
        if (this.root.dataset.live === "true") this.timer = setTimeout(() => this.fetch(), REFRESH_MS * 2);
      });
    }

    state(text) {
      const el = this.root.querySelector(".metrics-state");
      if (el) el.textContent = text;
    }

    render(data) {
      const uPlot = window.uPlot;
      const runs = data.runs || [data];
      const names = Array.from(new Set(runs.flatMap((r) => Object.keys(r.metrics)))).sort();
      const grid = this.root.querySelector("[data-role=charts]");
      const empty = this.root.querySelector(".metrics-empty");
      if (empty) empty.hidden = names.length > 0;
      for (const name of names) {
        let chart = this.charts.get(name);
        if (!chart) {
          const el = document.createElement("div");
          el.className = "metric-chart";
          el.dataset.metric = name;
          const title = document.createElement("h3");
          title.textContent = name;
          const plot = document.createElement("div");
          plot.className = "plot";
          el.append(title, plot);
          grid.appendChild(el);
          chart = { el, plot: null, axis: null, count: 0 };
          this.charts.set(name, chart);
        }
        const shown = runs.map((r) => ({ run: r.id, label: r.label, points: (r.metrics[name] || []).map((p) => [p.step, p.timestamp, p.value]) }));
        chart.el.dataset.series = JSON.stringify(shown);
        window.studioCharts[name] = shown;
        const columns = runs.map((r) => column(r.metrics[name] || [], this.axis));
        const byIndex = columns.some((c) => c.byIndex);
        const data2 = aligned(uPlot, columns);
        if (chart.plot && chart.axis === this.axis && chart.count === runs.length && chart.byIndex === byIndex) {
          chart.plot.setData(data2);
        } else {
          if (chart.plot) chart.plot.destroy();
          chart.plot = makePlot(uPlot, chart.el, name, runs, this.axis, data2, byIndex);
          chart.axis = this.axis;
          chart.count = runs.length;
          chart.byIndex = byIndex;
        }
        chart.el.dataset.count = String(data2[0].length);
      }
      if (!data.runs) this.params(data.params || {});
      const errors = runs.filter((r) => r.sync_error).map((r) => (runs.length > 1 ? `${r.id}: ` : "") + r.sync_error);
      const box = this.root.querySelector(".metrics-sync-error");
      if (box) {
        box.hidden = errors.length === 0;
        const reason = box.querySelector(".reason");
        if (reason) reason.textContent = errors.join("; ");
      }
      const open = runs.filter((r) => r.open);
      this.state(open.length ? `live: ${open.map((r) => r.status).join(", ")} · updated ${new Date().toLocaleTimeString()}` : "");
    }

    params(params) {
      const body = this.root.querySelector("[data-role=params] tbody");
      if (!body) return;
      const names = Object.keys(params).sort();
      if (!names.length) return;
      body.replaceChildren(...names.map((name) => {
        const row = document.createElement("tr");
        for (const text of [name, params[name]]) {
          const cell = document.createElement("td");
          cell.className = "mono";
          cell.textContent = text;
          row.appendChild(cell);
        }
        return row;
      }));
    }
  }

  function drawTrials(el) {
    const trials = JSON.parse(el.dataset.trials || "[]");
    const host = document.createElement("div");
    host.className = "plot";
    el.appendChild(host);
    loadUPlot().then((uPlot) => {
      const xs = trials.map((t) => t.x);
      const values = trials.map((t) => t.value);
      const best = trials.map((t) => (t.best ? t.value : null));
      const metric = el.dataset.metric || "metric";
      const opts = {
        width: Math.min(chartWidth(el), 900),
        height: 220,
        scales: { x: { time: false } },
        series: [
          { label: "trial" },
          { label: metric, stroke: "#0b63ce", paths: () => null, points: { show: true, size: 8, fill: "#0b63ce" } },
          { label: "best", stroke: "#1a7f37", paths: () => null, points: { show: true, size: 14, fill: "#1a7f37" } },
        ],
        axes: [{ label: "trial", incrs: WHOLE }, { label: metric }],
      };
      el._plot = new uPlot(opts, [xs, values, best], host);
      el.dataset.drawn = "true";
    });
  }

  function scan(scope) {
    scope.querySelectorAll(".studio-metrics[data-src]:not([data-ready])").forEach((root) => {
      root.dataset.ready = "true";
      root._view = new MetricsView(root);
    });
    scope.querySelectorAll(".trial-chart[data-trials]:not([data-ready])").forEach((el) => {
      el.dataset.ready = "true";
      drawTrials(el);
    });
  }

  window.studioMetrics = { scan };
  const start = () => {
    scan(document);
    // Fragments loaded by htmx (the run page's metrics and children, their own polling).
    document.body.addEventListener("htmx:afterSettle", () => scan(document));
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
