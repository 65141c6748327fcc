/* The dispatcher's map: cases from GET /cases (paged), coloured by step, overdue ones pulsing
 * red, clustered at low zoom; grid cells and boundaries from vector tiles; filters that
 * re-query the API; a case card from GET /cases/{id}; a refresh every cfg.refreshMs. */
(function () {
  'use strict';
  var S = (window.Sibiao = window.Sibiao || {});
  var el = function () { return S.el.apply(null, arguments); };

  function stepOf(cfg, status) {
    if (status === 'merged') return 0;
    for (var i = 0; i < cfg.statuses.length; i++) {
      if (cfg.statuses[i].value === status) return cfg.statuses[i].step;
    }
    return 1;
  }

  function colourOf(cfg, step) {
    for (var i = 0; i < cfg.steps.length; i++) if (cfg.steps[i].step === step) return cfg.steps[i].color;
    return '#1e88e5';
  }

  function select(name, label, options) {
    var box = el('select', { name: name }, [el('option', { value: '', text: '全部 all' })].concat(
      options.map(function (o) { return el('option', { value: o.value, text: o.label }); })));
    return { input: box, node: el('label', {}, [label, box]) };
  }

  function dl(pairs) {
    var list = el('dl', { class: 'sibiao-dl' });
    pairs.forEach(function (p) {
      list.appendChild(el('dt', { text: p[0] }));
      list.appendChild(el('dd', {}, [p[1] instanceof Node ? p[1] : (p[1] === null || p[1] === undefined || p[1] === '' ? '—' : String(p[1]))]));
    });
    return list;
  }

  S.dispatchPage = function (map, cfg) {
    var page = { map: map, cfg: cfg, ready: false, loading: false, loads: 0, errors: [], markers: {}, total: 0, unlocated: 0 };
    S.quietAttribution(map);
    var gcj02 = !!cfg.basemap.gcj02;
    var embedded = cfg.embedded || null;  // an exported page: cases and layers in the page
    var bases = S.baseMap(map, cfg.basemap, embedded && embedded.base);
    var overlays = {};
    cfg.overlays.forEach(function (spec) {
      var layer = S.overlay(map, spec, { gcj02: gcj02 });
      overlays[spec.zh + ' ' + spec.en] = layer;
      layer.addTo(map);
    });
    var cluster = L.markerClusterGroup({ chunkedLoading: true, disableClusteringAtZoom: 17, maxClusterRadius: 50 });
    cluster.addTo(map);
    overlays['案件 Cases'] = cluster;
    L.control.layers(bases, overlays, { collapsed: true }).addTo(map);
    S.legend(map, cfg.steps.map(function (s) { return { label: s.name, color: '#fff', fill: s.color, round: true }; })
      .concat([{ label: '超期 overdue', color: '#d50000', fill: '#fff', round: true }]));
    page.cluster = cluster;
    page.overlays = overlays;
    page.bases = bases;

    // ---- the panel: filters, counts, the case card ----------------------------------------
    var panel = document.getElementById('sibiao-panel');
    var steps = select('step', '步骤 step', cfg.steps.filter(function (s) { return s.step > 0; })
      .map(function (s) { return { value: String(s.step), label: s.step + ' ' + s.name }; }));
    var towns = select('town', '镇街 town', cfg.towns.map(function (t) { return { value: t.code, label: t.name + ' ' + t.code }; }));
    var cats = select('category', '大类 category', cfg.categories.map(function (c) { return { value: c.code, label: c.code + ' ' + c.name }; }));
    var overdue = el('input', { type: 'checkbox', name: 'overdue' });
    var from = el('input', { type: 'date', name: 'from' });
    var to = el('input', { type: 'date', name: 'to' });
    var form = el('form', { id: 'sibiao-filters' }, [
      towns.node, cats.node, steps.node,
      el('label', {}, [overdue, ' 仅超期 overdue only']),
      el('label', {}, ['从 from', from]), el('label', {}, ['到 to (含 incl.)', to]),
    ]);
    var counts = el('p', { id: 'sibiao-counts', class: 'sibiao-muted', text: '读取中 loading…' });
    var card = el('div', { id: 'sibiao-case-card', class: 'sibiao-case-card' });
    var authBox = el('div', { class: 'sibiao-auth', hidden: 'hidden' });
    panel.appendChild(el('h1', {}, ['调度地图 ', el('span', { class: 'en', text: 'Dispatch map' })]));
    panel.appendChild(authBox);
    panel.appendChild(el('h2', { text: '筛选 Filters' }));
    panel.appendChild(form);
    panel.appendChild(counts);
    panel.appendChild(card);
    S.authBox(authBox);
    form.addEventListener('submit', function (e) { e.preventDefault(); page.load(); });
    form.addEventListener('change', function () { page.load(); });

    function day(value, plus) {
      var d = new Date(value + 'T00:00:00+08:00');
      d.setTime(d.getTime() + plus * 86400000);
      var local = new Date(d.getTime() + 8 * 3600000).toISOString().slice(0, 10);
      return local + 'T00:00:00+08:00';
    }

    page.query = function () {
      var q = new URLSearchParams();
      if (towns.input.value) q.set('town', towns.input.value);
      if (cats.input.value) q.set('category', cats.input.value);
      if (steps.input.value) {
        var step = Number(steps.input.value);
        q.set('status', cfg.statuses.filter(function (s) { return s.step === step && s.value !== 'merged'; })
          .map(function (s) { return s.value; }).join(','));
      }
      if (overdue.checked) q.set('overdue', 'true');
      if (from.value) q.set('from', day(from.value, 0));
      if (to.value) q.set('to', day(to.value, 1));
      return q;
    };

    function icon(c) {
      var step = stepOf(cfg, c.status);
      var size = c.overdue ? 20 : 14;
      return L.divIcon({
        className: 'sibiao-case-icon',
        iconSize: [size, size],
        html: '<div class="sibiao-case-dot' + (c.overdue ? ' overdue' : '') + '" data-case="' + Number(c.id) +
          '" style="background:' + colourOf(cfg, step) + '"></div>',
      });
    }

    function marker(c) {
      var m = L.marker([c.location.lat, c.location.lon], {
        icon: icon(c), title: '#' + c.id + ' ' + c.item_code + (c.overdue ? ' 超期 overdue' : ''),
        zIndexOffset: c.overdue ? 1000 : 0,
      });
      m.caseId = c.id;
      m.on('click', function () { page.openCase(c.id); });
      return m;
    }

    var ticket = 0;
    /** Read every page of the cases matching the filters, then replace the markers. */
    page.load = function () {
      var mine = ++ticket;
      var q = page.query();
      var found = [];
      page.loading = true;
      counts.textContent = '读取中 loading…';
      var unlocated = 0;
      function toCase(f) {
        var p = f.properties;
        return { id: f.id, status: p.status, item_code: p.item_code, category: p.category, overdue: p.overdue,
          duplicate_of: p.duplicate_of, town_code: p.town_code, received_at: p.received_at,
          location: { lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] } };
      }
      function local() {
        // The exported page filters its embedded cases as the API would (overdue: at export).
        var statuses = q.get('status') ? q.get('status').split(',') : null;
        var after = q.get('from') ? new Date(q.get('from')) : null, before = q.get('to') ? new Date(q.get('to')) : null;
        var items = embedded.points.features.map(toCase).filter(function (c) {
          var at = new Date(c.received_at);
          return (!q.get('town') || c.town_code === q.get('town')) && (!q.get('category') || c.category === q.get('category')) &&
            (!statuses || statuses.indexOf(c.status) >= 0) && (!q.get('overdue') || c.overdue) &&
            (!after || at >= after) && (!before || at < before);
        });
        page.total = items.length;
        return Promise.resolve(items);
      }
      function fetchPage(offset) {
        var asked = new URLSearchParams(q.toString());
        asked.set('limit', String(cfg.pageSize));
        asked.set('offset', String(offset));
        return S.fetchJson(cfg.api.points + '?' + asked.toString());
      }
      /** The first page says how many match; the other pages are then read side by side. */
      function remote() {
        return fetchPage(0).then(function (first) {
          if (mine !== ticket) return null;
          page.total = first.numberMatched + first.unlocated;
          unlocated = first.unlocated;
          var step = first.features.length, offsets = [];
          for (var at = step; step && at < first.numberMatched; at += step) offsets.push(at);
          return Promise.all(offsets.map(fetchPage)).then(function (rest) {
            if (mine !== ticket) return null;
            [first].concat(rest).forEach(function (fc) { Array.prototype.push.apply(found, fc.features.map(toCase)); });
            return found;
          });
        });
      }
      return (embedded ? local() : remote()).then(function (items) {
        if (items === null || mine !== ticket) return;
        var markers = {}, layers = [], late = 0;
        items.forEach(function (c) {
          var m = marker(c);
          markers[c.id] = m;
          layers.push(m);
          if (c.overdue) late += 1;
        });
        cluster.clearLayers();
        cluster.addLayers(layers);
        // The markers' own bounds: with chunked loading the cluster holds none of them yet.
        if (!page.loads && layers.length) {
          map.fitBounds(L.latLngBounds(layers.map(function (m) { return m.getLatLng(); })), { maxZoom: 16, padding: [30, 30] });
        }
        page.markers = markers;
        page.cases = items;
        page.unlocated = unlocated;
        page.loads += 1;
        page.loading = false;
        counts.textContent = '显示 shown ' + layers.length + ' / ' + page.total + ' 案件 cases · 超期 overdue ' + late +
          (unlocated ? ' · 无位置 unlocated ' + unlocated : '') + ' · 更新 updated ' + S.when(new Date().toISOString());
        page.ready = true;
        map.fire('sibiao:cases', { count: layers.length });
      }).catch(function (err) {
        if (mine !== ticket) return;
        page.loading = false;
        page.errors.push(err.message);
        counts.textContent = '读取失败 failed: ' + err.message;
        if (err.status === 401 || err.status === 403) S.authBox(authBox, '请登录 Please sign in');
        page.ready = true;
      });
    };

    /** Show the card of a case (location, grid and units, department, deadline, timeline …). */
    page.openCase = function (id) {
      Object.keys(page.markers).forEach(function (key) {
        var node = page.markers[key].getElement && page.markers[key].getElement();
        if (node && node.firstChild) node.firstChild.classList.toggle('selected', Number(key) === Number(id));
      });
      card.textContent = '读取中 loading…';
      if (embedded) {
        var c0 = (page.cases || []).filter(function (c) { return c.id === Number(id); })[0];
        card.textContent = '';
        if (!c0) return Promise.resolve(null);
        card.dataset.caseId = c0.id;
        card.appendChild(el('h2', { text: '案件 Case #' + c0.id + ' · ' + c0.item_code + ' ' + c0.category }));
        card.appendChild(dl([
          ['状态 status', c0.status], ['位置 location', c0.location.lon.toFixed(6) + ', ' + c0.location.lat.toFixed(6)],
          ['镇街 town', c0.town_code], ['超期 overdue', c0.overdue ? '是 yes (导出时 at export)' : '否 no'],
          ['重复 duplicate of', c0.duplicate_of], ['受理 received', S.when(c0.received_at)],
        ]));
        card.appendChild(el('p', { class: 'sibiao-muted', text: '导出页不含时间线 the exported page has no timeline (' + embedded.exportedAt + ')' }));
        page.opened = c0.id;
        return Promise.resolve(c0);
      }
      return S.fetchJson(cfg.api.case.replace('{id}', encodeURIComponent(id))).then(function (detail) {
        var c = detail.case;
        card.textContent = '';
        card.dataset.caseId = c.id;
        function caseLink(other) {
          if (other === null || other === undefined) return null;
          var a = el('a', { href: '#case-' + other, text: '#' + other });
          a.addEventListener('click', function (e) {
            e.preventDefault();
            var m = page.markers[other];
            if (m) cluster.zoomToShowLayer(m, function () {});
            page.openCase(other);
          });
          return a;
        }
        var deadline = c.deadline ? S.when(c.deadline) : '—';
        var late = c.overdue ? el('span', { class: 'sibiao-overdue-text', text: deadline + ' 已超期 OVERDUE' }) : deadline;
        var where = c.location ? c.location.lon.toFixed(6) + ', ' + c.location.lat.toFixed(6) + ' (' + c.location.crs + ')' : '无 none';
        card.appendChild(el('h2', { text: '案件 Case #' + c.id + ' · ' + c.item_code + ' ' + c.category }));
        card.appendChild(dl([
          ['状态 status', c.status + ' (步骤 step ' + stepOf(cfg, c.status) + ')'],
          ['描述 description', c.description],
          ['位置 location', where],
          ['地址 address', c.address],
          ['网格 grid', c.grid_code ? el('a', { href: '/maps/grid/' + encodeURIComponent(c.grid_code), text: c.grid_code, class: 'sibiao-grid-link' }) : null],
          ['村居 village', [c.village_name, c.village_code].filter(Boolean).join(' ')],
          ['镇街 town', [c.town_name, c.town_code].filter(Boolean).join(' ')],
          ['层级 level', c.level],
          ['部门 department', c.department],
          ['责任单位 unit', c.responsible_unit],
          ['兜底部门 fallback', c.fallback_department],
          ['时限 deadline', late],
          ['升级 escalated', c.escalated ? S.when(c.escalated_at) : '否 no'],
          ['重复 duplicate of', caseLink(c.duplicate_of)],
          ['合并入 merged into', caseLink(c.merged_into)],
          ['部件 asset', c.asset ? c.asset.layer + ' ' + c.asset.code + (c.asset.maintenance_unit ? ' · ' + c.asset.maintenance_unit : '') +
            (c.asset.distance_m !== null ? ' · ' + Number(c.asset.distance_m).toFixed(1) + ' m' : '') : null],
          ['上报 reported', S.when(c.reported_at)],
        ]));
        card.appendChild(el('h2', { text: '时间线 Timeline' }));
        card.appendChild(S.table(['时间 at', '动作 action', '状态 status', '人 actor', '备注 note'], detail.events.map(function (e) {
          return [S.when(e.at), e.action, (e.from_status || '') + ' → ' + e.to_status, e.actor, e.note || ''];
        })));
        if (detail.calls.length) {
          card.appendChild(el('h2', { text: '呼叫部门 Calls' }));
          card.appendChild(S.table(['部门 department', '时限 deadline', '回应 response'], detail.calls.map(function (k) {
            return [k.department, S.when(k.deadline), k.response || '—'];
          })));
        }
        if (detail.escalations.length) {
          card.appendChild(el('h2', { text: '升级 Escalations' }));
          card.appendChild(S.table(['时间 at', '原因 reason', '升级至 to'], detail.escalations.map(function (x) {
            return [S.when(x.at), x.reason, x.escalated_to];
          })));
        }
        page.opened = c.id;
        return c;
      }).catch(function (err) {
        card.textContent = '读取失败 failed: ' + err.message;
        page.errors.push(err.message);
      });
    };

    page.load();
    if (!embedded) page.timer = window.setInterval(function () { if (!page.loading) page.load(); }, cfg.refreshMs);
    return page;
  };
})();
