import Hummingbird

/// The dashboard's stylesheet, script and icon, served from the binary under `/static/`
/// (no CDN, nothing fetched from elsewhere).
enum DashboardAssets {
    static func register(on router: Router<CoffreContext>) {
        let files: [(path: String, type: String, text: String)] = [
            ("/static/dashboard.css", "text/css; charset=utf-8", css),
            ("/static/dashboard.js", "text/javascript; charset=utf-8", script),
            ("/static/favicon.svg", "image/svg+xml", icon),
            ("/favicon.ico", "image/svg+xml", icon),
        ]
        for file in files {
            router.get(RouterPath(file.path)) { _, _ in
                var headers = DashboardPages.securityHeaders
                headers[.contentType] = file.type
                headers[.cacheControl] = "public, max-age=3600"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: file.text)))
            }
        }
    }

    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="3" y="6" width="26" height="22" rx="3" fill="#1f4e79"/>\
        <rect x="8" y="3" width="16" height="6" rx="2" fill="#2e75b6"/><circle cx="16" cy="17" r="5" fill="#fff"/></svg>
        """

    static let css = """
        :root { --ink: #1b1f24; --muted: #5f6b7a; --line: #d8dee6; --bg: #f5f7fa; --accent: #1f4e79;
                --ok: #1e7b34; --bad: #b42318; --warn: #9a6700; --run: #1f6feb; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
        a { color: var(--accent); }
        header.top { display: flex; align-items: center; gap: 1.5rem; padding: 0 1.5rem; background: #fff; border-bottom: 1px solid var(--line); }
        .brand { font-weight: 700; font-size: 1.1rem; text-decoration: none; color: var(--accent); padding: .8rem 0; }
        nav.tabs { display: flex; gap: .25rem; flex: 1; }
        nav.tabs a { padding: .8rem .9rem; text-decoration: none; color: var(--muted); border-bottom: 3px solid transparent; }
        nav.tabs a.active { color: var(--ink); border-bottom-color: var(--accent); font-weight: 600; }
        .signout { display: flex; align-items: center; gap: .5rem; }
        .role { color: var(--muted); font-size: .85rem; }
        main { padding: 1rem 1.5rem 3rem; max-width: 1280px; }
        h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.5rem 0 .6rem; }
        .cards { display: flex; flex-wrap: wrap; gap: 1rem; }
        .card { display: flex; flex-direction: column; min-width: 170px; padding: 1rem 1.2rem; background: #fff;
                border: 1px solid var(--line); border-radius: 6px; text-decoration: none; color: var(--ink); }
        .card .count { font-size: 2rem; font-weight: 600; }
        .card small { color: var(--muted); }
        .card.status-succeeded .count { color: var(--ok); } .card.status-failed .count { color: var(--bad); }
        .card.status-inprogress .count { color: var(--run); } .card.status-cancelled .count { color: var(--warn); }
        table.grid { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
        table.grid th, table.grid td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        table.grid th { background: #eef2f6; font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        td.empty { color: var(--muted); text-align: center; padding: 1.2rem; }
        .status, .state { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .85rem; background: #eef2f6; }
        .status-succeeded, .state-registered, .state-protected { background: #dcf5e3; color: var(--ok); }
        .status-failed, .state-failed { background: #fde7e5; color: var(--bad); }
        .status-inprogress, .status-queued, .state-registering, .state-configuring { background: #e2ecfd; color: var(--run); }
        .status-cancelled, .state-pending, .state-stopped, .state-softDeleted { background: #fff4d6; color: var(--warn); }
        .step-succeeded { color: var(--ok); } .step-failed { color: var(--bad); } .step-inProgress { color: var(--run); }
        .step-skipped, .step-cancelled { color: var(--muted); }
        .tag { display: inline-block; padding: 0 .4rem; border: 1px solid var(--line); border-radius: 4px; font-size: .8rem; color: var(--muted); }
        .toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: .8rem; margin-bottom: 1rem; }
        .hint { color: var(--muted); font-size: .85rem; }
        .notice { padding: .6rem .9rem; background: #e2ecfd; border-radius: 6px; }
        .error-box { padding: .6rem .9rem; background: #fde7e5; border: 1px solid #f5b5ae; border-radius: 6px; margin: .6rem 0; }
        .error-box p { margin: .2rem 0; }
        .code { font-family: ui-monospace, monospace; }
        .inline-error { margin-top: .3rem; font-size: .85rem; color: var(--bad); }
        .card-form { display: grid; gap: .4rem; max-width: 560px; background: #fff; padding: 1rem 1.2rem; border: 1px solid var(--line); border-radius: 6px; }
        fieldset { border: 1px solid var(--line); border-radius: 6px; display: grid; gap: .4rem; }
        label.check { display: inline-flex; align-items: center; gap: .3rem; margin-right: .8rem; }
        input, select, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; }
        button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
        .signout button { background: #fff; color: var(--accent); }
        form.inline { display: inline; }
        dl.facts { margin: 0 0 .8rem; display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1.2rem; background: #fff; padding: 1rem 1.2rem; border: 1px solid var(--line); border-radius: 6px; }
        dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
        progress { width: 320px; height: 1rem; vertical-align: middle; }
        #job-progress-box { margin: 1rem 0; }
        .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; margin: .5rem 0 1.5rem; }
        figure.chart { margin: 0; padding: .8rem 1rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
        figure.chart figcaption { font-weight: 600; margin-bottom: .3rem; }
        figure.chart svg { width: 100%; height: auto; display: block; }
        .chart-summary { margin: .2rem 0; color: var(--muted); font-size: .85rem; }
        ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .2rem 0 .4rem; padding: 0; font-size: .8rem; color: var(--muted); }
        .swatch { background: var(--muted); }
        ul.legend .swatch { display: inline-block; width: .75rem; height: .75rem; margin-right: .3rem; vertical-align: -1px; border-radius: 2px; }
        svg .tick, svg .label { font-size: 11px; fill: var(--muted); }
        svg .grid { stroke: var(--line); stroke-width: 1; }
        svg .axis { stroke: var(--muted); stroke-width: 1; }
        svg .hit { fill: transparent; }
        svg a:hover .bar, svg a:focus .bar { opacity: .75; }
        svg .line { fill: none; stroke-width: 2; }
        svg .line.series-stored, svg .dot.series-stored { stroke: var(--accent); }
        svg .line.series-logical, svg .dot.series-logical { stroke: #8c959f; }
        svg .dot { fill: #fff; stroke-width: 2; }
        svg .bar.series-stored, .swatch.series-stored { fill: var(--accent); background: var(--accent); }
        svg .bar.series-logical, .swatch.series-logical { fill: #8c959f; background: #8c959f; }
        svg .bar.series-duration { fill: var(--run); }
        svg .bar.status-succeeded, .swatch.status-succeeded { fill: var(--ok); background: var(--ok); }
        svg .bar.status-failed, .swatch.status-failed { fill: var(--bad); background: var(--bad); }
        svg .bar.status-cancelled, .swatch.status-cancelled { fill: var(--warn); background: var(--warn); }
        svg .point { stroke-width: 2; }
        svg .consistency-applicationConsistent, .swatch.consistency-applicationConsistent { fill: var(--ok); stroke: var(--ok); background: var(--ok); }
        svg .consistency-fileSystemConsistent, .swatch.consistency-fileSystemConsistent { fill: var(--accent); stroke: var(--accent); background: var(--accent); }
        svg .consistency-crashConsistent, .swatch.consistency-crashConsistent { fill: var(--warn); stroke: var(--warn); background: var(--warn); }
        svg .point.on-demand { fill: #fff; }
        .swatch.on-demand { background: #fff !important; border: 2px solid var(--muted); box-sizing: border-box; }
        svg .missed line { stroke: var(--bad); stroke-width: 2; }
        .swatch.missed { background: var(--bad) !important; }
        [hidden] { display: none !important; }
        """

    /// Live job progress without reloading: the job page (`#job[data-job-id]`) and every
    /// status badge of a running job (`[data-watch-job]`) poll `/ui/jobs/ID/progress` until the
    /// job ends. Values go in with `textContent`, never as HTML.
    static let script = #"""
        (function () {
          "use strict";

          function progressURL(id) { return "/ui/jobs/" + encodeURIComponent(id) + "/progress"; }

          function fetchJob(id) {
            return fetch(progressURL(id), { credentials: "same-origin", cache: "no-store",
                                            headers: { "Accept": "application/json" } })
              .then(function (response) {
                if (!response.ok) { throw new Error("HTTP " + response.status); }
                return response.json();
              });
          }

          function setText(element, value) {
            if (element) { element.textContent = value === undefined || value === null ? "" : String(value); }
          }

          function setStatus(element, job) {
            setText(element, job.status);
            element.className = "status status-" + job.statusCss;
          }

          function cell(row, value, className) {
            var td = document.createElement("td");
            td.textContent = value || "";
            if (className) { td.className = className; }
            row.appendChild(td);
          }

          function renderSteps(tbody, steps) {
            while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
            steps.forEach(function (step) {
              var row = document.createElement("tr");
              cell(row, step.name);
              cell(row, step.status, "step-" + step.status);
              cell(row, step.started);
              cell(row, step.duration);
              cell(row, step.bytes);
              cell(row, step.detail);
              tbody.appendChild(row);
            });
          }

          function renderError(box, error) {
            while (box.firstChild) { box.removeChild(box.firstChild); }
            box.hidden = !error;
            if (!error) { return; }
            var wrapper = document.createElement("div");
            wrapper.className = "error-box";
            wrapper.setAttribute("role", "alert");
            var line = document.createElement("p");
            var code = document.createElement("strong");
            code.className = "code";
            code.textContent = error.code;
            line.appendChild(code);
            line.appendChild(document.createTextNode(" " + error.message));
            wrapper.appendChild(line);
            if (error.workaround) {
              var hint = document.createElement("p");
              hint.className = "workaround";
              hint.textContent = "What to do: " + error.workaround;
              wrapper.appendChild(hint);
            }
            box.appendChild(wrapper);
          }

          function renderDetails(list, details) {
            while (list.firstChild) { list.removeChild(list.firstChild); }
            list.hidden = details.length === 0;
            details.forEach(function (detail) {
              var term = document.createElement("dt");
              term.textContent = detail.key;
              var value = document.createElement("dd");
              value.textContent = detail.value;
              list.appendChild(term);
              list.appendChild(value);
            });
          }

          function applyJob(root, job) {
            setStatus(document.getElementById("job-status"), job);
            setText(document.getElementById("job-ended"), job.ended);
            setText(document.getElementById("job-duration"), job.duration);
            var box = document.getElementById("job-progress-box");
            if (box && job.progressText) {
              box.hidden = false;
              document.getElementById("job-progress").value = job.percent || 0;
              setText(document.getElementById("job-progress-text"), job.progressText);
            }
            var steps = document.getElementById("job-steps");
            if (steps) { renderSteps(steps, job.steps || []); }
            var details = document.getElementById("job-details");
            if (details) { renderDetails(details, job.details || []); }
            var errorBox = document.getElementById("job-error");
            if (errorBox) { renderError(errorBox, job.error); }
            if (job.finished) {
              var cancel = document.getElementById("cancel-form");
              if (cancel) { cancel.hidden = true; }
            }
            root.dataset.finished = String(job.finished);
          }

          function poll(id, onJob) {
            var failures = 0;
            function next() {
              fetchJob(id).then(function (job) {
                failures = 0;
                onJob(job);
                if (!job.finished) { window.setTimeout(next, 500); }
              }).catch(function () {
                failures += 1;
                if (failures < 20) { window.setTimeout(next, 2000); }
              });
            }
            next();
          }

          function start() {
            var root = document.getElementById("job");
            if (root && root.dataset.finished !== "true") {
              poll(root.dataset.jobId, function (job) { applyJob(root, job); });
            }
            Array.prototype.forEach.call(document.querySelectorAll("[data-watch-job]"), function (badge) {
              var row = badge.closest("tr");
              poll(badge.getAttribute("data-watch-job"), function (job) {
                setStatus(badge, job);
                if (row) {
                  setText(row.querySelector(".job-duration"), job.duration);
                  setText(row.querySelector(".job-error"), job.error ? job.error.code : "");
                }
              });
            });
            var weekly = document.getElementById("frequency-weekly");
            var weekdays = document.getElementById("weekdays");
            if (weekly && weekdays) {
              var sync = function () { weekdays.hidden = !weekly.checked; };
              Array.prototype.forEach.call(document.querySelectorAll("input[name=frequency]"), function (radio) {
                radio.addEventListener("change", sync);
              });
              sync();
            }
          }

          if (document.readyState === "loading") {
            document.addEventListener("DOMContentLoaded", start);
          } else {
            start();
          }
        })();
        """#
}
