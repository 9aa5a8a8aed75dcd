/* Search-box autocomplete: a progressive enhancement over the plain GET form.
 * The WAI-ARIA 1.2 combobox pattern, as the APG's "list autocomplete with manual selection":
 *  - the input keeps DOM focus: role=combobox, aria-expanded, aria-controls (the listbox),
 *    aria-autocomplete=list; the highlighted option is its aria-activedescendant and has
 *    aria-selected=true;
 *  - ArrowDown / ArrowUp open the list on its first / last option, or move, wrapping around;
 *    Alt+ArrowDown opens it without highlighting, Alt+ArrowUp closes it;
 *  - Enter searches for the highlighted option (with none, the form submits what was typed);
 *  - Escape closes the list; when it is already closed, Escape clears the box;
 *  - typing, ArrowLeft/ArrowRight and Home/End return to the text (no option highlighted);
 *  - a polite live region (the element named by data-suggest-status) says "N gợi ý…" when the
 *    list opens or its length changes: screen readers are not told by focus, which stays put.
 * Without JavaScript (or if /api/suggest fails) the form works exactly the same. No inline code:
 * the page CSP allows scripts from 'self' only. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 120;
  var LIMIT = 8;

  function setup(input) {
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var form = input.form;
    if (!list || !form) return;
    var status = document.getElementById(input.getAttribute("data-suggest-status") || "");
    var url = input.getAttribute("data-suggest-url");
    var timer = null;
    var controller = null;
    var active = -1;
    var lastQuery = null;
    var pending = null; /* "first" or "last": highlight it once the list being fetched opens */

    function options() {
      return list.querySelectorAll('[role="option"]');
    }

    function isOpen() {
      return !list.hidden && options().length > 0;
    }

    function announce(text) {
      if (status && status.textContent !== text) status.textContent = text;
    }

    function deselect() {
      var items = options();
      for (var i = 0; i < items.length; i++) items[i].setAttribute("aria-selected", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function close() {
      deselect();
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      pending = null;
      announce(""); /* so that the same count is announced again when the list reopens */
    }

    function highlight(index) {
      var items = options();
      if (!items.length) return;
      if (index < 0) index = items.length - 1;
      if (index >= items.length) index = 0;
      for (var i = 0; i < items.length; i++) {
        items[i].setAttribute("aria-selected", i === index ? "true" : "false");
      }
      active = index;
      input.setAttribute("aria-activedescendant", items[index].id);
      items[index].scrollIntoView({ block: "nearest" });
    }

    function open() {
      var count = options().length;
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      announce(count + " gợi ý. Dùng phím mũi tên lên, xuống để chọn, Enter để tìm.");
      if (pending === "first") highlight(0);
      else if (pending === "last") highlight(count - 1);
      pending = null;
    }

    function render(query, suggestions) {
      list.textContent = "";
      active = -1;
      input.removeAttribute("aria-activedescendant");
      if (!suggestions.length || input.value !== query) {
        close();
        return;
      }
      suggestions.forEach(function (text, i) {
        var li = document.createElement("li");
        li.id = list.id + "-opt-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.textContent = text; /* text, never HTML: suggestions come from the archive */
        li.addEventListener("mousedown", function (event) {
          event.preventDefault(); /* keep focus in the input */
          choose(text);
        });
        list.appendChild(li);
      });
      open();
    }

    function fetchSuggestions() {
      var query = input.value;
      if (query.trim() === "") {
        lastQuery = query;
        close();
        return;
      }
      if (query === lastQuery && options().length) {
        open();
        return;
      }
      if (controller) controller.abort();
      controller = typeof AbortController === "function" ? new AbortController() : null;
      var target = url + "?q=" + encodeURIComponent(query) + "&limit=" + LIMIT;
      fetch(target, { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
        .then(function (response) { return response.ok ? response.json() : { suggestions: [] }; })
        .then(function (data) {
          lastQuery = query;
          render(query, Array.isArray(data.suggestions) ? data.suggestions : []);
        })
        .catch(function () { /* aborted or offline: the plain form still works */ });
    }

    function choose(text) {
      input.value = text;
      close();
      if (typeof form.requestSubmit === "function") form.requestSubmit();
      else form.submit();
    }

    input.addEventListener("input", function () {
      deselect(); /* typing returns to the text */
      pending = null;
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
    });

    input.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey) return;
      var shown = isOpen();
      switch (event.key) {
        case "ArrowDown":
          event.preventDefault();
          if (shown && !event.altKey) highlight(active + 1);
          else if (!shown) {
            pending = event.altKey ? null : "first";
            fetchSuggestions();
          }
          break;
        case "ArrowUp":
          if (shown) {
            event.preventDefault();
            if (event.altKey) close();
            else highlight(active - 1);
          } else if (!event.altKey && input.value.trim() !== "") {
            event.preventDefault();
            pending = "last";
            fetchSuggestions();
          }
          break;
        case "Enter":
          if (shown && active >= 0) {
            event.preventDefault();
            choose(options()[active].textContent);
          } else if (shown) {
            close(); /* and the form submits what was typed */
          }
          break;
        case "Escape":
          if (shown) {
            event.preventDefault();
            close();
          } else if (input.value !== "") {
            event.preventDefault();
            input.value = "";
            lastQuery = "";
            list.textContent = "";
          }
          break;
        case "ArrowLeft":
        case "ArrowRight":
        case "Home":
        case "End":
          if (active >= 0) deselect(); /* the caret moves in the text, as usual */
          break;
        default:
          break;
      }
    });

    input.addEventListener("blur", function () {
      setTimeout(close, 100);
    });
  }

  function init() {
    var inputs = document.querySelectorAll("input[data-suggest-url]");
    for (var i = 0; i < inputs.length; i++) setup(inputs[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
