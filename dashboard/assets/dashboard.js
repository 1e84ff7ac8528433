// dashboard.js: the job page of package dashboard, hand-written, with no
// framework and nothing fetched but the JSON API it polls.
//
// It polls the job's JSON (GET /v1/job by default, or the same-server path
// in ?job=) once a second and updates the page in place: the graph and the
// tables are built when the plan's shape changes and only their numbers
// change otherwise, so their elements keep their identity between polls.
// Rates and time shares are differences between two polls over the
// difference of the job's elapsed_ns; the first poll shows averages since
// the start.
//
// Elements carry data attributes for tests and scripts: body[data-polls]
// (successful polls) and body[data-state] (loading, running, finished,
// error); g.node[data-vertex] in the graph and tr[data-vertex] in the
// vertices table, both with data-backpressure (ok, low, high) and
// data-backpressured (true when high); the rows also carry data-rate (the
// records/s a source reads or any other vertex receives), data-rate-in,
// data-rate-out, data-records-in, data-records-out, data-busy,
// data-blocked, data-idle (shares of 1), data-watermark (unix ns, empty
// when none), data-lag-ns and data-skew (the busiest instance's share over
// an even share; empty when unknown); g[data-edge] with data-kind;
// #progress[data-progress] (0 to 1) and [data-eta-s];
// tr[data-checkpoint] with data-completed; tr[data-recovery];
// explain-why's #asides tr[data-aside] (one per stage and reason, with
// data-stage, the stage's index, data-reason and data-count) holding
// li[data-reason] examples with data-record and data-rule; the header's
// span.label[data-key] with data-value, one per job label.
(function () {
  'use strict';

  var SVGNS = 'http://www.w3.org/2000/svg';
  // Flink's levels of backpressure: the share of time blocked on credit.
  var BP_LOW = 0.1, BP_HIGH = 0.5;
  var NODE_W = 250, HEAD_H = 22, STAGE_H = 15, STAT_H = 40;

  // ---------------------------------------------------------------- layout

  // layout places a directed graph in layers, left to right (Sugiyama's
  // scheme): each node's layer is the longest path to it from a node
  // without inputs; an edge spanning several layers gets a placeholder in
  // each layer between, so that it bends around the nodes there; the
  // order within each layer comes from barycentre sweeps, down and up,
  // keeping the order with the fewest crossings; a layer is a column,
  // centred on the tallest.
  //
  // nodes: [{id, w, h}]; edges: [{from, to}] by node id. It returns
  // {nodes: Map id -> {x, y, w, h, layer}, edges: [{from, to, points:
  // [[x, y], ...]}] in the order given, width, height, crossings}.
  function layout(nodes, edges, opts) {
    opts = opts || {};
    var colGap = opts.colGap || 90, rowGap = opts.rowGap || 24, margin = opts.margin || 20, dummyH = opts.dummyH || 14;
    var byId = new Map();
    nodes.forEach(function (n) { byId.set(n.id, n); });
    var ins = new Map(), outs = new Map();
    nodes.forEach(function (n) { ins.set(n.id, []); outs.set(n.id, []); });
    var es = [];
    edges.forEach(function (e, i) {
      if (byId.has(e.from) && byId.has(e.to) && e.from !== e.to) {
        var x = {from: e.from, to: e.to, index: i};
        es.push(x);
        outs.get(e.from).push(x);
        ins.get(e.to).push(x);
      }
    });

    // Layers by longest path, in Kahn's order. A plan has no cycle; were
    // there one, its nodes would keep the layer reached so far.
    var layerOf = new Map(), indeg = new Map(), queue = [];
    nodes.forEach(function (n) {
      layerOf.set(n.id, 0);
      indeg.set(n.id, ins.get(n.id).length);
      if (indeg.get(n.id) === 0) queue.push(n.id);
    });
    for (var qi = 0; qi < queue.length; qi++) {
      var id = queue[qi];
      outs.get(id).forEach(function (e) {
        layerOf.set(e.to, Math.max(layerOf.get(e.to), layerOf.get(id) + 1));
        indeg.set(e.to, indeg.get(e.to) - 1);
        if (indeg.get(e.to) === 0) queue.push(e.to);
      });
    }
    var nLayers = 0;
    layerOf.forEach(function (l) { nLayers = Math.max(nLayers, l + 1); });
    var layers = [];
    for (var l = 0; l < nLayers; l++) layers.push([]);
    var items = new Map(); // key -> {layer, w, h, dummy}
    nodes.forEach(function (n) {
      var k = 'n' + n.id;
      items.set(k, {layer: layerOf.get(n.id), w: n.w, h: n.h, dummy: false, id: n.id});
      layers[layerOf.get(n.id)].push(k);
    });

    // Placeholders on long edges; segments join adjacent layers.
    var up = new Map(), down = new Map(), segs = [], routes = [];
    items.forEach(function (_, k) { up.set(k, []); down.set(k, []); });
    es.forEach(function (e) {
      var a = layerOf.get(e.from), b = layerOf.get(e.to), keys = ['n' + e.from];
      for (var l = a + 1; l < b; l++) {
        var k = 'd' + e.index + '.' + l;
        items.set(k, {layer: l, w: 0, h: dummyH, dummy: true});
        up.set(k, []); down.set(k, []);
        layers[l].push(k);
        keys.push(k);
      }
      keys.push('n' + e.to);
      for (var i = 0; i + 1 < keys.length; i++) {
        if (items.get(keys[i + 1]).layer === items.get(keys[i]).layer + 1) {
          segs.push([keys[i], keys[i + 1]]);
          down.get(keys[i]).push(keys[i + 1]);
          up.get(keys[i + 1]).push(keys[i]);
        }
      }
      routes.push({edge: e, keys: keys});
    });

    var pos = new Map();
    function number() { layers.forEach(function (L) { L.forEach(function (k, i) { pos.set(k, i); }); }); }
    number();
    function sweep(dir) {
      var from = dir > 0 ? 1 : nLayers - 2;
      for (var l = from; l >= 0 && l < nLayers; l += dir) {
        var L = layers[l], nb = dir > 0 ? up : down, bc = new Map();
        L.forEach(function (k) {
          var ns = nb.get(k);
          if (ns.length === 0) { bc.set(k, pos.get(k)); return; }
          var s = 0;
          ns.forEach(function (n) { s += pos.get(n); });
          bc.set(k, s / ns.length);
        });
        L.sort(function (a, b) { return bc.get(a) - bc.get(b) || pos.get(a) - pos.get(b); });
        L.forEach(function (k, i) { pos.set(k, i); });
      }
    }
    function crossings() {
      var byLayer = [];
      for (var l = 0; l < nLayers; l++) byLayer.push([]);
      segs.forEach(function (s) { byLayer[items.get(s[0]).layer].push([pos.get(s[0]), pos.get(s[1])]); });
      var c = 0;
      byLayer.forEach(function (S) {
        for (var i = 0; i < S.length; i++) {
          for (var j = i + 1; j < S.length; j++) {
            if ((S[i][0] - S[j][0]) * (S[i][1] - S[j][1]) < 0) c++;
          }
        }
      });
      return c;
    }
    var best = layers.map(function (L) { return L.slice(); }), bestC = crossings();
    for (var it = 0; it < 12 && bestC > 0; it++) {
      sweep(1);
      sweep(-1);
      var c = crossings();
      if (c < bestC) { bestC = c; best = layers.map(function (L) { return L.slice(); }); }
    }
    layers = best;
    number();

    // Coordinates: columns left to right, each centred on the tallest.
    var colW = [], colH = [], colX = [], x = margin, height = 0;
    layers.forEach(function (L, l) {
      var w = 0, h = 0;
      L.forEach(function (k, i) { var it = items.get(k); w = Math.max(w, it.w); h += it.h + (i > 0 ? rowGap : 0); });
      colW[l] = Math.max(w, 20);
      colH[l] = h;
      colX[l] = x;
      x += colW[l] + colGap;
      height = Math.max(height, h);
    });
    var width = Math.max(x - colGap + margin, 2 * margin);
    var place = new Map();
    layers.forEach(function (L, l) {
      var y = margin + (height - colH[l]) / 2;
      L.forEach(function (k) {
        var it = items.get(k);
        place.set(k, {x: colX[l] + (colW[l] - it.w) / 2, y: y, w: it.w, h: it.h, layer: l});
        y += it.h + rowGap;
      });
    });

    // Edges leave a node's right side and enter the left, spread over its
    // height in the order of the other ends.
    var outAt = new Map(), inAt = new Map();
    function spread(map, lists, other) {
      lists.forEach(function (list) {
        var sorted = list.slice().sort(function (a, b) {
          var pa = place.get(other(a)), pb = place.get(other(b));
          return pa.y - pb.y || a.index - b.index;
        });
        sorted.forEach(function (e, i) { map.set(e.index, (i + 1) / (sorted.length + 1)); });
      });
    }
    // The neighbour that decides an end's slot is the route's next (or
    // previous) point, a placeholder or a node.
    var routeOf = new Map();
    routes.forEach(function (r) { routeOf.set(r.edge.index, r.keys); });
    spread(outAt, outs, function (e) { return routeOf.get(e.index)[1]; });
    spread(inAt, ins, function (e) { var ks = routeOf.get(e.index); return ks[ks.length - 2]; });

    var outEdges = routes.map(function (r) {
      var pts = r.keys.map(function (k, i) {
        var p = place.get(k);
        if (items.get(k).dummy) return [p.x, p.y + p.h / 2];
        if (i === 0) return [p.x + p.w, p.y + p.h * outAt.get(r.edge.index)];
        return [p.x, p.y + p.h * inAt.get(r.edge.index)];
      });
      return {from: r.edge.from, to: r.edge.to, index: r.edge.index, points: pts};
    });
    var outNodes = new Map();
    nodes.forEach(function (n) { outNodes.set(n.id, place.get('n' + n.id)); });
    return {nodes: outNodes, edges: outEdges, width: width, height: height + 2 * margin, crossings: bestC};
  }

  // pathOf draws points as a smooth curve, horizontal at each point.
  function pathOf(pts) {
    var d = 'M' + pts[0][0].toFixed(1) + ',' + pts[0][1].toFixed(1);
    for (var i = 1; i < pts.length; i++) {
      var a = pts[i - 1], b = pts[i], dx = Math.max(Math.abs(b[0] - a[0]) / 2, 20);
      d += ' C' + (a[0] + dx).toFixed(1) + ',' + a[1].toFixed(1) + ' ' + (b[0] - dx).toFixed(1) + ',' + b[1].toFixed(1) +
        ' ' + b[0].toFixed(1) + ',' + b[1].toFixed(1);
    }
    return d;
  }

  // ---------------------------------------------------------------- numbers

  function fmtCount(n) {
    if (n === null || n === undefined || !isFinite(n)) return '—';
    var a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(2) + ' G';
    if (a >= 1e6) return (n / 1e6).toFixed(2) + ' M';
    if (a >= 1e4) return (n / 1e3).toFixed(1) + ' k';
    return String(Math.round(n));
  }
  function fmtRate(r) { return r === null || !isFinite(r) ? '—' : fmtCount(r) + '/s'; }
  function fmtDur(ns) {
    if (ns === null || ns === undefined || !isFinite(ns)) return '—';
    var s = ns / 1e9;
    if (s < 1e-3) return (ns / 1e3).toFixed(0) + ' µs';
    if (s < 1) return (ns / 1e6).toFixed(1) + ' ms';
    if (s < 60) return s.toFixed(2) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + Math.floor(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' m';
  }
  function fmtBytes(b) {
    if (!b) return '0 B';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(b) : b.toFixed(1)) + ' ' + u[i];
  }
  function fmtTime(ns) {
    if (ns === null || ns === undefined) return '—';
    var d = new Date(ns / 1e6);
    if (isNaN(d.getTime())) return '—';
    return d.toISOString().replace('T', ' ').replace('Z', '');
  }
  function pct(x) { return (100 * x).toFixed(0) + ' %'; }
  function clamp01(x) { return isFinite(x) ? Math.min(1, Math.max(0, x)) : 0; }
  function level(blocked) { return blocked > BP_HIGH ? 'high' : blocked > BP_LOW ? 'low' : 'ok'; }

  // derive computes each vertex's numbers from this poll and the last.
  function derive(view, prev, prevDerived) {
    var out = new Map();
    var stagesOf = new Map();
    (view.stages || []).forEach(function (s, i) {
      if (!stagesOf.has(s.Vertex)) stagesOf.set(s.Vertex, []);
      stagesOf.get(s.Vertex).push({stat: s, kind: kindOf(view, i)});
    });
    var prevV = new Map();
    if (prev) (prev.vertices || []).forEach(function (v) { prevV.set(v.ID, v); });
    var prevOut = new Map();
    if (prev) (prev.stages || []).forEach(function (s) { prevOut.set(s.Vertex, s.Records); });
    var dtNs = prev ? view.elapsed_ns - prev.elapsed_ns : 0;
    (view.vertices || []).forEach(function (v) {
      var st = stagesOf.get(v.ID) || [];
      var d = {stages: st.map(function (x) { return x.stat; }), source: st.length > 0 && st[0].kind === 'source',
        sink: st.length > 0 && st[st.length - 1].kind === 'sink'};
      d.in = v.RecordsIn;
      d.out = st.length ? st[st.length - 1].stat.Records : 0;
      var p = prevV.get(v.ID), par = Math.max(1, v.Parallelism);
      if (p && dtNs > 0) {
        var dt = dtNs / 1e9;
        d.rateIn = Math.max(0, (v.RecordsIn - p.RecordsIn) / dt);
        d.rateOut = Math.max(0, (d.out - prevOut.get(v.ID)) / dt);
        d.busy = clamp01((v.Busy - p.Busy) / (dtNs * par));
        d.blocked = clamp01((v.Blocked - p.Blocked) / (dtNs * par));
        d.window = 'poll';
      } else if (p && prevDerived && prevDerived.has(v.ID)) { // the same instant polled twice
        var q = prevDerived.get(v.ID);
        d.rateIn = q.rateIn; d.rateOut = q.rateOut; d.busy = q.busy; d.blocked = q.blocked; d.window = q.window;
      } else {
        var el = Math.max(1, view.elapsed_ns);
        d.rateIn = v.RecordsIn / (el / 1e9);
        d.rateOut = d.out / (el / 1e9);
        d.busy = clamp01(v.Busy / (el * par));
        d.blocked = clamp01(v.Blocked / (el * par));
        d.window = 'total';
      }
      if (d.busy + d.blocked > 1) d.blocked = 1 - d.busy;
      d.idle = clamp01(1 - d.busy - d.blocked);
      d.rate = d.source ? d.rateOut : d.rateIn;
      d.level = level(d.blocked);
      d.watermark = v.HasWatermark ? v.Watermark : null;
      d.lag = v.HasWatermark && view.has_event_time ? v.Lag : null;
      // Each instance's records over all inputs: the skew.
      var per = [];
      (v.InputRecords || []).forEach(function (inp) {
        (inp || []).forEach(function (n, j) { per[j] = (per[j] || 0) + n; });
      });
      var total = per.reduce(function (a, b) { return a + b; }, 0);
      d.shares = total > 0 ? per.map(function (n) { return n / total; }) : null;
      d.perInstance = per;
      d.skew = d.shares && d.shares.length > 0 ? Math.max.apply(null, d.shares) * d.shares.length : null;
      out.set(v.ID, d);
    });
    return out;
  }

  // kindOf returns what stage i of view is: source, transform, stateful
  // or sink (stage_kinds; from the name when the JSON lacks it).
  function kindOf(view, i) {
    var k = (view.stage_kinds || [])[i];
    if (k) return k;
    return /^source\b/.test(view.stages[i].Name) ? 'source' : /^(sink|foreach|collect)\b/.test(view.stages[i].Name) ? 'sink' : 'transform';
  }

  // progress sums the sources' records over their totals; null when a
  // source's total is unknown or there is none.
  function progress(view, prev) {
    var done = 0, total = 0, known = true, any = false;
    (view.stages || []).forEach(function (s, i) {
      if (kindOf(view, i) !== 'source') return;
      any = true;
      if (s.Total < 0) { known = false; return; }
      done += s.Records;
      total += s.Total;
    });
    if (!any || !known || total <= 0) return null;
    var r = {done: done, total: total, share: clamp01(done / total), eta: null};
    if (prev && view.elapsed_ns > prev.elapsed_ns) {
      var p = progress(prev, null);
      if (p) {
        var rate = (done - p.done) / ((view.elapsed_ns - prev.elapsed_ns) / 1e9);
        if (rate > 0) r.eta = (total - done) / rate;
      }
    } else if (view.elapsed_ns > 0 && done > 0) {
      r.eta = (total - done) / (done / (view.elapsed_ns / 1e9));
    }
    return r;
  }

  // ---------------------------------------------------------------- DOM

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function truncate(s, n) { return s.length <= n ? s : s.slice(0, n - 1) + '…'; }

  var shapeKey = '';
  var nodesEls = new Map(), rowEls = new Map(), stageRows = [];

  function shapeOf(view) {
    return JSON.stringify([(view.vertices || []).map(function (v) { return [v.ID, v.Parallelism, v.Name]; }),
      (view.edges || []).map(function (e) { return [e.from, e.to, e.kind, e.port]; })]);
  }

  function buildGraph(view, derived) {
    var svg = $('graph');
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    nodesEls.clear();
    var defs = sv('defs', {});
    var marker = sv('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '9', markerHeight: '9',
      markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse'});
    marker.appendChild(sv('path', {d: 'M0,0 L10,5 L0,10 z', fill: '#8c959f'}));
    defs.appendChild(marker);
    svg.appendChild(defs);
    var nodes = (view.vertices || []).map(function (v) {
      var n = (derived.get(v.ID).stages || []).length || 1;
      return {id: v.ID, w: NODE_W, h: HEAD_H + 6 + n * STAGE_H + STAT_H};
    });
    var edges = (view.edges || []).map(function (e) { return {from: e.from, to: e.to}; });
    var lay = layout(nodes, edges);
    svg.setAttribute('data-width', lay.width);
    svg.setAttribute('data-height', lay.height);
    fit();
    svg.setAttribute('viewBox', '0 0 ' + lay.width + ' ' + lay.height);
    svg.setAttribute('data-crossings', lay.crossings);
    var eg = sv('g', {'class': 'edges'});
    lay.edges.forEach(function (le) {
      var e = view.edges[le.index];
      var g = sv('g', {'data-edge': e.id, 'data-kind': e.kind, 'data-from': e.from, 'data-to': e.to});
      var cls = 'edge ' + e.kind + (e.port > 0 ? ' side' : '');
      g.appendChild(sv('path', {'class': cls, d: pathOf(le.points), 'marker-end': 'url(#arrow)'}));
      var a = le.points[0], b = le.points[1];
      var label = e.kind + (e.port > 0 ? ' · ' + (e.side || 'side ' + e.port) : '') + (e.hot_keys ? ' · ' + e.hot_keys + ' hot keys' : '');
      g.appendChild(sv('text', {'class': 'edge-label', x: ((a[0] + b[0]) / 2).toFixed(1), y: ((a[1] + b[1]) / 2 - 4).toFixed(1), 'text-anchor': 'middle'}, label));
      g.appendChild(sv('title', {}, 'edge ' + e.id + ': v' + e.from + ' → v' + e.to + ' (' + e.kind + ')' + (e.stage ? ' from ' + e.stage : '')));
      eg.appendChild(g);
    });
    svg.appendChild(eg);
    (view.vertices || []).forEach(function (v) {
      var p = lay.nodes.get(v.ID), d = derived.get(v.ID);
      var g = sv('g', {'class': 'node', 'data-vertex': v.ID, transform: 'translate(' + p.x.toFixed(1) + ',' + p.y.toFixed(1) + ')'});
      g.appendChild(sv('title', {}, 'v' + v.ID + ' ×' + v.Parallelism + ': ' + v.Name + (v.Note ? '\n' + v.Note : '')));
      g.appendChild(sv('rect', {'class': 'box', width: p.w, height: p.h, rx: 6}));
      g.appendChild(sv('rect', {'class': 'head', x: 1.5, y: 1.5, width: p.w - 3, height: HEAD_H - 1.5, rx: 5}));
      g.appendChild(sv('text', {'class': 'title', x: 8, y: 15}, 'v' + v.ID + '  ×' + v.Parallelism));
      var bp = sv('text', {'class': 'stat', x: p.w - 8, y: 15, 'text-anchor': 'end'}, '');
      g.appendChild(bp);
      var y = HEAD_H + 4;
      var stages = d.stages.length ? d.stages : [{Name: v.Name}];
      stages.forEach(function (s, i) {
        y += STAGE_H;
        g.appendChild(sv('text', {'class': 'stage', x: 8, y: y - 3}, (i > 0 ? '→ ' : '') + truncate(s.Name, 34)));
      });
      var rate = sv('text', {'class': 'stat', x: 8, y: y + 14}, '');
      g.appendChild(rate);
      var bw = p.w - 16, by = y + 22;
      var busy = sv('rect', {'class': 'busy', x: 8, y: by, height: 8, width: 0});
      var blocked = sv('rect', {'class': 'blocked', x: 8, y: by, height: 8, width: 0});
      var idle = sv('rect', {'class': 'idle', x: 8, y: by, height: 8, width: bw});
      g.appendChild(idle); g.appendChild(busy); g.appendChild(blocked);
      svg.appendChild(g);
      nodesEls.set(v.ID, {g: g, bp: bp, rate: rate, busy: busy, blocked: blocked, idle: idle, bw: bw});
    });
  }

  // fit sizes the graph: at full size, scrolling, or scaled down to the
  // page's width when the fit button is pressed.
  var fitted = false;
  function fit() {
    var svg = $('graph'), w = Number(svg.getAttribute('data-width')), h = Number(svg.getAttribute('data-height'));
    if (!w) return;
    var avail = $('graph-wrap').clientWidth - 2, s = fitted && w > avail ? avail / w : 1;
    svg.setAttribute('width', (w * s).toFixed(0));
    svg.setAttribute('height', (h * s).toFixed(0));
  }

  function updateGraph(view, derived) {
    (view.vertices || []).forEach(function (v) {
      var n = nodesEls.get(v.ID), d = derived.get(v.ID);
      if (!n) return;
      n.g.setAttribute('data-backpressure', d.level);
      n.g.setAttribute('data-backpressured', String(d.level === 'high'));
      n.bp.textContent = 'busy ' + pct(d.busy) + ' · bp ' + pct(d.blocked);
      n.rate.textContent = (d.source ? fmtRate(d.rateOut) + ' read' :
        fmtRate(d.rateIn) + ' in · ' + fmtRate(d.rateOut) + (d.sink ? ' written' : ' out')) +
        (d.lag !== null ? ' · lag ' + fmtDur(d.lag) : '');
      var x = 8;
      n.busy.setAttribute('x', x); n.busy.setAttribute('width', (d.busy * n.bw).toFixed(1)); x += d.busy * n.bw;
      n.blocked.setAttribute('x', x.toFixed(1)); n.blocked.setAttribute('width', (d.blocked * n.bw).toFixed(1));
    });
  }

  function buildVertexRows(view, derived) {
    var tb = $('vertices').tBodies[0];
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    rowEls.clear();
    (view.vertices || []).forEach(function (v) {
      var d = derived.get(v.ID), tr = el('tr');
      tr.setAttribute('data-vertex', v.ID);
      var c = {};
      function cell(name, cls) { var td = el('td', cls); tr.appendChild(td); c[name] = td; return td; }
      cell('id').textContent = 'v' + v.ID;
      var st = cell('stages');
      (d.stages.length ? d.stages : [{Name: v.Name}]).forEach(function (s) { st.appendChild(el('span', 'stage', s.Name)); });
      if (v.Note) st.appendChild(el('span', 'muted', v.Note));
      cell('par', 'num').textContent = v.Parallelism;
      cell('in', 'num'); cell('out', 'num'); cell('rin', 'num'); cell('rout', 'num');
      var sh = cell('share'), bar = el('div', 'share');
      c.busy = el('i', 'busy'); c.blocked = el('i', 'blocked'); c.idle = el('i', 'idle');
      bar.appendChild(c.busy); bar.appendChild(c.blocked); bar.appendChild(c.idle);
      sh.appendChild(bar);
      c.shareText = el('span', 'muted');
      sh.appendChild(c.shareText);
      c.badge = el('span', 'badge');
      cell('bp').appendChild(c.badge);
      cell('wm', 'wm'); cell('lag', 'num');
      var sk = cell('skew');
      c.skewBars = el('div', 'skew');
      c.skewText = el('span', 'muted');
      sk.appendChild(c.skewBars); sk.appendChild(c.skewText);
      cell('restarts', 'num'); cell('done');
      $('vertices').tBodies[0].appendChild(tr);
      rowEls.set(v.ID, {tr: tr, c: c});
    });
  }

  function updateVertexRows(view, derived) {
    (view.vertices || []).forEach(function (v) {
      var r = rowEls.get(v.ID), d = derived.get(v.ID);
      if (!r) return;
      var tr = r.tr, c = r.c;
      tr.setAttribute('data-rate', d.rate.toFixed(3));
      tr.setAttribute('data-rate-in', d.rateIn.toFixed(3));
      tr.setAttribute('data-rate-out', d.rateOut.toFixed(3));
      tr.setAttribute('data-records-in', d.in);
      tr.setAttribute('data-records-out', d.out);
      tr.setAttribute('data-busy', d.busy.toFixed(4));
      tr.setAttribute('data-blocked', d.blocked.toFixed(4));
      tr.setAttribute('data-idle', d.idle.toFixed(4));
      tr.setAttribute('data-backpressure', d.level);
      tr.setAttribute('data-backpressured', String(d.level === 'high'));
      tr.setAttribute('data-watermark', d.watermark === null ? '' : String(d.watermark));
      tr.setAttribute('data-lag-ns', d.lag === null ? '' : String(d.lag));
      tr.setAttribute('data-skew', d.skew === null ? '' : d.skew.toFixed(3));
      tr.setAttribute('data-window', d.window);
      c.in.textContent = d.source ? '—' : fmtCount(d.in);
      c.out.textContent = fmtCount(d.out);
      c.rin.textContent = d.source ? '—' : fmtRate(d.rateIn);
      c.rout.textContent = fmtRate(d.rateOut);
      c.busy.style.width = (100 * d.busy).toFixed(1) + '%';
      c.blocked.style.width = (100 * d.blocked).toFixed(1) + '%';
      c.idle.style.width = (100 * d.idle).toFixed(1) + '%';
      c.shareText.textContent = pct(d.busy) + ' · ' + pct(d.blocked) + ' · ' + pct(d.idle);
      c.badge.className = 'badge ' + d.level;
      c.badge.textContent = d.level === 'high' ? 'HIGH' : d.level === 'low' ? 'LOW' : 'OK';
      c.wm.textContent = d.watermark === null ? '—' : fmtTime(d.watermark);
      c.lag.textContent = d.lag === null ? '—' : fmtDur(d.lag);
      // Skew: one bar per instance, as tall as its share of the busiest.
      var bars = c.skewBars, n = d.shares ? d.shares.length : 0;
      while (bars.childNodes.length > n) bars.removeChild(bars.lastChild);
      while (bars.childNodes.length < n) bars.appendChild(el('i'));
      if (n > 0) {
        var mx = Math.max.apply(null, d.shares), w = Math.max(1, Math.min(8, Math.floor(160 / n))), mi = d.shares.indexOf(mx);
        d.shares.forEach(function (s, j) {
          var b = bars.childNodes[j];
          b.style.width = w + 'px';
          b.style.height = (mx > 0 ? 100 * s / mx : 0).toFixed(0) + '%';
          b.className = j === mi ? 'max' : '';
          b.title = 'instance ' + j + (v.Nodes && v.Nodes[j] ? ' on node ' + v.Nodes[j] : '') + ': ' + d.perInstance[j] + ' records (' + pct(s) + ')';
        });
        bars.className = 'skew' + (d.skew > 1.5 ? ' hot' : '');
        c.skewText.textContent = 'max ' + pct(mx) + ' (instance ' + mi + ')' + (n > 1 ? ', ' + d.skew.toFixed(2) + '× even' : '');
      } else {
        bars.className = 'skew';
        c.skewText.textContent = d.source ? 'source' : '—';
      }
      c.restarts.textContent = v.Restarts;
      c.done.textContent = v.Finished + '/' + v.Parallelism;
    });
  }

  function buildStageRows(view) {
    var tb = $('stages').tBodies[0];
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    stageRows = (view.stages || []).map(function (s, i) {
      var tr = el('tr');
      tr.setAttribute('data-stage', i);
      tr.setAttribute('data-stage-vertex', s.Vertex);
      var c = {};
      ['name', 'vertex', 'records', 'progress', 'aside', 'loc'].forEach(function (k) {
        c[k] = el('td', k === 'records' ? 'num' : '');
        tr.appendChild(c[k]);
      });
      c.name.appendChild(el('span', 'stage', s.Name));
      c.vertex.textContent = 'v' + s.Vertex;
      c.loc.textContent = s.Loc || '';
      c.loc.className = 'muted';
      tb.appendChild(tr);
      return {tr: tr, c: c};
    });
  }

  function updateStageRows(view) {
    (view.stages || []).forEach(function (s, i) {
      var r = stageRows[i];
      if (!r) return;
      r.tr.setAttribute('data-records', s.Records);
      r.c.records.textContent = fmtCount(s.Records);
      r.c.progress.textContent = '';
      if (s.Total > 0) {
        var bar = el('span', 'pbar'), fill = el('i');
        fill.style.width = (100 * clamp01(s.Records / s.Total)).toFixed(1) + '%';
        bar.appendChild(fill);
        r.c.progress.appendChild(bar);
        r.c.progress.appendChild(document.createTextNode(pct(clamp01(s.Records / s.Total)) + ' of ' + fmtCount(s.Total)));
      }
      var aside = [];
      (s.Side || []).forEach(function (n, p) { if (n > 0) aside.push(fmtCount(n) + ' ' + ((s.SideNames || [])[p] || 'side ' + (p + 1))); });
      if (s.DroppedLate > 0) aside.push(fmtCount(s.DroppedLate) + ' dropped late');
      if (s.DroppedClosed > 0) aside.push(fmtCount(s.DroppedClosed) + ' dropped: window closed');
      r.c.aside.textContent = aside.join(', ');
    });
  }

  // asideReasons are explain-why's reasons, as the JSON names them, with
  // the stage's count of each.
  var asideReasons = [
    {name: 'late', count: function (s) { return s.Late; }, what: 'late: behind the watermark, in a late pane'},
    {name: 'too late', count: function (s) { return s.DroppedLate; }, what: 'dropped: past the allowed lateness'},
    {name: 'window closed', count: function (s) { return s.DroppedClosed; }, what: 'dropped: window closed'},
    {name: 'dead letter', count: function (s) { return s.DeadLetters; }, what: 'dead letter'}
  ];
  var asidesKey = '';

  // updateAsides lists, per stage and reason, the records set aside and
  // the stage's examples; it rebuilds the table when they change.
  function updateAsides(view) {
    var rows = [];
    (view.stages || []).forEach(function (s, i) {
      asideReasons.forEach(function (r) {
        var n = r.count(s) || 0;
        if (n <= 0) return;
        var ex = (s.Asides || []).filter(function (a) { return a.Reason === r.name; });
        rows.push({stage: i, s: s, r: r, n: n, ex: ex});
      });
    });
    var key = JSON.stringify(rows.map(function (x) { return [x.stage, x.r.name, x.n, x.ex.length]; }));
    if (key === asidesKey) return;
    asidesKey = key;
    var tb = $('asides').tBodies[0];
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    $('asides-none').hidden = rows.length > 0;
    $('asides').hidden = rows.length === 0;
    rows.forEach(function (x) {
      var tr = el('tr');
      tr.setAttribute('data-aside', '');
      tr.setAttribute('data-stage', x.stage);
      tr.setAttribute('data-reason', x.r.name);
      tr.setAttribute('data-count', x.n);
      var name = el('td');
      name.appendChild(el('span', 'stage', x.s.Name));
      tr.appendChild(name);
      tr.appendChild(el('td', '', 'v' + x.s.Vertex));
      tr.appendChild(el('td', '', x.r.what));
      tr.appendChild(el('td', 'num', fmtCount(x.n)));
      var td = el('td'), ul = el('ul');
      x.ex.forEach(function (a) {
        var li = el('li');
        li.setAttribute('data-reason', a.Reason);
        li.setAttribute('data-record', a.Record);
        li.setAttribute('data-rule', a.Rule);
        li.appendChild(el('code', '', a.Record));
        li.appendChild(document.createTextNode(' — ' + a.Rule + (a.Port > 0 ? ' (sent to side output ' + a.Port + ')' : '')));
        if (a.HasTime) {
          li.title = 'event time ' + fmtTime(a.EventTime) + ', watermark ' + fmtTime(a.Watermark) +
            ', allowed lateness ' + fmtDur(a.AllowedLateness) + ', window ' + fmtTime(a.WindowStart) + ' – ' + fmtTime(a.WindowEnd);
        }
        ul.appendChild(li);
      });
      if (x.ex.length < x.n) ul.appendChild(el('li', 'muted', (x.n - x.ex.length) + ' more not kept'));
      td.appendChild(ul);
      tr.appendChild(td);
      tb.appendChild(tr);
    });
  }

  var labelsKey = '';

  // updateLabels shows the job's labels (run --label) in the header.
  function updateLabels(view) {
    var ls = view.labels || {}, keys = Object.keys(ls).sort(), key = JSON.stringify(ls);
    if (key === labelsKey) return;
    labelsKey = key;
    var box = $('job-labels');
    while (box.firstChild) box.removeChild(box.firstChild);
    keys.forEach(function (k) {
      var s = el('span', 'label', k + '=' + ls[k]);
      s.setAttribute('data-key', k);
      s.setAttribute('data-value', ls[k]);
      box.appendChild(s);
    });
  }

  function updateCheckpoints(view) {
    var cks = view.checkpoints || [], tb = $('checkpoints').tBodies[0];
    $('checkpoints-none').hidden = cks.length > 0;
    $('checkpoints').hidden = cks.length === 0;
    var done = 0, failed = 0;
    cks.forEach(function (c) { if (c.Completed) done++; else failed++; });
    var last = cks.length ? cks[cks.length - 1] : null;
    $('checkpoints-summary').textContent = cks.length ? done + ' completed, ' + failed + ' failed' +
      (last && last.End > 0 ? '; the last took ' + fmtDur(last.End - last.Start) : '') : '';
    var shown = cks.slice(-30).reverse();
    while (tb.childNodes.length > shown.length) tb.removeChild(tb.lastChild);
    while (tb.childNodes.length < shown.length) {
      var tr = el('tr');
      for (var i = 0; i < 7; i++) tr.appendChild(el('td', i === 0 || (i >= 3 && i <= 5) ? 'num' : ''));
      tb.appendChild(tr);
    }
    shown.forEach(function (c, i) {
      var tr = tb.childNodes[i], td = tr.childNodes;
      tr.setAttribute('data-checkpoint', c.ID);
      tr.setAttribute('data-completed', String(!!c.Completed));
      tr.className = c.Completed ? '' : 'failed';
      td[0].textContent = c.ID;
      td[1].textContent = c.Completed ? 'completed' : c.End > 0 ? 'failed: ' + (c.Reason || 'abandoned') : 'in progress';
      td[2].textContent = fmtTime(c.Start);
      td[3].textContent = c.End > 0 ? fmtDur(c.End - c.Start) : '—';
      td[4].textContent = c.Alignment ? fmtDur(c.Alignment) : '—';
      td[5].textContent = fmtBytes(c.Bytes || 0);
      var by = c.ByStage || {};
      td[6].textContent = Object.keys(by).sort().map(function (k) { return k + ' ' + fmtBytes(by[k]); }).join(', ');
    });
  }

  function updateRecoveries(view) {
    var rs = view.recoveries || [], tb = $('recoveries').tBodies[0];
    $('recoveries-none').hidden = rs.length > 0;
    $('recoveries').hidden = rs.length === 0;
    while (tb.childNodes.length > rs.length) tb.removeChild(tb.lastChild);
    while (tb.childNodes.length < rs.length) {
      var tr = el('tr');
      for (var i = 0; i < 7; i++) tr.appendChild(el('td', i === 0 || i === 2 || i >= 5 ? 'num' : ''));
      tb.appendChild(tr);
    }
    rs.forEach(function (r, i) {
      var tr = tb.childNodes[i], td = tr.childNodes;
      tr.setAttribute('data-recovery', r.Attempt);
      td[0].textContent = r.Attempt;
      td[1].textContent = r.Cause || '';
      td[2].textContent = r.Checkpoint ? r.Checkpoint : 'none: from the start';
      td[3].textContent = (r.Skipped || []).join('; ');
      td[4].textContent = r.Failed ? String(r.Failed).replace('T', ' ') : '';
      td[5].textContent = r.Restored ? fmtDur(r.Restored) : '—';
      td[6].textContent = fmtCount(r.Replayed || 0);
    });
    var ks = view.kills || [], ul = $('kills');
    while (ul.childNodes.length > ks.length) ul.removeChild(ul.lastChild);
    ks.forEach(function (k, i) {
      if (i >= ul.childNodes.length) ul.appendChild(el('li'));
      var inst = k.Instance || {};
      ul.childNodes[i].textContent = 'chaos kill ' + k.N + ': ' + (inst.Stage || '') + ' instance ' + (inst.Index !== undefined ? inst.Index : '') +
        ' at ' + fmtCount(k.Records) + ' records';
    });
  }

  // rows makes tbody hold n rows of cols cells, cls(i) the class of cell i.
  function rows(tb, n, cols, cls) {
    while (tb.childNodes.length > n) tb.removeChild(tb.lastChild);
    while (tb.childNodes.length < n) {
      var tr = el('tr');
      for (var i = 0; i < cols; i++) tr.appendChild(el('td', cls(i)));
      tb.appendChild(tr);
    }
  }

  // updateInstances fills the per-instance table: tr[data-instance="V/I"]
  // with data-backpressured.
  var prevInst = new Map(); // "V/I" → {recs, el}: the last poll's, for rates
  function updateInstances(view) {
    var list = [];
    (view.vertices || []).forEach(function (v) {
      (v.Instances || []).forEach(function (is, i) { list.push({v: v, is: is, i: i}); });
    });
    var tb = $('instances').tBodies[0], el0 = view.elapsed_ns || 1;
    rows(tb, list.length, 13, function (i) { return i === 1 || (i >= 3 && i <= 9) || i === 11 ? 'num' : ''; });
    var seen = new Map();
    list.forEach(function (x, k) {
      var tr = tb.childNodes[k], td = tr.childNodes, is = x.is;
      var blocked = clamp01((is.Blocked || 0) / el0), busy = clamp01((is.Busy || 0) / el0);
      tr.setAttribute('data-instance', x.v.ID + '/' + x.i);
      tr.setAttribute('data-backpressured', level(blocked) === 'high' ? 'true' : 'false');
      td[0].textContent = 'v' + x.v.ID;
      td[1].textContent = x.i;
      td[2].textContent = is.Node || '';
      td[3].textContent = fmtCount(is.RecordsIn || 0);
      td[4].textContent = fmtCount(is.RecordsOut || 0);
      td[5].textContent = fmtBytes(is.BytesIn || 0);
      td[6].textContent = fmtBytes(is.BytesOut || 0);
      td[7].textContent = pct(busy);
      td[8].textContent = pct(blocked);
      td[8].className = 'num bp-' + level(blocked);
      // records/s: what it took in (a source: what it read) since the last poll
      var key = x.v.ID + '/' + x.i, recs = is.RecordsIn || is.RecordsOut || 0, p = prevInst.get(key);
      var rate = p && view.elapsed_ns > p.el ? (recs - p.recs) / ((view.elapsed_ns - p.el) / 1e9) : null;
      seen.set(key, {recs: recs, el: view.elapsed_ns});
      td[9].textContent = fmtRate(rate);
      td[9].setAttribute('data-rate', rate === null ? '' : String(rate));
      td[10].textContent = is.HasWatermark ? fmtTime(is.Watermark) : '—';
      td[11].textContent = is.Restarts || 0;
      td[12].textContent = is.Done ? 'done' : '';
    });
    prevInst = seen;
  }

  // updateExceptions fills the exception history: tr[data-exception].
  function updateExceptions(view) {
    var ex = view.exceptions || [], tb = $('exceptions').tBodies[0];
    $('exceptions-none').hidden = ex.length > 0;
    $('exceptions').hidden = ex.length === 0;
    rows(tb, ex.length, 5, function () { return ''; });
    ex.forEach(function (e, k) {
      var td = tb.childNodes[k].childNodes;
      tb.childNodes[k].setAttribute('data-exception', e.Vertex + '/' + e.Instance);
      td[0].textContent = e.At ? String(e.At).replace('T', ' ') : '';
      td[1].textContent = e.Stage || '';
      td[2].textContent = e.Node || '';
      td[3].textContent = e.Restarted ? 'restarted' : 'gave up: the job failed';
      td[4].textContent = e.Error || '';
    });
  }

  function updateHeader(view, prog) {
    $('job-name').textContent = view.job + (view.id ? ' (' + view.id + ')' : '');
    document.title = view.job + ' · sluice';
    var state = view.running ? 'running' : 'finished';
    var s = $('job-state');
    s.textContent = state;
    s.className = 'state ' + state;
    document.body.setAttribute('data-state', state);
    $('job-run').textContent = view.run;
    $('job-elapsed').textContent = fmtDur(view.elapsed_ns);
    $('job-event-time').textContent = view.has_event_time ? fmtTime(view.event_time_ns) + ' UTC' : '—';
    var p = $('progress');
    if (prog) {
      p.hidden = false;
      p.setAttribute('data-progress', prog.share.toFixed(4));
      p.setAttribute('data-eta-s', prog.eta === null ? '' : prog.eta.toFixed(1));
      $('progress-fill').style.width = (100 * prog.share).toFixed(1) + '%';
      $('progress-text').textContent = pct(prog.share) + ' of ' + fmtCount(prog.total) + ' source records' +
        (view.running && prog.eta !== null ? ', about ' + fmtDur(prog.eta * 1e9) + ' left' : '');
    } else {
      p.hidden = true;
    }
  }

  // ---------------------------------------------------------------- polling

  // jsonURL returns the page's JSON URL: ?job= when it is a path on this
  // server, else /v1/job; and an error for one that is not.
  function jsonURL(search) {
    var q = new URLSearchParams(search).get('job');
    if (q === null || q === '') return {url: '/v1/job'};
    if (q[0] !== '/' || q[1] === '/' || q.indexOf('\\') >= 0) {
      return {url: null, error: 'job=' + q + ': give a path on this server, such as /v1/jobs/ID/stats'};
    }
    return {url: q};
  }

  var prev = null, prevDerived = null, polls = 0;

  function render(view) {
    var derived = derive(view, prev, prevDerived);
    var key = shapeOf(view);
    if (key !== shapeKey) {
      buildGraph(view, derived);
      buildVertexRows(view, derived);
      buildStageRows(view);
      shapeKey = key;
    }
    updateGraph(view, derived);
    updateVertexRows(view, derived);
    updateStageRows(view);
    updateAsides(view);
    updateLabels(view);
    updateCheckpoints(view);
    updateRecoveries(view);
    updateInstances(view);
    updateExceptions(view);
    updateHeader(view, progress(view, prev));
    prev = view;
    prevDerived = derived;
  }

  function showError(msg) {
    var e = $('error');
    e.hidden = !msg;
    e.textContent = msg || '';
    if (msg) {
      document.body.setAttribute('data-state', 'error');
      $('job-state').textContent = 'unreachable';
      $('job-state').className = 'state error';
    }
  }

  function start() {
    var src = jsonURL(location.search);
    if (!src.url) { showError(src.error); return; }
    var every = 1000;
    $('fit').addEventListener('click', function () {
      fitted = !fitted;
      this.setAttribute('aria-pressed', String(fitted));
      fit();
    });
    window.addEventListener('resize', fit);
    $('json-url').textContent = src.url;
    $('job-source').textContent = src.url;
    function poll() {
      fetch(src.url, {cache: 'no-store', headers: {Accept: 'application/json'}}).then(function (r) {
        if (!r.ok) {
          return r.text().then(function (t) {
            var msg = t;
            try { msg = JSON.parse(t).error || t; } catch (_) {}
            throw new Error('GET ' + src.url + ': ' + r.status + ' ' + msg);
          });
        }
        return r.json();
      }).then(function (view) {
        render(view);
        polls++;
        document.body.setAttribute('data-polls', polls);
        showError('');
      }).catch(function (err) {
        showError(err && err.message ? err.message : String(err));
      }).then(function () {
        setTimeout(poll, every);
      });
    }
    poll();
  }

  window.sluiceDashboard = {layout: layout, derive: derive, progress: progress, jsonURL: jsonURL, level: level};
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
