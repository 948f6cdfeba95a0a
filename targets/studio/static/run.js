// targets studio: the page of one run (templates/run/page.html).
// - the status: EventSource /runs/ID/events replaces the summary as the record changes,
//   ticks the duration, and says "run-ended" (on <body>) once, for the parts that depend
//   on the end (outputs, metrics, children: hx-trigger="... run-ended from:body");
// - the log: EventSource /runs/ID/log/events?file=NAME; each event's id is the byte
//   offset after it, so a reconnect resumes where the page left it. The <pre id="log">
//   keeps at most MAX_CHARS characters (the oldest lines go) and gets
//   data-caught-up="true" once it shows everything the file had.
"use strict";

(function () {
  const MAX_CHARS = 600000; // characters the log element keeps at most
  const KEEP_CHARS = 450000; // what a trim leaves (trims are rare, not per event)

  function fmtSize(n) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  }

  function fmtDuration(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    let minutes = Math.floor(seconds / 60);
    const sec = Math.floor(seconds % 60);
    if (minutes < 60) return `${minutes}m${String(sec).padStart(2, "0")}s`;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    return `${hours}h${String(minutes).padStart(2, "0")}m`;
  }

  // -- the log ------------------------------------------------------------------------

  class LogView {
    constructor(pre, quotedId) {
      this.pre = pre;
      this.quotedId = quotedId;
      this.state = document.getElementById("log-state");
      this.note = document.getElementById("log-note");
      this.es = null;
      this.pending = [];
      this.pendingChars = 0;
      this.chars = 0;
      this.dropped = false;
      this.tail = null; // {start, size} when the page began inside the file
      this.frame = 0;
    }

    say(text) {
      if (this.state) this.state.textContent = text;
    }

    showNote() {
      if (!this.note) return;
      const parts = [];
      if (this.tail) {
        parts.push(`showing the last ${fmtSize(this.tail.size - this.tail.start)} of ${fmtSize(this.tail.size)}`);
      }
      if (this.dropped) parts.push("older lines are no longer shown");
      this.note.textContent = parts.length ? `${parts.join("; ")}: download the whole log` : "";
      this.note.hidden = parts.length === 0;
    }

    start(file, offset) {
      this.stop();
      this.pre.textContent = "";
      this.pending = [];
      this.pendingChars = 0;
      this.chars = 0;
      this.dropped = false;
      this.tail = null;
      this.showNote();
      this.pre.dataset.file = file;
      this.pre.dataset.caughtUp = "false";
      let url = `/runs/${this.quotedId}/log/events?file=${encodeURIComponent(file)}`;
      if (offset) url += `&offset=${encodeURIComponent(offset)}`;
      const es = new EventSource(url);
      this.es = es;
      this.say("connecting…");
      es.addEventListener("info", (ev) => {
        const info = JSON.parse(ev.data);
        if (this.chars === 0 && this.pendingChars === 0 && info.start > 0 && !offset) {
          this.tail = { start: info.start, size: info.size };
          this.showNote();
        }
      });
      es.addEventListener("log", (ev) => {
        this.append(JSON.parse(ev.data).text);
        if (this.pre.dataset.caughtUp === "true") this.say("live");
        else this.say("loading…");
      });
      es.addEventListener("caught-up", (ev) => {
        const data = JSON.parse(ev.data);
        this.flush();
        this.pre.dataset.caughtUp = "true";
        if (data.ended) {
          es.close();
          this.say("complete");
        } else {
          this.say("live");
        }
      });
      es.addEventListener("problem", (ev) => {
        this.say(`the target could not be asked: ${JSON.parse(ev.data).message}`);
      });
      es.onerror = () => {
        if (es !== this.es) return;
        this.say(es.readyState === EventSource.CLOSED ? "stopped: reload the page" : "reconnecting…");
      };
    }

    stop() {
      if (this.es) this.es.close();
      this.es = null;
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
    }

    append(text) {
      if (!text) return;
      this.pending.push(text);
      this.pendingChars += text.length;
      // A hidden tab gets no animation frames: what waits is bounded too.
      while (this.pending.length > 1 && this.pendingChars - this.pending[0].length > MAX_CHARS) {
        this.pendingChars -= this.pending.shift().length;
        this.dropped = true;
      }
      if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
    }

    flush() {
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
      if (!this.pending.length) return;
      const pre = this.pre;
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
      let text = this.pending.join("");
      this.pending = [];
      this.pendingChars = 0;
      if (text.length > MAX_CHARS) {
        text = text.slice(text.length - KEEP_CHARS);
        const newline = text.indexOf("\n");
        if (newline >= 0 && newline < 4096) text = text.slice(newline + 1);
        this.pre.textContent = "";
        this.chars = 0;
        this.dropped = true;
      }
      pre.appendChild(document.createTextNode(text));
      this.chars += text.length;
      if (this.chars > MAX_CHARS) this.trim();
      this.showNote();
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }

    // Drop the oldest text until KEEP_CHARS are left, at a line's start where one is near.
    trim() {
      let excess = this.chars - KEEP_CHARS;
      const pre = this.pre;
      while (excess > 0 && pre.firstChild) {
        const node = pre.firstChild;
        const length = node.textContent.length;
        if (length <= excess) {
          pre.removeChild(node);
          excess -= length;
          this.chars -= length;
          continue;
        }
        const newline = node.data.indexOf("\n", excess);
        const cut = newline >= 0 && newline - excess < 4096 ? newline + 1 : excess;
        node.deleteData(0, cut);
        this.chars -= cut;
        excess = 0;
      }
      this.dropped = true;
    }
  }

  // -- the status ---------------------------------------------------------------------

  function followStatus(quotedId, onEnded) {
    const es = new EventSource(`/runs/${quotedId}/events`);
    es.addEventListener("status", (ev) => {
      const data = JSON.parse(ev.data);
      const old = document.getElementById("run-summary");
      if (old) {
        const box = document.createElement("div");
        box.innerHTML = data.html;
        const fresh = box.querySelector("#run-summary");
        if (fresh && fresh.outerHTML !== old.outerHTML) {
          old.replaceWith(fresh);
          if (window.htmx) htmx.process(fresh);
        }
      }
      const cancel = document.getElementById("cancel-run");
      const terminal = ["Completed", "Failed", "Canceled"].includes(data.record.status);
      if (cancel) cancel.hidden = terminal;
      if (data.ended) {
        es.close();
        onEnded();
      }
    });
    return es;
  }

  function tickDuration() {
    const summary = document.getElementById("run-summary");
    const shown = document.getElementById("run-duration");
    if (!summary || !shown || summary.dataset.terminal === "true") return;
    const started = parseFloat(summary.dataset.started);
    if (!started) return;
    shown.textContent = fmtDuration(Math.max(0, Date.now() / 1000 - started));
  }

  async function refreshLogFiles(quotedId, select) {
    try {
      const answer = await fetch(`/runs/${quotedId}/log/files`, { credentials: "same-origin" });
      if (!answer.ok) return;
      const names = await answer.json();
      const have = new Set(Array.from(select.options, (o) => o.value));
      for (const name of names) {
        if (!have.has(name)) select.add(new Option(name, name));
      }
    } catch (err) {
      // the list stays as it was; the page goes on
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("run");
    const pre = document.getElementById("log");
    if (!section || !pre) return;
    const quotedId = section.dataset.quotedId;
    const select = document.getElementById("log-file");
    const download = document.getElementById("log-download");
    const view = new LogView(pre, quotedId);
    view.start(pre.dataset.file || "driver.log", pre.dataset.offset || "");

    if (select) {
      select.addEventListener("change", () => {
        const file = select.value;
        if (download) download.href = `/runs/${quotedId}/files/${file.split("/").map(encodeURIComponent).join("/")}`;
        const url = new URL(window.location.href);
        url.searchParams.set("file", file);
        url.searchParams.delete("offset");
        history.replaceState(null, "", url);
        view.start(file, "");
      });
    }

    const summary = document.getElementById("run-summary");
    if (!summary || summary.dataset.ended !== "true") {
      followStatus(quotedId, () => {
        document.body.dispatchEvent(new CustomEvent("run-ended"));
        if (select) refreshLogFiles(quotedId, select);
      });
      setInterval(tickDuration, 1000);
    }
  });
})();
