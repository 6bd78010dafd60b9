// harness view: the little script the pages use. Served as a file (the pages' Content-Security-Policy forbids
// inline scripts). It only reads and reorders what the server rendered; run text is never put into HTML.
"use strict";

(function () {
  const PAGE = 100;

  // ---------------------------------------------------------------------------------------- cases, static bundle
  // In an exported bundle every row is in the page: filter, sort and page them here, as the server does there.
  function staticCases(table) {
    const form = document.getElementById("case-filters");
    const body = table.tBodies[0];
    const all = Array.from(body.rows);
    let sortKey = "", desc = false, page = 1, shown = all;

    function matches(row) {
      const f = new FormData(form);
      for (const name of ["category", "tier", "variant"]) {
        const want = f.get(name);
        if (want && row.dataset[name] !== want) return false;
      }
      const grade = f.get("grade");
      if (grade && row.dataset.grade !== grade) return false;
      const score = row.dataset.score === "" ? NaN : Number(row.dataset.score);
      const lo = f.get("score_min"), hi = f.get("score_max");
      if (lo !== "" && !(score >= Number(lo))) return false;
      if (hi !== "" && !(score <= Number(hi))) return false;
      if (f.get("cbw") && row.dataset.cbw !== "1") return false;
      const failure = f.get("failure");
      if (failure && row.dataset.failure !== failure) return false;
      const text = (f.get("q") || "").toLowerCase();
      if (text && !row.dataset.text.includes(text)) return false;
      return true;
    }

    function cellValue(row, index, numeric) {
      const raw = row.cells[index].dataset.sort;
      if (!numeric) return raw;
      return raw === "" ? null : Number(raw);
    }

    function render() {
      shown = all.filter(matches);
      const headers = Array.from(table.tHead.rows[0].cells);
      const index = headers.findIndex((th) => th.dataset.key === sortKey);
      if (index >= 0) {
        const numeric = headers[index].dataset.numeric === "1";
        const order = shown.map((row, i) => [cellValue(row, index, numeric), i, row]);
        order.sort((x, y) => {
          if (x[0] === null || y[0] === null) return (x[0] === null) - (y[0] === null) || x[1] - y[1];
          const c = numeric ? x[0] - y[0] : String(x[0]).localeCompare(String(y[0]));
          return (desc ? -c : c) || x[1] - y[1];
        });
        shown = order.map((entry) => entry[2]);
      }
      const pages = Math.max(1, Math.ceil(shown.length / PAGE));
      page = Math.min(page, pages);
      const visible = new Set(shown.slice((page - 1) * PAGE, page * PAGE));
      for (const row of all) row.classList.toggle("hidden", !visible.has(row));
      for (const row of shown) body.appendChild(row);
      document.getElementById("match-count").textContent = String(shown.length);
      document.getElementById("page-number").textContent = String(page);
      document.getElementById("page-count").textContent = String(pages);
      for (const th of headers) {
        th.classList.toggle("sorted-asc", th.dataset.key === sortKey && !desc);
        th.classList.toggle("sorted-desc", th.dataset.key === sortKey && desc);
      }
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); page = 1; render(); });
    document.getElementById("clear-filter").addEventListener("click", (event) => {
      event.preventDefault(); form.reset(); page = 1; render();
    });
    for (const link of table.tHead.querySelectorAll("a.sort")) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        const key = link.parentElement.dataset.key;
        desc = sortKey === key ? !desc : false;
        sortKey = key;
        page = 1;
        render();
      });
    }
    document.getElementById("prev-page").addEventListener("click", () => { page = Math.max(1, page - 1); render(); });
    document.getElementById("next-page").addEventListener("click", () => { page += 1; render(); });
    render();
  }

  // ---------------------------------------------------------------------------------------- labelling keys
  function labelKeys(form) {
    const sets = Array.from(form.querySelectorAll("fieldset.criterion"));
    let current = 0;
    function mark() { sets.forEach((set, i) => set.classList.toggle("current", i === current)); }
    mark();
    for (const [i, set] of sets.entries()) {
      set.addEventListener("change", () => { current = Math.min(i + 1, sets.length - 1); mark(); });
    }
    document.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement && event.target.type === "text") {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const max = sets.length ? sets[0].querySelectorAll("input[type=radio]").length - 1 : -1;
      if (/^[0-9]$/.test(event.key) && Number(event.key) <= max && sets.length) {
        const input = sets[current].querySelector(`input[value="${event.key}"]`);
        input.checked = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
        event.preventDefault();
      } else if (event.key === "w") {
        const flag = document.getElementById("cbw"); flag.checked = !flag.checked; event.preventDefault();
      } else if (event.key === "n") {
        document.getElementById("note").focus(); event.preventDefault();
      } else if (event.key === "s") {
        document.getElementById("skip").click(); event.preventDefault();
      } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
        current = Math.max(0, Math.min(sets.length - 1, current + (event.key === "ArrowUp" ? -1 : 1))); mark();
        event.preventDefault();
      } else if (event.key === "Enter") {
        event.preventDefault(); form.requestSubmit();
      }
    });
  }

  // ---------------------------------------------------------------------------------------- a table being built
  // A big run's first page is shown before its table is built; ask the server (it answers once the table is
  // built, or after a while) and reload when it is.
  function whenBuilt(note) {
    const url = note.dataset.ready;
    if (!url) return;
    const ask = () => fetch(url, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((state) => { if (state.ready) location.reload(); else ask(); })
      .catch(() => setTimeout(ask, 5000));
    ask();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const note = document.getElementById("indexing");
    if (note) whenBuilt(note);
    const table = document.getElementById("cases");
    if (table && document.body.dataset.mode === "static") staticCases(table);
    const form = document.getElementById("label-form");
    if (form) labelKeys(form);
  });
})();
