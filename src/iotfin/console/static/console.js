// iotfin console: charts (ECharts) from data attributes. No inline scripts anywhere (the pages'
// Content-Security-Policy forbids them), so every behaviour lives here and in htmx attributes.
(function () {
  "use strict";
  var language = document.body.getAttribute("data-language") || "zh";
  var charts = [];

  function timeLabel(ms) {
    var d = new Date(ms);
    return d.toLocaleString(language === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
  }

  function option(data, kind, zoom) {
    var timeAxis = (data.x || "time") === "time";
    var series = (data.series || []).map(function (s) {
      return { name: s.name, type: s.type || kind, data: s.data, showSymbol: false, sampling: "lttb",
               stack: s.stack, areaStyle: s.area ? {} : undefined, smooth: false };
    });
    var opt = {
      animation: false,
      tooltip: { trigger: kind === "pie" ? "item" : "axis" },
      legend: { top: 0, type: "scroll" },
      grid: { left: 56, right: 24, top: 36, bottom: zoom ? 64 : 32 },
      series: series
    };
    if (kind !== "pie" && kind !== "scatter-map") {
      opt.xAxis = timeAxis ? { type: "time", axisLabel: { hideOverlap: true } }
                           : { type: "category", data: data.categories };
      opt.yAxis = { type: "value", name: data.unit || "", scale: true };
    }
    if (kind === "scatter-map") {  // sites on a plain longitude/latitude plane: no map tiles to fetch offline
      opt.xAxis = { type: "value", name: "lon", scale: true };
      opt.yAxis = { type: "value", name: "lat", scale: true };
      opt.tooltip = { trigger: "item", formatter: function (p) { return p.data[2] || ""; } };
      opt.series = series.map(function (s) { s.type = "scatter"; s.symbolSize = 12; return s; });
    }
    if (zoom && timeAxis) {
      opt.dataZoom = [{ type: "inside" }, { type: "slider", bottom: 8 }];
      opt.tooltip.valueFormatter = undefined;
    }
    return opt;
  }

  function load(el, from, to) {
    var src = el.getAttribute("data-chart-src");
    if (from !== undefined) {
      src += (src.indexOf("?") < 0 ? "?" : "&") + "from=" + Math.floor(from) + "&to=" + Math.ceil(to);
    }
    el.setAttribute("aria-busy", "true");
    return fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("chart " + r.status); } return r.json(); })
      .then(function (data) {
        el.removeAttribute("aria-busy");
        el.setAttribute("data-points", String((data.series || []).reduce(function (n, s) { return n + s.data.length; }, 0)));
        return data;
      });
  }

  function draw(el) {
    if (el.getAttribute("data-drawn")) { return; }
    el.setAttribute("data-drawn", "1");
    var kind = el.getAttribute("data-chart-kind") || "line";
    var zoom = el.getAttribute("data-chart-zoom") === "true";
    var chart = echarts.init(el, null, { renderer: "canvas" });
    charts.push(chart);
    load(el).then(function (data) {
      chart.setOption(option(data, kind, zoom));
      el.setAttribute("data-ready", "1");
      if (!zoom) { return; }
      var timer = null;
      chart.on("datazoom", function () {
        // Ask the server for the zoomed window at full resolution (it downsamples to the chart's width).
        clearTimeout(timer);
        timer = setTimeout(function () {
          var axis = chart.getModel().getComponent("xAxis", 0).axis.scale.getExtent();
          load(el, axis[0], axis[1]).then(function (part) {
            chart.setOption({ series: (part.series || []).map(function (s) { return { name: s.name, data: s.data }; }) });
            el.setAttribute("data-zoomed", "1");
          });
        }, 250);
      });
    }).catch(function (err) {
      el.setAttribute("data-error", String(err));
      el.textContent = el.getAttribute("aria-label") + ": " + String(err);
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart-src]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.iotfinTimeLabel = timeLabel;
})();
