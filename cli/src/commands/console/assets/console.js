// Tollgate console: the little script the pages use. Everything works without it except the
// slider, the live updates, the upload into the text box and the pop-up.
"use strict";
(function () {
  // Rule R27 (docs/rules.md): two cards, one shown at a time, "Card N of M".
  function initSliders(root) {
    root.querySelectorAll(".slider").forEach(function (slider) {
      var cards = slider.querySelectorAll(".card");
      var pos = slider.querySelector(".slider-pos");
      if (cards.length < 2 || !pos) { return; }
      var current = 0;
      function show() {
        cards.forEach(function (card, i) { card.hidden = i !== current; });
        pos.textContent = "Card " + (current + 1) + " of " + cards.length;
      }
      slider.querySelector(".prev").addEventListener("click", function () {
        current = (current + cards.length - 1) % cards.length; show();
      });
      slider.querySelector(".next").addEventListener("click", function () {
        current = (current + 1) % cards.length; show();
      });
      slider.classList.add("js");
      show();
    });
  }

  // Rules R11 and R27 (docs/rules.md): the page follows the engine while a migration consumes.
  function follow(block) {
    if (!block.dataset.stream || !window.EventSource) { return; }
    var source = new EventSource(block.dataset.stream);
    source.onmessage = function (message) {
      var update = JSON.parse(message.data);
      if (update.html !== null) {
        block.innerHTML = update.html;
        initSliders(block);
      }
      if (update.switch) {
        var notice = document.getElementById("live-notice");
        notice.textContent = update.switch;
        notice.hidden = false;
      }
      update.bars.forEach(function (bar) {
        block.querySelectorAll(".bar").forEach(function (el) {
          if (el.dataset.key !== bar.key) { return; }
          el.querySelector(".fill").style.width = bar.fill.toFixed(1) + "%";
          el.setAttribute("aria-valuenow", String(bar.percent));
          el.parentNode.querySelector(".bar-text").textContent = bar.text;
        });
      });
      document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    initSliders(document);
    var block = document.getElementById("license-info");
    if (block) { follow(block); }
    // "Paste or upload a license file": an uploaded file fills the text box.
    document.querySelectorAll("input[type=file][data-into]").forEach(function (input) {
      input.addEventListener("change", function () {
        var file = input.files[0];
        if (file) {
          file.text().then(function (text) { document.getElementById(input.dataset.into).value = text; });
        }
      });
    });
    // "Add Reserve License" opens the pop-up.
    document.querySelectorAll("[data-dialog]").forEach(function (button) {
      button.addEventListener("click", function () {
        document.getElementById(button.dataset.dialog).showModal();
      });
    });
  });
})();
