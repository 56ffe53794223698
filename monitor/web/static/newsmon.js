// newsmon: small progressive enhancement. Every page works without this file.
// Changing a filter control of the search form submits it, so researchers need not press Search.
(function () {
  "use strict";
  var form = document.querySelector("form.searchbox");
  if (!form) { return; }
  form.querySelectorAll("select, input[type=checkbox], input[type=date]").forEach(function (el) {
    el.addEventListener("change", function () {
      if (el.type === "date" && el.value && el.value.length !== 10) { return; }
      form.submit();
    });
  });
})();
