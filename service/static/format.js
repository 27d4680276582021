/* optirec web form: numbers written the way people write them.
 *
 * Whole numbers get thousands separators ("67,108,864"); from a billion up, a round value is named
 * ("10 trillion") and any other keeps its digits; fractions keep four significant digits, and very
 * small or very large ones are written as "3e-4". The same rule is used for field hints and results.
 */
"use strict";

(function () {
  const GROUPED = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });
  const NAMED = [
    [1e15, "quadrillion"],
    [1e12, "trillion"],
    [1e9, "billion"],
  ];

  function number(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
    const abs = Math.abs(value);
    if (Number.isInteger(value) && abs < 1e21) {
      for (const [unit, word] of NAMED) {
        if (abs < unit) continue;
        const scaled = value / unit;
        // named only when exact to three decimals ("1.5 trillion"), otherwise every digit
        if (Math.round(scaled * 1000) === scaled * 1000) {
          return GROUPED.format(scaled) + " " + word;
        }
        break;
      }
      return GROUPED.format(value);
    }
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
      return value.toExponential(3).replace(/\.?0+e/, "e").replace("e+", "e");
    }
    return String(Number(value.toPrecision(4)));
  }

  window.optirecFormat = Object.freeze({ number });
})();
