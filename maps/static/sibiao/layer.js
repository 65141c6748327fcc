/* The layer page (/maps/layers/{code}, /maps/loads/{id}, exported pages): the layer drawn with
 * its catalog style, the rejected rows of a load in red with their reasons, the extent, the
 * counts and the version history. Reads the API, or the data embedded in an exported page. */
(function () {
  'use strict';
  var S = window.Sibiao;
  var el = S.el;
  var REJECT_STYLE = { color: '#d50000', weight: 2, opacity: 1, fillColor: '#ff1744', fillOpacity: 0.45 };
  var STATES = {
    queued: '排队 queued',
    running: '加载中 running',
    committed: '已完成 committed',
    failed: '失败 failed',
  };

  function fill(id, nodes) {
    var box = document.getElementById(id);
    if (!box) return;
    box.textContent = '';
    nodes.forEach(function (node) { if (node) box.appendChild(typeof node === 'string' ? document.createTextNode(node) : node); });
  }

  function dl(pairs) {
    var list = el('dl', { class: 'sibiao-dl' });
    pairs.forEach(function (pair) {
      list.appendChild(el('dt', { text: pair[0] }));
      list.appendChild(el('dd', {}, [pair[1] instanceof Node ? pair[1] : String(pair[1])]));
    });
    return list;
  }

  function link(href, text, download) {
    return el('a', { href: href, download: download || null }, [text]);
  }

  function api(template, id) {
    return template.replace('{id}', encodeURIComponent(id));
  }

  S.layerPage = function (map, cfg) {
    var page = { map: map, ready: false, errors: [], load: null, located: 0 };
    var embedded = cfg.embedded || null;
    var layer = cfg.layer;
    S.quietAttribution(map);

    var bases = (page.bases = S.baseMap(map, cfg.basemap, embedded && embedded.base));
    var spec = L.extend({}, layer, embedded ? { data: embedded.features } : {});
    page.overlay = S.overlay(map, spec, { gcj02: cfg.basemap.gcj02 }).addTo(map);
    // Rejected rows and the extent are SVG in a pane above the layer whose root lets clicks
    // through (sibiao.css), so the layer's vector tiles below still get theirs.
    if (!map.getPane('sibiao-rejects')) map.createPane('sibiao-rejects').style.zIndex = 450;
    var svg = L.svg({ pane: 'sibiao-rejects' });
    var onTop = { pane: 'sibiao-rejects', renderer: svg };
    page.rejects = L.featureGroup().addTo(map);
    page.extent = L.featureGroup().addTo(map);
    var overlays = {};
    overlays[layer.zh + ' ' + layer.en] = page.overlay;
    overlays['拒绝行 Rejected rows'] = page.rejects;
    overlays['范围 Extent'] = page.extent;
    L.control.layers(bases, overlays, { collapsed: true }).addTo(map);
    S.legend(map, [
      { label: layer.zh + ' ' + layer.en, color: layer.style.color, fill: layer.style.fill ? layer.style.fillColor : null },
      { label: '拒绝行 rejected row', color: REJECT_STYLE.color, fill: REJECT_STYLE.fillColor, round: true },
      { label: '范围 extent', color: '#424242' },
    ]);
    if (cfg.basemap.notice) notice(cfg.basemap.notice);

    function notice(text) {
      var box = document.getElementById('sibiao-notice');
      if (!box) return;
      box.hidden = false;
      box.appendChild(el('p', { text: text }));
    }

    function get(key, url) {
      if (embedded) return Promise.resolve(embedded[key] === undefined ? null : embedded[key]);
      return S.fetchJson(url).catch(function (err) {
        if (err.status !== 401 && err.status !== 403) throw err;
        // Loads and versions need a signed-in analyst: ask, and show what is public meanwhile.
        S.authBox(document.getElementById('sibiao-auth'), '登录后可查看加载、拒绝行与版本 Sign in to see loads, rejected rows and versions.');
        return null;
      });
    }
    if (!embedded) S.authBox(document.getElementById('sibiao-auth'));

    function current(versions) {
      for (var i = 0; i < versions.length; i++) if (versions[i].current) return versions[i];
      return null;
    }

    function showSummary(collection, versions, load) {
      var now = current(versions);
      var bbox = extentOf(collection, now);
      fill('sibiao-summary', [dl([
        ['要素 Features', now ? S.number(now.feature_count) : '0（尚无数据 no data yet）'],
        ['当前版本 Version', now ? now.version : '—'],
        ['范围 Extent', bbox ? bbox.map(function (v) { return v.toFixed(4); }).join(', ') : '—'],
        ['几何 Geometry', layer.geometry],
        ['最近加载 Latest load', load ? '#' + load.id + ' ' + (STATES[load.state] || load.state) : '—'],
      ])]);
    }

    function loadLinks(load) {
      if (embedded) {
        if (!embedded.rejectsCsv) return [];
        var blob = new Blob([embedded.rejectsCsv], { type: 'text/csv' });
        return [link(URL.createObjectURL(blob), '拒绝行 CSV rejects.csv', 'load-' + load.id + '-rejects.csv')];
      }
      var csv = S.authLink(link(api(cfg.api.rejectsCsv, load.id), '拒绝行 CSV rejects.csv'), 'load-' + load.id + '-rejects.csv');
      var links = [csv];
      if (!cfg.loadId) links.push(' · ', link(api(cfg.api.loadPage, load.id), '本次加载 this load'));
      return links;
    }

    function showLoad(load) {
      if (!load) {
        fill('sibiao-load', [el('p', { text: '尚无加载记录 No load yet.' })]);
        return;
      }
      var badge = el('span', { class: 'sibiao-state ' + load.state, text: STATES[load.state] || load.state });
      var nodes = [
        dl([
          ['加载 Load', el('span', {}, ['#' + load.id + ' ', badge])],
          ['文件 File', load.file_name || '—'],
          ['方式 Mode', load.mode],
          ['坐标系 CRS', load.source_crs || '—'],
          ['开始 Started', S.when(load.started_at)],
          ['结束 Finished', S.when(load.finished_at)],
          ['读取 Read', S.number(load.read)],
          ['入库 Loaded', S.number(load.loaded)],
          ['拒绝 Rejected', S.number(load.rejected)],
          ['修复 Repaired', S.number(load.repaired)],
          ['版本 Version', load.version === null || load.version === undefined ? '—' : load.version],
        ]),
      ];
      if (load.message) nodes.push(el('p', { class: 'sibiao-message', text: load.message }));
      nodes.push(el('p', { class: 'sibiao-links' }, loadLinks(load)));
      fill('sibiao-load', nodes);
    }

    function showVersions(versions) {
      if (!versions.length) {
        fill('sibiao-versions', [el('p', { text: '尚无版本 No version yet.' })]);
        return;
      }
      var rows = versions.map(function (v) {
        var loadCell = v.batch_id ? (embedded ? '#' + v.batch_id : link(api(cfg.api.loadPage, v.batch_id), '#' + v.batch_id)) : '—';
        return [
          v.version + (v.current ? ' ✓' : ''),
          S.number(v.feature_count),
          S.when(v.created_at),
          loadCell,
          v.mode || '—',
          v.file_name || '—',
        ];
      });
      fill('sibiao-versions', [S.table(['版本 ver.', '要素 features', '时间 created', '加载 load', '方式 mode', '文件 file'], rows)]);
    }

    function extentOf(collection, now) {
      if (!collection || !now || !now.feature_count) return null;
      var boxes = collection.extent && collection.extent.spatial && collection.extent.spatial.bbox;
      return boxes && boxes[0] ? boxes[0] : null;
    }

    function drawExtent(bbox) {
      if (!bbox) return null;
      var bounds = L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]]);
      L.rectangle(bounds, L.extend({ color: '#424242', weight: 1.5, dashArray: '6 4', fill: false, interactive: false }, onTop)).addTo(page.extent);
      return bounds;
    }

    function rejectPopup(props) {
      return el('div', { class: 'sibiao-popup' }, [
        el('strong', { text: '拒绝行 Rejected row ' + props.row }),
        dl([
          ['字段 Field', props.field || '—'],
          ['原因 Reason', props.reason],
          ['值 Value', props.value === null || props.value === undefined ? '—' : props.value],
        ]),
      ]);
    }

    function drawRejects(fc) {
      if (!fc || !fc.features || !fc.features.length) return null;
      var layerOf = L.geoJSON(fc, L.extend({
        style: function () { return REJECT_STYLE; },
        pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, L.extend({ radius: 6 }, REJECT_STYLE, onTop)); },
        onEachFeature: function (feature, item) { item.bindPopup(rejectPopup(feature.properties)); },
      }, onTop));
      layerOf.eachLayer(function (item) { page.rejects.addLayer(item); });
      page.located = fc.features.length;
      return page.rejects.getBounds();
    }

    function showRejects(load, first, located) {
      if (!load) {
        fill('sibiao-rejects', [el('p', { text: '—' })]);
        return;
      }
      if (!load.rejected) {
        fill('sibiao-rejects', [el('p', { text: '没有拒绝行 No rejected rows.' })]);
        return;
      }
      var matched = located ? located.numberMatched : 0;
      var nodes = [el('p', {}, [
        '共 ' + S.number(load.rejected) + ' 行被拒绝 rows rejected；' + S.number(matched) + ' 行有位置，地图上红色显示 located rows are red on the map.',
      ])];
      if (page.located) {
        var zoom = el('button', { type: 'button', class: 'sibiao-button', text: '缩放到拒绝行 Zoom to rejected rows' });
        zoom.addEventListener('click', function () { map.fitBounds(page.rejects.getBounds(), { maxZoom: 18, padding: [20, 20] }); });
        nodes.push(zoom);
      }
      if (first && first.features && first.features.length) {
        var rows = first.features.map(function (f) {
          var p = f.properties;
          return [p.row, p.field || '', p.reason, p.value === null ? '' : p.value, f.geometry ? '✓' : ''];
        });
        nodes.push(S.table(['行 row', '字段 field', '原因 reason', '值 value', '位置 loc.'], rows));
        if (first.numberMatched > first.numberReturned) {
          nodes.push(el('p', { class: 'sibiao-muted', text: '仅显示前 ' + first.numberReturned + ' 行 first rows only; 完整列表见 CSV full list in the CSV.' }));
        }
      }
      nodes.push(el('p', { class: 'sibiao-links' }, loadLinks(load)));
      fill('sibiao-rejects', nodes);
    }

    function showLinks() {
      if (embedded) {
        fill('sibiao-links', [el('span', { text: '导出于 Exported ' + S.when(embedded.exportedAt) + ' · ' + (embedded.note || '') })]);
        return;
      }
      fill('sibiao-links', [
        link(cfg.api.collection, 'OGC collection'), ' · ',
        link(cfg.api.items, 'GeoJSON items'), ' · ',
        link(cfg.api.tilejson, 'TileJSON'), ' · ',
        link(cfg.api.upload, '上传 Upload'),
      ]);
    }

    var loadPromise = cfg.loadId
      ? get('load', api(cfg.api.load, cfg.loadId))
      : get('load', cfg.api.loads).then(function (found) { return Array.isArray(found) ? found[0] || null : found; });

    showLinks();
    Promise.all([get('collection', cfg.api.collection), get('versions', cfg.api.versions), loadPromise])
      .then(function (found) {
        var collection = found[0], versions = found[1] || [], load = found[2];
        page.load = load;
        showSummary(collection, versions, load);
        showLoad(load);
        showVersions(versions);
        var bounds = drawExtent(extentOf(collection, current(versions)));
        if (!load) {
          showRejects(null);
          if (bounds) map.fitBounds(bounds, { padding: [20, 20] });
          return null;
        }
        var located = api(cfg.api.rejects, load.id) + '?located=true&limit=' + cfg.rejectsOnMap;
        var first = api(cfg.api.rejects, load.id) + '?limit=' + cfg.rejectsInTable;
        return Promise.all([get('rejectsLocated', located), get('rejectsFirst', first)]).then(function (rej) {
          var rejectBounds = drawRejects(rej[0]);
          showRejects(load, rej[1], rej[0]);
          var target = bounds || rejectBounds;
          if (target && target.isValid()) map.fitBounds(target, { padding: [20, 20], maxZoom: 17 });
        });
      })
      .catch(function (err) {
        page.errors.push(String(err && err.message ? err.message : err));
        notice('出错 Error: ' + page.errors[page.errors.length - 1]);
      })
      .then(function () {
        page.ready = true;
        document.body.setAttribute('data-sibiao-ready', page.errors.length ? 'error' : 'ok');
      });
    return page;
  };
})();
