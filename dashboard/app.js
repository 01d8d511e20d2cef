// Tracemark dashboard: vanilla JS, no framework, no CDN, no build step.
// Every piece of data reaches the page through textContent or setAttribute, never innerHTML.
(function () {
  "use strict";

  var TOKEN_KEY = "tracemark.token";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var cfg = window.TRACEMARK_CONFIG || {};
  var apiBase = String(cfg.apiBaseUrl || "").replace(/\/+$/, "");
  var state = { range: "7d", project: "", dashboard: null, sort: { key: "sessions", dir: "descending" },
    sessions: [], cursor: null, session: null, raw: false };

  // ---- helpers -------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) return;
      if (k === "text") node.textContent = String(attrs[k]);
      else if (k === "class") node.setAttribute("class", attrs[k]);
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k] === true ? "" : String(attrs[k]));
    });
  }

  function append(node, children) {
    if (children === null || children === undefined) return;
    (Array.isArray(children) ? children : [children]).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function obj(v) { return isObj(v) ? v : {}; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  var intFmt = new Intl.NumberFormat("en-US");
  var usdFmt = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function fmtInt(v) { return typeof v === "number" ? intFmt.format(v) : "—"; }
  function fmtUsd(v) {
    if (typeof v !== "number") return "—";
    if (v > 0 && v < 0.01) return "$" + v.toFixed(4);
    return usdFmt.format(v);
  }
  function fmtPct(v) { return typeof v === "number" ? v.toFixed(1) + "%" : "—"; }
  function fmtTime(v) {
    if (typeof v !== "string" || !v) return "—";
    var d = new Date(v);
    if (isNaN(d.getTime())) return v;
    return d.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$|:\d\dZ$/, " UTC");
  }
  function short(v, n) {
    v = String(v === null || v === undefined ? "" : v);
    return v.length > n ? v.slice(0, n - 1) + "…" : v;
  }

  // ---- token and API -------------------------------------------------------------------------
  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }

  function api(path) {
    var headers = { "Accept": "application/json" };
    var t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    return fetch(apiBase + path, { headers: headers, credentials: "omit", cache: "no-store" })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var body = null;
          try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
          if (!resp.ok) {
            var e = obj(obj(body).error);
            var err = new Error(String(e.message || ("HTTP " + resp.status)));
            err.status = resp.status;
            err.code = String(e.code || "http_" + resp.status);
            throw err;
          }
          return body;
        });
      }, function () {
        var err = new Error("The API at " + (apiBase || window.location.origin) + " did not answer. Is the server running?");
        err.status = 0;
        err.code = "network";
        throw err;
      });
  }

  function showError(err) {
    var box = $("error");
    clear(box);
    var advice;
    if (err.status === 401) advice = "Check the API token: paste a valid, unexpired token above and choose Use token.";
    else if (err.status === 403) advice = "This token may not see this page; use a token of your organisation.";
    else if (err.status === 404) advice = "Nothing here: check the project or session id.";
    else if (err.status === 400) advice = "Check the filters.";
    else if (err.status === 0) advice = "Start the backend (make serve) or check the configured API URL.";
    else advice = "Try again in a moment.";
    append(box, [el("strong", { text: "Could not load: " }), err.message + " (" + err.code + "). ", advice]);
    box.hidden = false;
    status("");
  }

  function hideError() { $("error").hidden = true; }

  function status(text) {
    var s = $("status");
    s.textContent = text;
    s.hidden = !text;
  }

  // ---- routing -------------------------------------------------------------------------------
  function route() {
    hideError();
    var hash = window.location.hash || "#/";
    var views = ["welcome", "dashboard", "sessions", "session"];
    var current;
    if (!token()) current = "welcome";
    else if (hash.indexOf("#/sessions/") === 0) current = "session";
    else if (hash.indexOf("#/sessions") === 0) current = "sessions";
    else current = "dashboard";
    views.forEach(function (v) { $("view-" + v).hidden = v !== current; });
    Array.prototype.forEach.call(document.querySelectorAll("[data-nav]"), function (a) {
      var on = a.getAttribute("data-nav") === current || (current === "session" && a.getAttribute("data-nav") === "sessions");
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    if (current === "dashboard") loadDashboard();
    else if (current === "sessions") loadSessions(false);
    else if (current === "session") loadSession(decodeURIComponent(hash.slice("#/sessions/".length)));
  }

  // ---- dashboard -----------------------------------------------------------------------------
  function loadDashboard() {
    var q = "?range=" + encodeURIComponent(state.range);
    if (state.project) q += "&project=" + encodeURIComponent(state.project);
    status("Loading the dashboard…");
    $("view-dashboard").setAttribute("aria-busy", "true");
    return api("/v1/dashboard/ai" + q).then(function (data) {
      state.dashboard = obj(data);
      renderDashboard();
      status("");
    }, function (err) {
      state.dashboard = null;
      clear($("cards")); clear($("chart")); clear($("models")); clear($("users"));
      $("empty").hidden = true;
      $("period").textContent = "";
      showError(err);
    }).then(function () { $("view-dashboard").setAttribute("aria-busy", "false"); });
  }

  var RANGE_WORDS = { "24h": "24 hours", "7d": "7 days", "30d": "30 days", "3m": "3 months" };

  var CARDS = [
    { key: "total_sessions", title: "Total sessions", fmt: fmtInt, good: "up" },
    { key: "active_users", title: "Active users", fmt: fmtInt, good: "up" },
    { key: "ai_assisted_prs", title: "AI-assisted PRs", fmt: fmtInt, good: "up" },
    { key: "ai_authored_code", title: "AI-authored code", fmt: fmtPct, good: "none", points: true },
    { key: "total_cost_usd", title: "Estimated cost", fmt: fmtUsd, good: "down" },
    { key: "total_tokens", title: "Tokens", fmt: fmtInt, good: "none" }
  ];

  function deltaNode(c, spec, hasData) {
    var delta = c.delta;
    if (!hasData) return el("p", { class: "delta flat", text: "no data" });
    if (typeof delta !== "number") {
      return el("p", { class: "delta flat", text: c.previous === null || c.previous === undefined ? "no previous value" : "—" });
    }
    var dir = delta > 0 ? "up" : (delta < 0 ? "down" : "flat");
    var arrow = dir === "up" ? "▲" : (dir === "down" ? "▼" : "■");
    var tone = dir === "flat" || spec.good === "none" ? "neutral" : (dir === spec.good ? "good" : "bad");
    var magnitude = spec.points ? Math.abs(delta).toFixed(1) + " pts" : spec.fmt(Math.abs(delta));
    var pct = typeof c.delta_pct === "number" ? " (" + (c.delta_pct > 0 ? "+" : "") + c.delta_pct.toFixed(1) + "%)" : " (new)";
    if (dir === "flat") pct = "";
    var words = dir === "up" ? "up " : (dir === "down" ? "down " : "no change");
    return el("p", { class: "delta " + dir + " " + tone }, [
      el("span", { "aria-hidden": "true", text: arrow + " " }),
      words + (dir === "flat" ? "" : magnitude + pct)
    ]);
  }

  function renderDashboard() {
    var d = state.dashboard;
    var cards = obj(d.cards);
    var hasData = d.has_data === true;
    var words = RANGE_WORDS[d.range] || d.range;
    var period = obj(d.period);
    $("period").textContent = "Last " + words + (d.project ? " · project " + d.project : " · all projects") +
      " · " + fmtTime(period.start) + " to " + fmtTime(period.end) + " · compared with the " + words + " before";
    var empty = $("empty");
    clear(empty);
    empty.hidden = hasData;
    if (!hasData) {
      append(empty, [el("strong", { text: "No sessions yet in this range or the one before. " }),
        "Run tracemark init in a repository, work with your AI agent, commit and git push: sessions appear here after the push. " +
        "Try a longer range, or clear the project filter."]);
    }
    var box = clear($("cards"));
    CARDS.forEach(function (spec) {
      var c = obj(cards[spec.key]);
      var value = hasData ? spec.fmt(c.value) : "—";
      var extra = null;
      if (spec.key === "ai_authored_code" && hasData) {
        extra = el("p", { class: "muted small", text: c.all_lines ? fmtInt(c.ai_lines) + " of " + fmtInt(c.all_lines) + " lines" : "no committed lines in this range" });
      }
      if (spec.key === "total_cost_usd" && hasData && num(c.unpriced_sessions) > 0) {
        var n = num(c.unpriced_sessions);
        extra = el("p", { class: "muted small", "data-unpriced": "", text: "priced models only: " + fmtInt(n) + (n === 1 ? " session uses" : " sessions use") + " a model with no known price" });
      }
      box.appendChild(el("article", { class: "card", "data-card": spec.key, "aria-label": spec.title }, [
        el("h3", { text: spec.title }),
        el("p", { class: "value", "data-value": "", text: value }),
        extra,
        deltaNode(c, spec, hasData),
        el("p", { class: "muted small", text: "previous: " + (hasData ? spec.fmt(c.previous) : "—") })
      ]));
    });
    renderChart();
    renderModels();
    renderUsers();
  }

  function renderChart() {
    var d = state.dashboard;
    var box = clear($("chart"));
    if (!d) return;
    var series = arr(d.series);
    var metric = $("chart-metric").value;
    var label = $("chart-metric").selectedOptions[0].textContent;
    var values = series.map(function (p) { return num(obj(p)[metric]); });
    var max = Math.max.apply(null, [0].concat(values));
    var W = 640, H = 220, left = 44, bottom = 28, top = 12;
    var n = Math.max(values.length, 1);
    var bw = (W - left - 8) / n;
    var hourly = d.granularity === "hour";
    var title = label + " per " + (hourly ? "hour" : "day") + ", " + (RANGE_WORDS[d.range] || d.range);
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": "chart-svg-title", class: "bars", preserveAspectRatio: "xMidYMid meet" });
    chart.appendChild(svg("title", { id: "chart-svg-title", text: title + "; highest " + (metric === "cost_usd" ? fmtUsd(max) : fmtInt(max)) }));
    chart.appendChild(svg("line", { x1: left, y1: H - bottom, x2: W - 4, y2: H - bottom, class: "axis" }));
    chart.appendChild(svg("text", { x: left - 6, y: top + 8, class: "tick", "text-anchor": "end", text: metric === "cost_usd" ? fmtUsd(max) : fmtInt(max) }));
    chart.appendChild(svg("text", { x: left - 6, y: H - bottom, class: "tick", "text-anchor": "end", text: "0" }));
    var every = Math.ceil(n / 8);
    series.forEach(function (p, i) {
      var v = values[i];
      var h = max > 0 ? (H - bottom - top) * v / max : 0;
      var x = left + i * bw + bw * 0.15;
      var start = String(obj(p).start || "");
      var when = hourly ? start.slice(11, 16) + " UTC" : start.slice(0, 10);
      var bar = svg("rect", { x: x.toFixed(1), y: (H - bottom - h).toFixed(1), width: Math.max(bw * 0.7, 1).toFixed(1), height: h.toFixed(1), class: "bar", "data-value": v });
      bar.appendChild(svg("title", { text: (hourly ? start.slice(0, 10) + " " : "") + when + ": " + (metric === "cost_usd" ? fmtUsd(v) : fmtInt(v)) }));
      chart.appendChild(bar);
      if (i % every === 0) {
        chart.appendChild(svg("text", { x: (x + bw * 0.35).toFixed(1), y: H - 10, class: "tick", "text-anchor": "middle", text: hourly ? start.slice(11, 13) + "h" : start.slice(5, 10) }));
      }
    });
    box.appendChild(chart);
    if (max === 0) box.appendChild(el("p", { class: "muted small", text: "Nothing to chart in this range." }));
  }

  function renderModels() {
    var d = state.dashboard;
    var box = clear($("models"));
    var rows = arr(d && d.model_breakdown);
    if (!rows.length) {
      box.appendChild(el("p", { class: "muted", text: "No model usage in this range." }));
      return;
    }
    var max = Math.max.apply(null, rows.map(function (r) { return num(r.sessions); }));
    var list = el("ul", { class: "hbars", "aria-label": "Sessions per model" });
    rows.forEach(function (r) {
      var bar = el("span", { class: "hbar-fill" });
      bar.style.width = (max ? (100 * num(r.sessions) / max) : 0).toFixed(1) + "%";
      list.appendChild(el("li", null, [
        el("span", { class: "hbar-label", title: String(r.model), text: short(r.model, 48) }),
        el("span", { class: "hbar", "aria-hidden": "true" }, bar),
        el("span", { class: "hbar-value", text: fmtInt(r.sessions) + " sessions · " + fmtInt(r.tokens) + " tokens · " + (r.cost_usd === null ? "cost unknown (no price)" : fmtUsd(r.cost_usd)) })
      ]));
    });
    box.appendChild(list);
  }

  var USER_COLS = [
    { key: "user", title: "User", fmt: null },
    { key: "sessions", title: "Sessions", fmt: fmtInt },
    { key: "ai_lines", title: "AI lines", fmt: fmtInt },
    { key: "tokens", title: "Tokens", fmt: fmtInt },
    { key: "cost_usd", title: "Cost", fmt: fmtUsd }
  ];

  function renderUsers() {
    var d = state.dashboard;
    var box = clear($("users"));
    var rows = arr(d && d.top_users).slice();
    if (!rows.length) {
      box.appendChild(el("p", { class: "muted", text: "No users with sessions in this range." }));
      return;
    }
    var s = state.sort;
    rows.sort(function (a, b) {
      var x = a[s.key], y = b[s.key];
      var c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return s.dir === "ascending" ? c : -c;
    });
    var head = el("tr", null, USER_COLS.map(function (col) {
      var sorted = s.key === col.key;
      return el("th", { scope: "col", "aria-sort": sorted ? s.dir : "none", class: col.fmt ? "num" : null }, el("button", {
        type: "button", class: "sort", text: col.title + (sorted ? (s.dir === "ascending" ? " ▲" : " ▼") : ""),
        onclick: function () {
          state.sort = { key: col.key, dir: sorted && s.dir === "descending" ? "ascending" : "descending" };
          renderUsers();
        }
      }));
    }));
    var body = el("tbody", null, rows.map(function (r) {
      return el("tr", null, USER_COLS.map(function (col) {
        if (!col.fmt) {
          return el("th", { scope: "row", class: "user" }, [el("span", { title: String(r.user), text: short(r.user, 60) }),
            r.service_account ? el("span", { class: "badge", text: "service account" }) : null]);
        }
        return el("td", { class: "num", text: col.fmt(r[col.key]) });
      }));
    }));
    box.appendChild(el("div", { class: "table-wrap" }, el("table", { class: "data", id: "users-table" }, [
      el("caption", { class: "visually-hidden", text: "Top 10 users by sessions; select a column title to sort" }),
      el("thead", null, head), body])));
  }

  // ---- sessions list -------------------------------------------------------------------------
  function sessionQuery(cursor) {
    var f = $("session-filters");
    var params = [["limit", "25"]];
    ["range", "project", "user"].forEach(function (name) {
      var v = f.elements[name].value.trim();
      if (v) params.push([name, v]);
    });
    if (cursor) params.push(["cursor", cursor]);
    return "?" + params.map(function (p) { return p[0] + "=" + encodeURIComponent(p[1]); }).join("&");
  }

  function loadSessions(more) {
    if (!more) { state.sessions = []; state.cursor = null; }
    status("Loading sessions…");
    return api("/v1/sessions" + sessionQuery(more ? state.cursor : null)).then(function (data) {
      var page = obj(data);
      state.sessions = state.sessions.concat(arr(page.items));
      state.cursor = typeof page.next_cursor === "string" && page.next_cursor ? page.next_cursor : null;
      renderSessions();
      status("");
    }, function (err) { clear($("sessions")); $("more").hidden = true; showError(err); });
  }

  function sessionSummary(s) {
    // The API returns the summary fields flat on the session; older shapes nest them in `summary`.
    var sum = isObj(s.summary) ? s.summary : s;
    var data = obj(obj(s.evidence).data);
    var usage = obj(data.usage);
    var changes = obj(data.code_changes);
    return {
      model: sum.model || obj(data.model).primary || arr(sum.models)[0] || "—",
      tokens: typeof sum.total_tokens === "number" ? sum.total_tokens : usage.total_tokens,
      cost: typeof sum.cost_usd === "number" ? sum.cost_usd : usage.estimated_cost_usd,
      ai: num(sum.ai_lines_added !== undefined ? sum.ai_lines_added : changes.ai_lines_added) +
        num(sum.ai_lines_removed !== undefined ? sum.ai_lines_removed : changes.ai_lines_removed)
    };
  }

  function renderSessions() {
    var box = clear($("sessions"));
    $("more").hidden = !state.cursor;
    if (!state.sessions.length) {
      box.appendChild(el("p", { class: "empty", text: "No sessions match. Widen the range or clear the filters; sessions arrive when developers git push." }));
      return;
    }
    var cols = ["Ended (UTC)", "Session", "User", "Project", "Model", "Tokens", "Cost", "AI lines", "Score", "Policy"];
    var rows = state.sessions.map(function (raw) {
      var s = obj(raw);
      var sum = sessionSummary(s);
      var scoreValue = typeof s.score === "number" ? s.score : obj(s.score).score;
      var scoreFlag = s.flag || obj(s.score).flag;
      var id = String(s.id || "");
      return el("tr", null, [
        el("td", { text: fmtTime(s.at || s.ended_at) }),
        el("th", { scope: "row" }, el("a", { href: "#/sessions/" + encodeURIComponent(id), title: id, text: short(id, 18) })),
        el("td", null, [el("span", { title: String(s.user || ""), text: short(s.user || "—", 40) }),
          s.user_kind === "service" ? el("span", { class: "badge", text: "service" }) : null]),
        el("td", { text: short(s.project || "—", 40) }),
        el("td", { title: String(sum.model), text: short(sum.model, 32) }),
        el("td", { class: "num", text: fmtInt(sum.tokens) }),
        el("td", { class: "num", text: fmtUsd(sum.cost) }),
        el("td", { class: "num", text: fmtInt(sum.ai) }),
        el("td", { class: "num" }, typeof scoreValue === "number" ? flag(scoreFlag, String(scoreValue)) : "—"),
        el("td", { text: s.gated ? "gate failed" : policySummary(s.policy_results) })
      ]);
    });
    box.appendChild(el("div", { class: "table-wrap" }, el("table", { class: "data", id: "sessions-table" }, [
      el("thead", null, el("tr", null, cols.map(function (c) { return el("th", { scope: "col", text: c }); }))),
      el("tbody", null, rows)])));
  }

  function policySummary(results) {
    var list = arr(results);
    if (!list.length) return "—";
    var failed = list.filter(function (r) { return obj(r).status === "fail"; }).length;
    return failed ? failed + " failed" : "pass";
  }

  function flag(color, text) {
    var c = ["red", "yellow", "green"].indexOf(color) >= 0 ? color : "none";
    return el("span", { class: "flag flag-" + c }, [el("span", { class: "dot", "aria-hidden": "true" }), text + (c !== "none" ? " (" + c + ")" : "")]);
  }

  // ---- one session ---------------------------------------------------------------------------
  function loadSession(id) {
    state.session = null;
    clear($("session-rendered"));
    $("session-raw").textContent = "";
    $("session-title").textContent = "Session " + short(id, 40);
    status("Loading the session…");
    return api("/v1/sessions/" + encodeURIComponent(id)).then(function (data) {
      state.session = obj(data);
      renderSession();
      status("");
    }, showError);
  }

  function dl(pairs) {
    var list = el("dl", { class: "kv" });
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      list.appendChild(el("dt", { text: p[0] }));
      list.appendChild(el("dd", null, typeof p[1] === "object" ? p[1] : String(p[1])));
    });
    return list;
  }

  function section(title, children) {
    return el("section", { class: "panel" }, [el("h2", { text: title })].concat(children));
  }

  function table(id, cols, rows, empty) {
    if (!rows.length) return el("p", { class: "muted", text: empty });
    return el("div", { class: "table-wrap" }, el("table", { class: "data", id: id }, [
      el("thead", null, el("tr", null, cols.map(function (c) { return el("th", { scope: "col", text: c }); }))),
      el("tbody", null, rows.map(function (r) {
        return el("tr", null, r.map(function (cell) { return el("td", null, cell); }));
      }))]));
  }

  function ranges(list) {
    var parts = arr(list).map(function (r) {
      r = obj(r);
      if (typeof r.start !== "number") return null;
      return r.end && r.end !== r.start ? r.start + "–" + r.end : String(r.start);
    }).filter(Boolean);
    return parts.length ? parts.join(", ") : "—";
  }

  function renderSession() {
    var s = state.session;
    var env = obj(s.evidence);
    var data = obj(env.data);
    var sess = obj(data.session);
    var agent = obj(data.agent);
    var model = obj(data.model);
    var usage = obj(data.usage);
    var git = obj(data.git_context);
    var changes = obj(data.code_changes);
    var tools = obj(data.tools_used);
    var sum = sessionSummary(s);
    var box = clear($("session-rendered"));
    $("session-title").textContent = "Session " + short(s.id || sess.id || "", 60);
    $("session-raw").textContent = JSON.stringify(s, null, 2);

    box.appendChild(section("Metadata", [dl([
      ["Session id", s.id || sess.id], ["Project", s.project], ["Pushed by", s.user],
      ["Kind", s.user_kind === "service" ? "service account" : s.user_kind],
      ["Git author (unverified)", s.actor_unverified],
      ["Agent", [agent.name, agent.version].filter(Boolean).join(" ") || s.agent],
      ["Model", model.primary || sum.model], ["Models used", arr(model.models_used).join(", ")],
      ["Started", fmtTime(s.started_at || sess.started_at)], ["Ended", fmtTime(s.ended_at || sess.ended_at)],
      ["Duration", typeof sess.duration_seconds === "number" ? sess.duration_seconds + " s" : null],
      ["Received", fmtTime(s.received_at)], ["Attestations", arr(s.attestations || s.digests).length || null]
    ])]));

    var byModel = obj(usage.by_model);
    box.appendChild(section("Tokens and cost", [dl([
      ["Input tokens", fmtInt(usage.input_tokens)], ["Output tokens", fmtInt(usage.output_tokens)],
      ["Total tokens", fmtInt(typeof usage.total_tokens === "number" ? usage.total_tokens : sum.tokens)],
      ["Cache read", typeof usage.cache_read_input_tokens === "number" ? fmtInt(usage.cache_read_input_tokens) : null],
      ["Cache creation", typeof usage.cache_creation_input_tokens === "number" ? fmtInt(usage.cache_creation_input_tokens) : null],
      ["Estimated cost", fmtUsd(typeof usage.estimated_cost_usd === "number" ? usage.estimated_cost_usd : sum.cost)],
      ["Pricing version", usage.pricing_version]
    ]), table("models-table", ["Model", "Input", "Output", "Total", "Cost"], Object.keys(byModel).map(function (m) {
      var u = obj(byModel[m]);
      return [short(m, 60), fmtInt(u.input_tokens), fmtInt(u.output_tokens), fmtInt(u.total_tokens), fmtUsd(u.estimated_cost_usd)];
    }), "No per-model usage recorded.")]));

    var commits = arr(git.tracemark_commits);
    var shas = arr(s.commit_shas).length ? arr(s.commit_shas) : arr(s.commits);
    box.appendChild(section("Git context", [dl([
      ["Repository", git.repository], ["Branch", git.branch], ["First commit", git.commit_start], ["Last commit", git.commit_end],
      ["Commits", shas.length || git.commit_count]
    ]), table("commits-table", ["Commit", "Files", "Lines +/−", "AI lines +/−", "AI line ranges", "Rewritten from", "Signature"],
      (commits.length ? commits : shas.map(function (c) { return { sha: c }; })).map(function (c) {
        c = obj(c);
        var fileNames = arr(c.files).map(function (f) { return typeof f === "string" ? f : String(obj(f).path || ""); });
        var byFile = isObj(c.line_ranges) ? c.line_ranges : {};
        var rangeText = Object.keys(byFile).map(function (path) { return short(path, 80) + ": " + ranges(byFile[path]); }).join("; ");
        var hasLines = typeof c.lines_added === "number" || typeof c.lines_removed === "number";
        var hasAi = typeof c.ai_lines_added === "number" || typeof c.ai_lines_removed === "number";
        return [el("code", { text: short(c.sha, 12), title: String(c.sha || "") }),
          el("span", { title: fileNames.join("\n"), text: fileNames.length ? fileNames.map(function (f) { return short(f, 60); }).join(", ") : "—" }),
          hasLines ? fmtInt(num(c.lines_added)) + " / " + fmtInt(num(c.lines_removed)) : "—",
          hasAi ? fmtInt(num(c.ai_lines_added)) + " / " + fmtInt(num(c.ai_lines_removed)) : "—",
          rangeText || "—",
          arr(c.rewritten_from).map(function (x) { return short(x, 12); }).join(", ") || "—", String(c.signature || "—")];
      }), "No commits.")]));

    var files = arr(changes.files);
    box.appendChild(section("Code changes", [dl([
      ["Lines added", fmtInt(changes.lines_added)], ["Lines removed", fmtInt(changes.lines_removed)],
      ["AI lines", fmtInt(num(changes.ai_lines_added) + num(changes.ai_lines_removed))],
      ["Human lines", fmtInt(num(changes.human_lines_added) + num(changes.human_lines_removed))],
      ["Files created / modified / deleted", [changes.files_created, changes.files_modified, changes.files_deleted].map(fmtInt).join(" / ")]
    ]), el("h3", { text: "Per-file attribution" }), table("files-table", ["File", "Status", "Added", "Removed", "AI lines", "Attribution", "AI line ranges"], files.map(function (f) {
      f = obj(f);
      var who = String(f.tracemark_attribution || f.attribution || "—");
      return [el("code", { class: "path", title: String(f.path || ""), text: short(f.path, 120) }), String(f.status || "—"), fmtInt(f.lines_added), fmtInt(f.lines_removed),
        typeof f.tracemark_ai_lines_added === "number" ? fmtInt(f.tracemark_ai_lines_added + num(f.tracemark_ai_lines_removed)) : "—",
        el("span", { class: "attr attr-" + (["ai", "human", "mixed"].indexOf(who) >= 0 ? who : "other"), text: who }), ranges(f.line_ranges)];
    }), "No file changes recorded.")]));

    var summary = arr(tools.summary);
    box.appendChild(section("Tool invocations", [
      dl([["Total invocations", fmtInt(tools.total_invocations)]]),
      table("tools-table", ["Tool", "Invocations"], summary.map(function (t) {
        t = obj(t);
        return [short(t.tool_name, 60), fmtInt(t.invocation_count)];
      }), "No tool invocations recorded."),
      arr(tools.tracemark_shell_commands).length ? el("details", null, [el("summary", { text: "Shell commands (" + arr(tools.tracemark_shell_commands).length + ")" }),
        el("ul", { class: "commands" }, arr(tools.tracemark_shell_commands).slice(0, 200).map(function (c) {
          return el("li", null, el("code", { text: short(typeof c === "string" ? c : (obj(c).command || JSON.stringify(c)), 300) }));
        }))]) : null
    ]));

    var score = obj(s.score);
    var criteria = obj(score.criteria || score.sub_flags);
    box.appendChild(section("Score", typeof score.score === "number" ? [
      el("p", { class: "score" }, [el("span", { class: "score-value", text: String(score.score) }), " / 100 ", flag(score.flag, "")]),
      score.summary ? el("p", { text: String(score.summary) }) : null,
      table("criteria-table", ["Criterion", "Flag", "Points", "Findings"], Object.keys(criteria).map(function (k) {
        var c = criteria[k];
        var co = obj(c);
        var findings = arr(co.findings).map(function (f) {
          f = obj(f);
          return String(f.message || "") + (typeof f.points === "number" && f.points ? " (" + f.points + ")" : "");
        }).filter(Boolean);
        return [k, flag(typeof c === "string" ? c : co.flag, ""), typeof co.points === "number" ? String(co.points) : "—",
          findings.join("; ") || String(co.reason || co.summary || "") || "—"];
      }), "No criteria."),
      arr(score.items || score.review_items).length ? el("div", null, [el("h3", { text: "Review items" }), el("ul", { class: "review" }, arr(score.items || score.review_items).map(function (r) {
        r = obj(r);
        var where = [r.path || r.file, ranges(r.line_ranges) !== "—" ? "lines " + ranges(r.line_ranges) : "", r.command ? "$ " + short(r.command, 200) : ""].filter(Boolean).join(" · ");
        return el("li", null, [where ? el("code", { text: short(where, 300) }) : null, where ? " — " : "", String(r.message || r.reason || "")]);
      }))]) : null
    ] : [el("p", { class: "muted", text: "Not scored yet: the score is computed when the session is correlated with a pull request." })]));

    box.appendChild(section("Policies", [table("policies-table", ["Policy", "Status", "Gate", "Violations"], arr(s.policy_results).map(function (p) {
      p = obj(p);
      return [String(p.policy || p.name || "—"), String(p.status || "—"), p.gate ? "yes" : "no",
        arr(p.violations).map(function (v) { return typeof v === "string" ? v : String(obj(v).message || JSON.stringify(v)); }).join("; ") || "—"];
    }), "No policies evaluated for this session.")]));

    box.appendChild(section("Pull requests", [table("prs-table", ["Pull request", "Repository"], arr(s.prs).map(function (p) {
      p = obj(p);
      var url = typeof p.url === "string" && /^https:\/\//.test(p.url) ? p.url : null;
      var label = "#" + String(p.number || p.pr_number || "?");
      return [url ? el("a", { href: url, rel: "noreferrer noopener", target: "_blank", text: label }) : label, String(p.repository || p.repo || p.full_name || "—")];
    }), "Not linked to a pull request yet.")]));
    setRaw(state.raw);
  }

  function setRaw(on) {
    state.raw = on;
    $("raw-toggle").setAttribute("aria-pressed", on ? "true" : "false");
    $("session-raw").hidden = !on;
    $("session-rendered").hidden = on;
  }

  function download() {
    if (!state.session) return;
    var blob = new Blob([JSON.stringify(state.session, null, 2)], { type: "application/json" });
    var a = el("a", { href: URL.createObjectURL(blob), download: "session-" + String(state.session.id || "unknown").replace(/[^A-Za-z0-9_.-]/g, "_") + ".json" });
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  // ---- wiring --------------------------------------------------------------------------------
  function init() {
    $("token-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = $("token").value.trim();
      if (!v) return;
      try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* private mode: keep it for this page only */ }
      $("token").value = "";
      $("token").placeholder = "token set (paste another to replace)";
      route();
    });
    $("forget").addEventListener("click", function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing stored */ }
      $("token").placeholder = "paste a token";
      route();
    });
    if (token()) $("token").placeholder = "token set (paste another to replace)";
    Array.prototype.forEach.call(document.querySelectorAll("input[name=range]"), function (r) {
      r.addEventListener("change", function () { state.range = r.value; loadDashboard(); });
    });
    $("project-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      state.project = $("project").value.trim();
      loadDashboard();
    });
    $("chart-metric").addEventListener("change", renderChart);
    $("session-filters").addEventListener("submit", function (ev) { ev.preventDefault(); loadSessions(false); });
    $("more").addEventListener("click", function () { loadSessions(true); });
    $("raw-toggle").addEventListener("click", function () { setRaw(!state.raw); });
    $("download").addEventListener("click", download);
    window.addEventListener("hashchange", route);
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
