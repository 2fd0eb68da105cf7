// Display equations that are wider than their column (a phone, a long theorem) are scaled down to
// fit it: MathJax 3 cannot break a display equation across lines. Runs as part of MathJax's own
// start-up (startup.pageReady), so MathJax.startup.promise resolves only once every equation fits,
// and again whenever the window's width changes. Loaded before MathJax (_config.yml gives this
// file an early priority) so that MathJax reads this configuration.
(function () {
  "use strict";

  function fitEquations() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (equation) {
      equation.style.fontSize = "";
      var box = equation.parentElement;
      var label = box.querySelector(":scope > .eqno");
      var room = box.clientWidth - (label ? label.offsetWidth : 0);
      var math = equation.querySelector(":scope > mjx-math") || equation;
      var needed = math.getBoundingClientRect().width;
      if (room > 0 && needed > room) {
        equation.style.fontSize = Math.floor((100 * room) / needed) + "%";
      }
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
})();
