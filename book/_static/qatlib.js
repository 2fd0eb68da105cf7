// The book's layout help for narrow screens, in two parts.
//
// 1. Display equations that are wider than their column (a phone, a long theorem) are scaled down
//    to fit it: MathJax 3 cannot break a display equation across lines. This runs as part of
//    MathJax's own start-up (startup.pageReady), so MathJax.startup.promise resolves only once every
//    equation fits, and again whenever the window's width changes. The script is deferred, just
//    before MathJax's deferred script (qatlib.report.markup's setup), so it adds to the page's
//    MathJax options after they are set and before MathJax reads them.
// 2. A table of three or more columns gets each cell's column header as a data-label and the class
//    qatlib-cards, so that qatlib.css can show it on a phone as one card per row (label: value)
//    instead of a grid wider than the screen.
(function () {
  "use strict";

  function fitEquations() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (equation) {
      equation.style.fontSize = "";
      var box = equation.parentElement;
      var label = box.querySelector(":scope > .eqno");
      var math = equation.querySelector(":scope > mjx-math") || equation;
      var scale = 1;
      // Not every part of an equation scales with the font (rules, spacing rounded to pixels), so
      // shrink until it fits, a few times at most.
      for (var pass = 0; pass < 5; pass++) {
        var room = box.clientWidth - (label ? label.offsetWidth : 0) - 2;
        var needed = math.getBoundingClientRect().width;
        if (room <= 0 || needed <= room) break;
        scale = scale * (room / needed) * 0.98;
        equation.style.fontSize = (100 * scale).toFixed(1) + "%";
      }
    });
  }

  function labelTables() {
    document.querySelectorAll("article table").forEach(function (table) {
      var head = table.tHead && table.tHead.rows.length ? table.tHead.rows[0] : null;
      if (!head || head.cells.length < 3) return;
      var labels = Array.prototype.map.call(head.cells, function (cell) {
        return cell.textContent.replace(/\s+/g, " ").trim();
      });
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          Array.prototype.forEach.call(row.cells, function (cell, index) {
            if (labels[index]) cell.setAttribute("data-label", labels[index]);
          });
        });
      });
      table.classList.add("qatlib-cards");
    });
  }

  window.MathJax = window.MathJax || {};
  window.MathJax.startup = Object.assign(window.MathJax.startup || {}, {
    pageReady: function () {
      return window.MathJax.startup.defaultPageReady().then(fitEquations);
    },
  });
  var width = window.innerWidth;
  window.addEventListener("resize", function () {
    if (window.innerWidth !== width) {
      width = window.innerWidth;
      fitEquations();
    }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", labelTables);
  } else {
    labelTables();
  }
})();
