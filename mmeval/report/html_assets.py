"""The inline CSS and JavaScript of ``mmeval report html`` (kept as strings so the page needs no files
and the package needs no data files).  The JS builds the sample browser from the JSON block
``#sample-data`` and switches the per-category charts; it writes data only through ``textContent``.
"""

CSS = """
:root { --fg:#1f2933; --muted:#5f6b7a; --line:#d9dee5; --bg:#f5f7fa; --card:#fff; --accent:#2f6db5;
        --meas:#eef5ff; --good:#1e8e3e; --bad:#c5221f; --part:#b06000; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--fg); background:var(--bg); }
header.top { background:#17324d; color:#fff; padding:14px 28px 10px; }
header.top h1 { margin:0 0 4px; font-size:20px; font-weight:600; }
header.top .meta { color:#c9d6e3; font-size:12.5px; }
nav.sections { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line);
               padding:6px 28px; display:flex; gap:18px; flex-wrap:wrap; }
nav.sections a { color:var(--accent); text-decoration:none; font-weight:500; }
main { max-width:1400px; margin:0 auto; padding:18px 24px 60px; }
section.report { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px;
                 margin:0 0 20px; }
section.report > h2 { margin:0 0 10px; font-size:17px; }
h3 { font-size:14.5px; margin:16px 0 6px; }
p.lead { color:var(--muted); margin:0 0 10px; }
.notice { border-left:4px solid #d08c00; background:#fff8e6; padding:8px 12px; margin:8px 0; border-radius:4px; }
.notice.empty { border-left-color:#8a94a3; background:#f1f3f6; }
.scroll { overflow-x:auto; }
table.t { border-collapse:collapse; font-size:13px; margin:4px 0 6px; }
table.t caption { text-align:left; font-weight:600; padding:2px 0 6px; }
table.t th, table.t td { padding:4px 7px; border-bottom:1px solid #e8ebef; vertical-align:top; white-space:nowrap; }
table.t th { background:#f0f3f7; text-align:left; font-weight:600; border-bottom:1px solid var(--line); }
table.t td.num, table.t th.num { text-align:right; font-variant-numeric:tabular-nums; }
table.t tr.rule td { border-top:2px solid #9aa5b1; }
table.t tr.measured td { background:var(--meas); }
table.paper-ablation td.num { white-space:normal; min-width:5.5em; }  /* the ranking row's verdicts wrap */
table.t .ci { display:block; color:var(--muted); font-size:11px; }
table.t sup.mark { color:#b3261e; font-weight:700; margin-left:1px; }
.pill { display:inline-block; font-size:11px; padding:0 6px; border-radius:9px; background:#e3e8ee; color:#334; }
.pill.measured { background:#d4e6fb; color:#174a7c; }
ul.notes { margin:4px 0 0; padding-left:18px; color:var(--muted); font-size:12px; }
ul.notes li { margin:1px 0; }
.grid-legend { font-size:12px; color:var(--muted); }
.chart-row { display:flex; flex-wrap:wrap; gap:16px; }
.chart-card { flex:1 1 520px; border:1px solid #e6e9ee; border-radius:6px; padding:10px 12px; }
.chart-card h3 { margin:0 0 6px; display:flex; gap:10px; align-items:center; justify-content:space-between; }
.chart-card select { font-size:12px; }
.legend { font-size:12px; color:var(--muted); margin:2px 0 6px; display:flex; gap:12px; flex-wrap:wrap; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
.bars .cat { display:grid; grid-template-columns:170px 1fr; gap:8px; align-items:center; margin:3px 0; }
.bars .cat-label { font-size:12px; text-align:right; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.bars .series { display:grid; grid-template-columns:1fr 118px; gap:6px; align-items:center; height:15px; }
.bars .track { position:relative; height:11px; background:#f0f2f5; border-radius:2px; }
.bars .bar { position:absolute; left:0; top:0; bottom:0; border-radius:2px; opacity:.85; }
.bars .whisker { position:absolute; top:5px; height:1.5px; background:#111; }
.bars .whisker::before, .bars .whisker::after { content:""; position:absolute; top:-3px; width:1.5px; height:7.5px;
                                               background:#111; }
.bars .whisker::before { left:0; } .bars .whisker::after { right:0; }
.bars .val { font-size:11.5px; font-variant-numeric:tabular-nums; color:#333; white-space:nowrap; }
.bars .val .ci { color:var(--muted); }
.axis { display:grid; grid-template-columns:170px 1fr 124px; gap:8px; font-size:10.5px; color:var(--muted); }
.axis span.ticks { display:flex; justify-content:space-between; }
.eff-grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(316px,1fr)); gap:12px; margin-bottom:10px; }
.eff-card { border:1px solid #e6e9ee; border-radius:6px; padding:8px 8px 4px; }
.eff-card h3 { margin:0 0 4px; font-size:13.5px; }
svg.scatter { display:block; width:100%; height:auto; font-size:10px; fill:#444; }
svg.scatter text.lab { font-size:10.5px; fill:#5f6b7a; }
details summary { cursor:pointer; color:var(--accent); margin:6px 0; }
.filters { display:flex; gap:14px; flex-wrap:wrap; align-items:end; margin:4px 0 10px; }
.filters label { font-size:12px; color:var(--muted); display:flex; flex-direction:column; gap:2px; }
.filters select { font-size:13px; padding:3px 4px; min-width:130px; }
#sample-count { font-size:12.5px; color:var(--muted); margin-bottom:8px; }
#sample-list { display:grid; grid-template-columns:repeat(auto-fill,minmax(360px,1fr)); gap:12px; }
.sample-card { border:1px solid #e1e5ea; border-radius:6px; padding:10px; display:grid;
               grid-template-columns:132px 1fr; gap:10px; background:#fff; }
.sample-card.right { border-left:4px solid var(--good); }
.sample-card.wrong { border-left:4px solid var(--bad); }
.sample-card.partial { border-left:4px solid var(--part); }
.sample-card .thumb img { width:128px; height:128px; object-fit:contain; background:#f3f4f6; border-radius:4px; }
.sample-card .thumb .missing { width:128px; min-height:128px; border:1px dashed #c0392b; border-radius:4px;
               color:#a93226; font-size:11px; padding:6px; overflow-wrap:anywhere; background:#fdf2f2; }
.sample-card .head { font-size:11.5px; color:var(--muted); margin-bottom:4px; overflow-wrap:anywhere; }
.badge { display:inline-block; font-size:11px; font-weight:600; padding:0 6px; border-radius:9px; color:#fff;
         margin-right:6px; }
.badge.right { background:var(--good); } .badge.wrong { background:var(--bad); }
.badge.partial { background:var(--part); } .badge.unscored { background:#8a94a3; }
.sample-card .prompt { white-space:pre-wrap; font:inherit; font-size:12.5px; margin:0 0 6px; max-height:9.5em;
                       overflow:auto; }
#sample-more { margin:12px 0 0; padding:5px 14px; font-size:13px; cursor:pointer; }
.sample-card dl { margin:0; display:grid; grid-template-columns:74px 1fr; gap:2px 8px; font-size:12.5px; }
.sample-card dt { color:var(--muted); } .sample-card dd { margin:0; overflow-wrap:anywhere; }
.probs .p { display:grid; grid-template-columns:70px 1fr 48px; gap:6px; align-items:center; font-size:11.5px; }
.probs .p .pt { background:#eef0f3; height:8px; border-radius:2px; position:relative; }
.probs .p .pb { position:absolute; left:0; top:0; bottom:0; background:#6b8fc4; border-radius:2px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px; }
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("sample-data").textContent);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fill(select, values, labelAll) {
    var keep = select.value;
    while (select.firstChild) select.removeChild(select.firstChild);
    var all = el("option", null, labelAll); all.value = ""; select.appendChild(all);
    values.forEach(function (v) { var o = el("option", null, v || "(none)"); o.value = v; select.appendChild(o); });
    select.value = values.indexOf(keep) >= 0 ? keep : "";
  }
  function uniq(list) {
    var seen = {}, out = [];
    list.forEach(function (x) { if (!(x in seen)) { seen[x] = 1; out.push(x); } });
    return out.sort();
  }

  // ---- per-category charts: one select per task switches the metric shown
  Array.prototype.forEach.call(document.querySelectorAll("select.chart-select"), function (sel) {
    function show() {
      var card = sel.closest(".chart-card");
      Array.prototype.forEach.call(card.querySelectorAll(".chart"), function (c) {
        c.hidden = c.getAttribute("data-chart") !== sel.value;
      });
    }
    sel.addEventListener("change", show); show();
  });

  // ---- efficiency plots: one select switches the x axis of every plot
  var effAxis = document.getElementById("eff-axis");
  if (effAxis) {
    var showAxis = function () {
      Array.prototype.forEach.call(document.querySelectorAll(".eff-plot"), function (p) {
        p.hidden = p.getAttribute("data-axis") !== effAxis.value;
      });
    };
    effAxis.addEventListener("change", showAxis); showAxis();
  }

  // ---- sample browser
  var fRun = document.getElementById("f-run"), fTask = document.getElementById("f-task"),
      fCat = document.getElementById("f-category"), fOut = document.getElementById("f-outcome"),
      list = document.getElementById("sample-list"), count = document.getElementById("sample-count");
  var samples = data.samples || [];

  function categories() {
    var t = fTask.value;
    return uniq(samples.filter(function (s) { return !t || s.task === t; }).map(function (s) { return s.category; }));
  }
  function thumb(s) {
    var box = el("div", "thumb");
    if (s.image && data.images[s.image]) {
      var img = el("img"); img.src = data.images[s.image]; img.alt = "image of " + s.doc_id; box.appendChild(img);
    } else {
      var m = el("div", "missing");
      m.appendChild(el("strong", null, s.image_status || "no image"));
      if (s.image_path) { m.appendChild(el("br")); m.appendChild(el("span", null, s.image_path)); }
      box.appendChild(m);
    }
    return box;
  }
  function probs(cp) {
    var box = el("div", "probs");
    Object.keys(cp).sort(function (a, b) { return cp[b] - cp[a]; }).forEach(function (k) {
      var row = el("div", "p"), tr = el("div", "pt"), bar = el("div", "pb");
      bar.style.width = Math.max(0, Math.min(1, cp[k])) * 100 + "%";
      tr.appendChild(bar);
      row.appendChild(el("span", null, k)); row.appendChild(tr); row.appendChild(el("span", null, cp[k].toFixed(3)));
      box.appendChild(row);
    });
    return box;
  }
  function card(s) {
    var c = el("div", "sample-card " + s.outcome);
    c.setAttribute("data-task", s.task); c.setAttribute("data-outcome", s.outcome);
    c.setAttribute("data-category", s.category); c.setAttribute("data-run", s.run);
    c.appendChild(thumb(s));
    var body = el("div", "body"), head = el("div", "head");
    head.appendChild(el("span", "badge " + s.outcome, s.outcome));
    var where = [s.task, s.category, s.run, s.doc_id].filter(function (x) { return x; });
    head.appendChild(document.createTextNode(where.join(" · ")));
    body.appendChild(head);
    body.appendChild(el("pre", "prompt", s.prompt));
    var dl = el("dl");
    function item(k, v) {
      dl.appendChild(el("dt", null, k));
      var d = el("dd");
      if (v instanceof Node) d.appendChild(v); else d.textContent = v;
      dl.appendChild(d);
    }
    item("prediction", s.prediction !== "" ? s.prediction :
         (s.candidate_probs ? "(none: scored by the candidates' probabilities)" : "(empty)"));
    item("target", s.target);
    if (s.score !== null && s.score !== undefined) item("score", s.score);
    if (s.candidate_probs) item("candidates", probs(s.candidate_probs));
    body.appendChild(dl);
    c.appendChild(body);
    return c;
  }
  var PAGE = 60, limit = PAGE, more = document.getElementById("sample-more");
  function render() {
    var r = fRun.value, t = fTask.value, k = fCat.value, o = fOut.value;
    var match = samples.filter(function (s) {
      return (!r || s.run === r) && (!t || s.task === t) && (!k || s.category === k) && (!o || s.outcome === o);
    });
    while (list.firstChild) list.removeChild(list.firstChild);
    match.slice(0, limit).forEach(function (s) { list.appendChild(card(s)); });
    var n = Math.min(limit, match.length);
    count.textContent = "Showing " + n + " of " + match.length + " matching samples (" + samples.length +
      " embedded).";
    more.hidden = match.length <= limit;
  }
  function refilter() { limit = PAGE; render(); }
  if (fRun) {
    fill(fRun, uniq(samples.map(function (s) { return s.run; })), "all runs");
    fill(fTask, uniq(samples.map(function (s) { return s.task; })), "all tasks");
    fill(fCat, categories(), "all categories");
    fill(fOut, uniq(samples.map(function (s) { return s.outcome; })), "all outcomes");
    // initial filters from the address: report.html?task=pope&outcome=wrong
    var q = new URLSearchParams(window.location.search);
    [["run", fRun], ["task", fTask], ["category", fCat], ["outcome", fOut]].forEach(function (p) {
      if (q.has(p[0])) {
        if (p[0] === "category") fill(fCat, categories(), "all categories");
        p[1].value = q.get(p[0]);
      }
    });
    fTask.addEventListener("change", function () { fill(fCat, categories(), "all categories"); refilter(); });
    [fRun, fCat, fOut].forEach(function (s) { s.addEventListener("change", refilter); });
    more.addEventListener("click", function () { limit += PAGE; render(); });
    render();
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
"""
