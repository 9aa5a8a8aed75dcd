/* A feed's page (templates/feed_page.html): the "Sao chép địa chỉ" button copies the feed
 * address. Without JavaScript the button stays hidden and the read-only field can be selected and
 * copied by hand. The result is announced in the page's role=status line and left on the button
 * as data-copy-state ("copied" or "failed"). No inline code: the page CSP allows scripts from
 * 'self' only. */
(function () {
  "use strict";

  var COPIED = "Đã sao chép địa chỉ nguồn tin. Hãy dán vào ứng dụng đọc tin.";
  var FAILED = "Không sao chép được: địa chỉ đã được chọn, hãy nhấn Ctrl+C (trên Mac: ⌘C).";

  // Outside a secure context (plain http on a public host) there is no navigator.clipboard:
  // the selection and the older copy command still work there.
  function copyBySelection(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function setup(button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (!field || !status) return;

    function report(ok) {
      button.setAttribute("data-copy-state", ok ? "copied" : "failed");
      status.textContent = ok ? COPIED : FAILED;
      if (!ok) {
        field.focus();
        field.select();
      }
    }

    button.addEventListener("click", function () {
      var text = field.value;
      button.removeAttribute("data-copy-state");
      status.textContent = "";
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { report(true); },
          function () { report(copyBySelection(field)); }
        );
      } else {
        report(copyBySelection(field));
      }
    });
    // A click in the field selects the whole address, ready to copy by hand.
    field.addEventListener("focus", function () { field.select(); });
    button.hidden = false;
  }

  var buttons = document.querySelectorAll("[data-copy-target]");
  for (var i = 0; i < buttons.length; i++) setup(buttons[i]);
})();
