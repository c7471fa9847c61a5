// GET / : a small page listing live alerts with the browser's EventSource;
// GET /app.js : its script (separate, so the page's CSP allows no inline
// script). The page shows the connection state, listens for each severity,
// de-duplicates by id and, on a gap event, reloads /alerts/recent.
#include <event2/http.h>

#include "app.h"

namespace alerts {
namespace {

constexpr char kPage[] = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>alerts</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 48em; padding: 0 1em; }
header { display: flex; gap: 1em; align-items: baseline; }
.state { padding: .1em .6em; border-radius: 1em; background: #ddd; }
.state.open { background: #bfe8c4; }
.state.reconnecting, .state.connecting { background: #f6e3a8; }
.state.closed { background: #f3b9b9; }
ul { list-style: none; padding: 0; }
li { border-left: .4em solid #999; margin: .6em 0; padding: .3em .8em; background: #f7f7f7; }
li.info { border-color: #4a8fd8; }
li.warning { border-color: #e0a800; }
li.critical { border-color: #d83a3a; }
.sev { font-weight: bold; text-transform: uppercase; font-size: .8em; }
time { color: #666; font-size: .85em; }
p { margin: .2em 0; white-space: pre-wrap; }
</style>
</head>
<body data-stream="@STREAM@" data-recent="/alerts/recent" data-gap="@GAP@">
<header><h1>alerts: <span id="team"></span></h1>
<span id="state" class="state">connecting</span></header>
<p>Pick a team with <code>?team=NAME</code>.</p>
<ul id="alerts"></ul>
<script src="/app.js"></script>
</body>
</html>
)HTML";

constexpr char kScript[] = R"JS('use strict';
(function () {
  var body = document.body;
  var params = new URLSearchParams(location.search);
  var team = params.get('team') || params.get('topic') || 'ops';
  var token = params.get('access_token');
  var list = document.getElementById('alerts');
  var stateEl = document.getElementById('state');
  var seen = new Set();
  var MAX = 500;
  document.getElementById('team').textContent = team;

  function url(path) {
    var q = new URLSearchParams({topic: team});
    if (token) q.set('access_token', token);
    return path + '?' + q.toString();
  }
  function setState(s) {
    stateEl.textContent = s;
    stateEl.className = 'state ' + s;
  }
  // show adds one alert once (ids are unique), newest first by timestamp.
  function show(id, a) {
    if (!id || seen.has(id) || !a || typeof a.title !== 'string') return;
    seen.add(id);
    var li = document.createElement('li');
    li.className = ['info', 'warning', 'critical'].indexOf(a.severity) >= 0
        ? a.severity : 'info';
    li.dataset.ts = a.ts || '';
    li.dataset.id = id;
    var sev = document.createElement('span');
    sev.className = 'sev';
    sev.textContent = a.severity;
    var title = document.createElement('strong');
    title.textContent = ' ' + a.title + ' ';
    var time = document.createElement('time');
    time.textContent = a.ts || '';
    var text = document.createElement('p');
    text.textContent = a.body;
    li.append(sev, title, time, text);
    var next = list.firstChild;
    while (next && next.dataset.ts > li.dataset.ts) next = next.nextSibling;
    list.insertBefore(li, next);
    while (list.children.length > MAX) list.removeChild(list.lastChild);
  }
  function loadRecent() {
    fetch(url(body.dataset.recent), {credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (j) { j.alerts.forEach(function (a) { show(a.id, a); }); })
      .catch(function (e) { console.warn('recent alerts:', e); });
  }

  // The stream first, then the recent list: an alert published in between
  // arrives on the stream, and one in both is shown once (same id).
  var es = new EventSource(url(body.dataset.stream));
  var first = true;
  setState('connecting');
  es.onopen = function () {
    setState('open');
    if (first) loadRecent();
    first = false;
  };
  es.onerror = function () {
    setState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  };
  ['info', 'warning', 'critical'].forEach(function (severity) {
    es.addEventListener(severity, function (e) {
      try { show(e.lastEventId, JSON.parse(e.data)); }
      catch (err) { console.warn('bad alert', err); }
    });
  });
  // The server could not resume from our last id: events may be missing.
  es.addEventListener(body.dataset.gap || 'gap', loadRecent);
})();
)JS";

// Escape for an HTML attribute value in double quotes.
std::string Attr(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void Replace(std::string& s, std::string_view from, const std::string& to) {
  size_t at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
}

bool GetOnly(evhttp_request* req, const RequestInfo& info) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) return true;
  ReplyError(req, info, 405, "use GET", {{"Allow", "GET, HEAD"}});
  return false;
}

}  // namespace

void OnPage(evhttp_request* req, void* arg) {
  App& app = *static_cast<App*>(arg);
  RequestInfo info = Describe(req);
  if (!GetOnly(req, info)) return;
  std::string page = kPage;
  Replace(page, "@STREAM@", Attr(app.stream_path));
  std::string gap = "gap";
  for (const evsse::conf::Endpoint& e : app.config.endpoints)
    if (e.path == app.stream_path) gap = e.stream.gap_event;
  Replace(page, "@GAP@", Attr(gap));
  Reply(req, info, 200, "text/html; charset=utf-8", page,
        {{"Content-Security-Policy",
          "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; "
          "img-src 'none'; frame-ancestors 'none'; base-uri 'none'"},
         {"Referrer-Policy", "no-referrer"}});
}

void OnScript(evhttp_request* req, void*) {
  RequestInfo info = Describe(req);
  if (!GetOnly(req, info)) return;
  Reply(req, info, 200, "text/javascript; charset=utf-8", kScript);
}

void OnNotFound(evhttp_request* req, void*) {
  RequestInfo info = Describe(req);
  ReplyError(req, info, 404, "not found");
}

}  // namespace alerts
