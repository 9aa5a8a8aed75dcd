/* Search-box autocomplete: a progressive enhancement over the plain GET form.
 * Follows the WAI-ARIA combobox pattern (input role=combobox + listbox): ArrowDown/ArrowUp move
 * through suggestions, Enter picks the active one and searches for it, Escape closes the list.
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
    var url = input.getAttribute("data-suggest-url");
    var timer = null;
    var controller = null;
    var active = -1;
    var lastQuery = null;

    function options() {
      return list.querySelectorAll('[role="option"]');
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
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
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function fetchSuggestions() {
      var query = input.value;
      if (query.trim() === "") {
        lastQuery = query;
        close();
        return;
      }
      if (query === lastQuery && options().length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
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
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
    });

    input.addEventListener("keydown", function (event) {
      var open = !list.hidden && options().length > 0;
      switch (event.key) {
        case "ArrowDown":
          event.preventDefault();
          if (open) highlight(active + 1);
          else fetchSuggestions();
          break;
        case "ArrowUp":
          if (open) {
            event.preventDefault();
            highlight(active - 1);
          }
          break;
        case "Enter":
          if (open && active >= 0) {
            event.preventDefault();
            choose(options()[active].textContent);
          }
          break;
        case "Escape":
          if (open) {
            event.preventDefault();
            close();
          }
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
