// Links to Airflow's own pages carry data-airflow-link. The Airflow UI shows these pages in a
// sandboxed frame, and the sandbox doesn't let the frame navigate the top window, so the link
// would open nowhere. The frame has the same origin, so it can ask Airflow's router to go there:
// push the URL onto the top window's history and announce it the way the browser does.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-airflow-link]");
  if (!link || window.top === window || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  try {
    var top = window.top;
    var index = (top.history.state && top.history.state.idx) || 0;
    top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: index + 1 }, "", link.href);
    top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
    event.preventDefault();
  } catch (error) {
    // Not inside Airflow's UI (another origin): let the browser follow the link.
  }
});
