/* The page of one grid cell: its outline, village and town, the assets inside it by layer
 * (POST /within with the cell's polygon) and its cases (GET /cases/points?grid=), coloured by
 * step with overdue ones outlined in red; a click on a case shows its card (GET /cases/{id}). */
(function () {
  'use strict';
  var S = (window.Sibiao = window.Sibiao || {});
  var el = function () { return S.el.apply(null, arguments); };
  var PALETTE = ['#c62828', '#1565c0', '#2e7d32', '#6a1b9a', '#ef6c00', '#00838f', '#4e342e', '#ad1457', '#283593', '#558b2f',
    '#f9a825', '#37474f', '#d84315', '#0277bd', '#9e9d24', '#5d4037', '#00695c', '#7b1fa2'];

  S.gridPage = function (map, cfg) {
    var page = { map: map, cfg: cfg, ready: false, errors: [], assets: {}, cases: [], markers: {}, loads: 0 };
    S.quietAttribution(map);
    var bases = S.baseMap(map, cfg.basemap, null);
    var cell = cfg.cell;
    var svg = L.svg({ padding: 0.5 });  // the cell and assets as SVG paths (the map prefers canvas)
    var outline = L.geoJSON(cell.feature, {
      style: { color: '#283593', weight: 3, fillColor: '#5c6bc0', fillOpacity: 0.08, className: 'sibiao-grid-outline' },
      interactive: false,
      renderer: svg,
    }).addTo(map);
    map.fitBounds(outline.getBounds(), { padding: [20, 20], animate: false });
    var assetsGroup = L.layerGroup().addTo(map);
    var casesGroup = L.layerGroup().addTo(map);
    var overlays = { '网格 Cell': outline, '部件 Assets': assetsGroup, '案件 Cases': casesGroup };
    L.control.layers(bases, overlays, { collapsed: true }).addTo(map);
    S.legend(map, cfg.steps.map(function (s) { return { label: s.name, color: '#fff', fill: s.color, round: true }; })
      .concat([{ label: '超期 overdue', color: '#d50000', fill: '#fff', round: true }]));
    page.outline = outline;
    page.assetsGroup = assetsGroup;
    page.casesGroup = casesGroup;

    // ---- the panel ------------------------------------------------------------------------
    var panel = document.getElementById('sibiao-panel');
    var authBox = el('div', { class: 'sibiao-auth', hidden: 'hidden' });
    var props = cell.feature.properties || {};
    var assetBox = el('div', { id: 'sibiao-grid-assets', class: 'sibiao-muted', text: '读取中 loading…' });
    var caseBox = el('div', { id: 'sibiao-grid-cases', class: 'sibiao-muted', text: '读取中 loading…' });
    var card = el('div', { id: 'sibiao-case-card', class: 'sibiao-case-card' });
    panel.appendChild(el('h1', {}, ['网格 ', el('span', { class: 'en', text: 'Grid cell ' + cell.code })]));
    panel.appendChild(authBox);
    var about = el('dl', { id: 'sibiao-grid-about', class: 'sibiao-dl' });
    [
      ['网格 grid', cell.code + (props.name ? ' ' + props.name : '')],
      ['村居 village', [cell.village.name, cell.village.code].filter(Boolean).join(' ') || '—'],
      ['镇街 town', [cell.town.name, cell.town.code].filter(Boolean).join(' ') || '—'],
      ['人口 population', S.number(props.population)],
      ['网格长 chief', props.grid_chief || '—'],
    ].forEach(function (pair) {
      about.appendChild(el('dt', { text: pair[0] }));
      about.appendChild(el('dd', { text: pair[1] }));
    });
    panel.appendChild(about);
    panel.appendChild(el('h2', { text: '部件 Assets in the cell' }));
    panel.appendChild(assetBox);
    panel.appendChild(el('h2', { text: '案件 Cases in the cell' }));
    panel.appendChild(caseBox);
    panel.appendChild(card);
    S.authBox(authBox);

    function failed(err, box) {
      page.errors.push(err.message);
      box.textContent = '读取失败 failed: ' + err.message;
      if (err.status === 401 || err.status === 403) S.authBox(authBox, '请登录 Please sign in');
    }

    function colourOfStep(step) {
      for (var i = 0; i < cfg.steps.length; i++) if (cfg.steps[i].step === step) return cfg.steps[i].color;
      return '#1e88e5';
    }

    function anchor(feature) {
      var g = feature.geometry;
      if (g && g.type === 'Point') return L.latLng(g.coordinates[1], g.coordinates[0]);
      return null;
    }

    /** Read the assets inside the cell, per layer, and draw them. */
    page.loadAssets = function () {
      if (!cfg.assetLayers.length) {
        assetBox.textContent = '无部件图层 no asset layers';
        return Promise.resolve();
      }
      var body = { layers: cfg.assetLayers.map(function (l) { return l.code; }), geometry: cell.feature.geometry, limit: cfg.assetsPerLayer };
      return fetch(cfg.api.within, {
        method: 'POST', body: JSON.stringify(body),
        headers: S.auth.headers({ 'Content-Type': 'application/json', Accept: 'application/json' }),
      }).then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) {
            var error = new Error((data && (data.detail || data.title)) || 'HTTP ' + r.status);
            error.status = r.status;
            throw error;
          }
          return data;
        });
      }).then(function (answer) {
        assetsGroup.clearLayers();
        var rows = [];
        cfg.assetLayers.forEach(function (spec, i) {
          var fc = answer.layers[spec.code];
          var count = fc ? fc.features.length : 0;
          page.assets[spec.code] = count;
          if (!count) return;
          var colour = PALETTE[i % PALETTE.length];
          fc.features.forEach(function (f) {
            var name = f.properties.name || f.properties.code || '#' + f.id;
            var at = anchor(f);
            var layer = at ? L.circleMarker(at, { radius: 5, color: '#fff', weight: 1, fillColor: colour, fillOpacity: 0.95, className: 'sibiao-grid-asset', renderer: svg })
              : L.geoJSON(f, { renderer: svg, style: { color: colour, weight: 2, className: 'sibiao-grid-asset' } });
            layer.bindPopup(S.popup(spec.zh + ' ' + spec.en + ' ' + name, f.properties));
            layer.sibiaoLayer = spec.code;
            assetsGroup.addLayer(layer);
          });
          var swatch = el('span', { class: 'sibiao-swatch' });
          swatch.style.background = colour;
          rows.push([el('span', {}, [swatch, ' ' + spec.zh + ' ' + spec.en]), count + (fc.truncated ? '+' : '')]);
        });
        assetBox.textContent = '';
        assetBox.appendChild(rows.length ? S.table(['图层 layer', '数量 count'], rows) : el('p', { text: '格内无部件 no assets in the cell' }));
      }).catch(function (err) { failed(err, assetBox); });
    };

    function icon(c) {
      var size = c.overdue ? 20 : 14;
      return L.divIcon({
        className: 'sibiao-case-icon', iconSize: [size, size],
        html: '<div class="sibiao-case-dot' + (c.overdue ? ' overdue' : '') + '" data-case="' + Number(c.id) +
          '" style="background:' + colourOfStep(cfg.statuses[c.status] === undefined ? 1 : cfg.statuses[c.status]) + '"></div>',
      });
    }

    /** Read the cell's cases and draw them. */
    page.loadCases = function () {
      return S.fetchJson(cfg.api.points).then(function (fc) {
        casesGroup.clearLayers();
        page.markers = {};
        var late = 0;
        page.cases = fc.features.map(function (f) {
          var p = f.properties;
          var c = { id: f.id, status: p.status, item_code: p.item_code, category: p.category, overdue: p.overdue, received_at: p.received_at,
            lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] };
          var m = L.marker([c.lat, c.lon], { icon: icon(c), title: '#' + c.id + ' ' + c.item_code, zIndexOffset: c.overdue ? 1000 : 0 });
          m.on('click', function () { page.openCase(c.id); });
          casesGroup.addLayer(m);
          page.markers[c.id] = m;
          if (c.overdue) late += 1;
          return c;
        });
        caseBox.textContent = '案件 cases ' + page.cases.length + ' · 超期 overdue ' + late + (fc.unlocated ? ' · 无位置 unlocated ' + fc.unlocated : '');
        page.overdue = late;
      }).catch(function (err) { failed(err, caseBox); });
    };

    page.openCase = function (id) {
      card.textContent = '读取中 loading…';
      return S.fetchJson(cfg.api.case.replace('{id}', encodeURIComponent(id))).then(function (detail) {
        var c = detail.case;
        card.textContent = '';
        card.dataset.caseId = c.id;
        var deadline = c.deadline ? S.when(c.deadline) : '—';
        card.appendChild(el('h2', { text: '案件 Case #' + c.id + ' · ' + c.item_code + ' ' + c.category }));
        var list = el('dl', { class: 'sibiao-dl' });
        [
          ['状态 status', c.status], ['描述 description', c.description || '—'], ['地址 address', c.address || '—'],
          ['部门 department', c.department || '—'], ['责任单位 unit', c.responsible_unit || '—'],
          ['时限 deadline', c.overdue ? deadline + ' 已超期 OVERDUE' : deadline], ['上报 reported', S.when(c.reported_at)],
        ].forEach(function (pair) {
          list.appendChild(el('dt', { text: pair[0] }));
          list.appendChild(el('dd', { text: String(pair[1]) }));
        });
        card.appendChild(list);
        page.opened = c.id;
      }).catch(function (err) { failed(err, card); });
    };

    Promise.all([page.loadAssets(), page.loadCases()]).then(function () {
      page.loads += 1;
      page.ready = true;
    });
    return page;
  };
})();
