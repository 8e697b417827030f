// Loaded on pages with saved widget state, after require.js and before the
// ipywidgets embed manager (vendor/html-manager-1.0.6/embed-amd.js); see _config.yml.
(function () {
  "use strict";

  // 1. The embed manager's stylesheet loads Font Awesome from the folder of the AMD
  //    module that injects it, which require.js derives from the module's name
  //    ("@jupyter-widgets/html-manager/dist/..."), relative to the page: a 404 on
  //    every chapter. Map those names onto the folder embed-amd.js is served from,
  //    which holds the fonts. (The modules themselves are all inside embed-amd.js:
  //    nothing is fetched by these names.)
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var dir = new URL("vendor/html-manager-1.0.6/", here).href;
    window.require.config({
      paths: {
        "@jupyter-widgets/html-manager": dir + "html-manager",
        "@jupyter-widgets/html-manager/dist": dir.replace(/\/$/, ""),
      },
    });
    window.__jupyter_widgets_assets_path__ = window.__jupyter_widgets_assets_path__ || dir;
  }

  // 2. ipywidgets typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue);
  //    the book runs MathJax 3, which has no Hub, so every labelled widget threw
  //    "Cannot read properties of undefined (reading 'Queue')". Translate the call.
  function queue() {
    var MJ = window.MathJax;
    for (var i = 0; i < arguments.length; i++) {
      var job = arguments[i];
      if (!Array.isArray(job) || job[0] !== "Typeset" || !job[2]) continue;
      var element = job[2];
      if (MJ && MJ.startup && MJ.startup.promise && MJ.typesetPromise) {
        MJ.startup.promise.then(function () { return MJ.typesetPromise([element]); })
          .catch(function (err) { console.warn("MathJax typeset of a widget label failed:", err); });
      }
    }
  }
  function install() {
    var MJ = window.MathJax;
    if (MJ && MJ.version && MJ.version.charAt(0) !== "2" && !MJ.Hub) MJ.Hub = { Queue: queue };
  }
  install();
  // MathJax 3 (a deferred script) replaces window.MathJax when it runs; widgets
  // render on "load" (after DOMContentLoaded), so installing again here is in time.
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
