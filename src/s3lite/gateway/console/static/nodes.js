// The nodes table: state, usage against the fair share (the bar; the dark mark is the
// fair share, total bytes over ready nodes), bytes, sectors, parts and errors (calls
// that failed as the gateway saw them, and damaged parts the node quarantined).
import { bytes, el, replaceRows, stateOf, swatch } from "./format.js";

const SCALE = 1.5; // the bar's full width is 150% of the fair share

function usageBar(node, fair) {
  const bar = el("div", { class: "bar", title: fair ? "the mark is the fair share" : "" });
  if (node.bytes === null || !fair) return bar;
  const ratio = node.bytes / fair;
  const used = el("div", { class: ratio > 1.1 ? "used over" : "used" });
  used.style.width = `${Math.min(100, (100 * ratio) / SCALE)}%`;
  const mark = el("div", { class: "fair" });
  mark.style.left = `${100 / SCALE}%`;
  bar.append(used, mark);
  return bar;
}

export function drawNodes(tbody, summary, cluster) {
  const fair = cluster.fair_share_bytes;
  replaceRows(tbody, cluster.nodes.map((node) => {
    const [word, text] = stateOf(node);
    const errors = node.errors + (node.quarantined ? ` (${node.quarantined} quarantined)` : "");
    return el("tr", { "data-node": node.id, "data-state": word, class: node.up ? "" : "down" },
      el("td", {}, swatch(node.id), el("span", { class: "mono", text: node.id }),
        el("div", { class: "muted mono", text: node.address })),
      el("td", {}, el("span", { class: `state ${word}`, text }),
        node.reason && !node.up ? el("div", { class: "muted", text: node.reason }) : null),
      el("td", {}, usageBar(node, fair),
        el("span", { class: "muted", text: fair && node.bytes !== null ? `${Math.round((100 * node.bytes) / fair)}%` : "" })),
      el("td", { class: "num", text: bytes(node.bytes) }),
      el("td", { class: "num", text: node.sectors }),
      el("td", { class: "num", text: node.parts ?? "" }),
      el("td", { class: "num", text: errors }));
  }));
  const requests = cluster.requests_in_flight;
  summary.textContent =
    `${cluster.nodes_up} of ${cluster.nodes.length} nodes up; fair share ${bytes(fair)}; ` +
    `${requests} other request${requests === 1 ? "" : "s"} in flight`;
}
