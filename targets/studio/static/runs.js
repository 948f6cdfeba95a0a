// targets studio: the runs table (/runs).
// - live statuses: an EventSource on the table's data-events URL (GET /runs/events) updates
//   the status and duration cells of the rows shown, and shows "N new runs · show" when runs
//   newer than the table match its filters;
// - child runs: the "N child runs" toggle loads the rows with htmx (GET
//   /runs/{id}/children-rows) and, clicked again, folds them away.
"use strict";

(function () {
  // htmx runs this file again when it restores a page from its history: one copy is enough
  // (its listeners are on the document, which stays).
  if (window.studioRunsTable) return;
  window.studioRunsTable = true;
  let source = null;
  let sourceUrl = null;

  function rowsOf(runId) {
    return document.querySelectorAll(`tr[data-run="${CSS.escape(runId)}"]`);
  }

  function showRuns(news) {
    for (const run of news.runs) {
      for (const row of rowsOf(run.id)) {
        const badge = row.querySelector("td.status-cell .status");
        if (badge && badge.textContent !== run.status) {
          badge.textContent = run.status;
          badge.className = "status status-" + run.status;
        }
        const duration = row.querySelector("td.duration");
        if (duration) duration.textContent = run.duration;
      }
    }
    const notice = document.getElementById("runs-new");
    if (!notice) return;
    if (news.new > 0) {
      const count = news.new_capped ? `${news.new}+` : String(news.new);
      notice.querySelector(".count").textContent =
        `${count} new run${news.new === 1 ? "" : "s"}`;
      notice.hidden = false;
    } else {
      notice.hidden = true;
    }
  }

  // One connection per page, for the table shown (a new table may have other filters).
  function connect() {
    const table = document.getElementById("runs-table");
    const url = table ? table.dataset.events : null;
    if (source && url === sourceUrl) return;
    if (source) source.close();
    source = null;
    sourceUrl = url;
    if (!url) return;
    source = new EventSource(url);
    source.addEventListener("runs", (event) => showRuns(JSON.parse(event.data)));
  }

  function foldChildren(runId) {
    for (const row of document.querySelectorAll(`tr.child[data-parent="${CSS.escape(runId)}"]`)) {
      if (row.dataset.run) foldChildren(row.dataset.run);
      row.remove();
    }
  }

  // An open toggle folds its rows instead of loading them again.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const toggle = event.detail.elt;
    if (!toggle.classList || !toggle.classList.contains("kids")) return;
    if (toggle.getAttribute("aria-expanded") === "true") {
      event.preventDefault();
      foldChildren(toggle.dataset.kidsOf);
      toggle.setAttribute("aria-expanded", "false");
    }
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const toggle = event.detail.elt;
    if (toggle.classList && toggle.classList.contains("kids") && event.detail.successful) {
      toggle.setAttribute("aria-expanded", "true");
    }
  });

  document.addEventListener("htmx:afterSettle", connect);
  document.addEventListener("htmx:historyRestore", connect);
  document.addEventListener("DOMContentLoaded", connect);
  window.addEventListener("pagehide", () => {
    if (source) source.close();
    source = null;
    sourceUrl = null;
  });
  window.addEventListener("pageshow", connect);
})();
