// The ring: 360 sectors drawn as an annulus (sector 0 at the top, clockwise), each
// coloured by its owner, arcs outlined and labelled; during a join each moving sector
// is highlighted and fills, from the inside out, in the new node's colour as its bytes
// are copied; a node that is down has its sectors faded and its arcs dashed in red.
// The legend beside it gives each node's share of the sectors and of the bytes.
import { bytes, colourOf, el, percent, replaceRows, stateOf, swatch } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const SECTORS = 360;
const INNER = 150;
const OUTER = 228;
const LABEL = 242;
const MIN_LABELLED = 6; // arcs shorter than this many sectors are not labelled

function point(radius, degrees) {
  const radians = (degrees * Math.PI) / 180;
  return [radius * Math.sin(radians), -radius * Math.cos(radians)];
}

function fmt(value) {
  return value.toFixed(2);
}

// An annular sector from `start` to `end` degrees between two radii.
function band(start, end, inner, outer) {
  const [x0, y0] = point(outer, start);
  const [x1, y1] = point(outer, end);
  const [x2, y2] = point(inner, end);
  const [x3, y3] = point(inner, start);
  const large = end - start > 180 ? 1 : 0;
  return (
    `M${fmt(x0)} ${fmt(y0)}A${outer} ${outer} 0 ${large} 1 ${fmt(x1)} ${fmt(y1)}` +
    `L${fmt(x2)} ${fmt(y2)}A${inner} ${inner} 0 ${large} 0 ${fmt(x3)} ${fmt(y3)}Z`
  );
}

// An arc line (no area) at `radius` from `start` to `end` degrees.
function arcLine(start, end, radius) {
  const [x0, y0] = point(radius, start);
  const [x1, y1] = point(radius, end);
  const large = end - start > 180 ? 1 : 0;
  return `M${fmt(x0)} ${fmt(y0)}A${radius} ${radius} 0 ${large} 1 ${fmt(x1)} ${fmt(y1)}`;
}

function svg(tag, attributes = {}, text = undefined) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The maximal runs of one owner, as [start, length, owner], never split at 359 -> 0.
export function arcs(owners) {
  const first = owners.findIndex((owner, sector) => owner !== owners[(sector + SECTORS - 1) % SECTORS]);
  if (first < 0) return [[0, SECTORS, owners[0]]];
  const found = [];
  let start = first;
  for (let step = 1; step <= SECTORS; step += 1) {
    const sector = (first + step) % SECTORS;
    if (step === SECTORS || owners[sector] !== owners[start]) {
      found.push([start, (sector - start + SECTORS) % SECTORS || SECTORS, owners[start]]);
      start = sector;
    }
  }
  return found;
}

export class RingView {
  constructor(svgElement, legendBody, summary) {
    this.svg = svgElement;
    this.legend = legendBody;
    this.summary = summary;
    this.sectors = [];
    this.fills = [];
    const sectors = svg("g", { class: "sectors" });
    const fills = svg("g", { class: "fills" });
    for (let sector = 0; sector < SECTORS; sector += 1) {
      const path = svg("path", { class: "sector", d: band(sector, sector + 1, INNER, OUTER), "data-sector": sector });
      path.append(svg("title", {}, `sector ${sector}`));
      sectors.append(path);
      this.sectors.push(path);
      const fill = svg("path", { class: "fill", d: "", "data-sector": sector });
      fills.append(fill);
      this.fills.push(fill);
    }
    this.marks = svg("g", { class: "marks" });
    this.centre = svg("g", { class: "centre" });
    this.svg.replaceChildren(sectors, fills, this.marks, this.centre);
    this.cluster = null;
  }

  // Draw `cluster` (GET /api/cluster); `migration`, if given, is a fresher view of the
  // join in progress (from the join's stream) than the cluster's own.
  draw(cluster, migration = undefined) {
    if (cluster) this.cluster = cluster;
    const current = this.cluster;
    if (!current) return;
    const moving = migration === undefined ? current.ring.migration : migration;
    const owners = current.ring.owners;
    const nodes = new Map(current.nodes.map((node) => [node.id, node]));
    const moves = new Map((moving ? moving.moves : []).map((move) => [move.sector, move]));
    owners.forEach((owner, sector) => {
      const path = this.sectors[sector];
      const node = nodes.get(owner);
      path.setAttribute("fill", colourOf(owner));
      path.setAttribute("stroke", colourOf(owner));
      path.setAttribute("data-owner", owner);
      path.firstChild.textContent = `sector ${sector}: ${owner}`;
      path.classList.toggle("down", Boolean(node && !node.up));
      const move = moves.get(sector);
      path.classList.toggle("moving", Boolean(move));
      const fill = this.fills[sector];
      if (move) {
        const reach = INNER + (OUTER - INNER) * Math.min(1, Math.max(0, move.copied));
        fill.setAttribute("d", move.copied > 0 ? band(sector, sector + 1, INNER, reach) : "");
        fill.setAttribute("fill", colourOf(moving.node));
        fill.setAttribute("data-copied", move.copied);
        path.firstChild.textContent += `, moving to ${moving.node} (${Math.round(100 * move.copied)}% copied)`;
      } else {
        fill.setAttribute("d", "");
        fill.removeAttribute("data-copied");
      }
    });
    this.svg.setAttribute("data-moving", moves.size);
    this.drawMarks(owners, nodes);
    this.drawCentre(current, moving);
    this.drawLegend(current, owners);
  }

  drawMarks(owners, nodes) {
    const marks = [];
    for (const [start, length, owner] of arcs(owners)) {
      const [x0, y0] = point(INNER - 4, start);
      const [x1, y1] = point(OUTER + 4, start);
      marks.push(svg("line", { class: "boundary", x1: fmt(x0), y1: fmt(y0), x2: fmt(x1), y2: fmt(y1) }));
      const node = nodes.get(owner);
      if (node && !node.up) {
        marks.push(svg("path", { class: "down-arc", d: arcLine(start, start + length, OUTER + 4) }));
      }
      if (length >= MIN_LABELLED) {
        const middle = start + length / 2;
        const [x, y] = point(LABEL, middle);
        const side = middle % 360 < 180 ? "start" : "end";
        const text = svg("text", { x: fmt(x), y: fmt(y - 2), "text-anchor": side, class: "arc-label" });
        text.append(svg("tspan", { x: fmt(x) }, owner),
          svg("tspan", { x: fmt(x), dy: 12, class: "range" }, `${start}-${(start + length - 1) % SECTORS}`));
        marks.push(text);
      }
    }
    this.marks.replaceChildren(...marks);
  }

  drawCentre(cluster, moving) {
    const lines = [
      svg("text", { class: "center", x: 0, y: -8 }, `${SECTORS} sectors`),
      svg("text", { class: "center small", x: 0, y: 12 },
        `${cluster.nodes.length} nodes, ${cluster.nodes_up} up, generation ${cluster.generation}`),
    ];
    if (moving) {
      const copied = moving.moves.reduce((sum, move) => sum + move.copied, 0);
      lines.push(svg("text", { class: "center small", x: 0, y: 30 },
        `${moving.moves.length} sectors moving to ${moving.node}: ${percent(copied, moving.moves.length) || "0%"}`));
    }
    this.centre.replaceChildren(...lines);
  }

  drawLegend(cluster, owners) {
    const counts = new Map();
    for (const owner of owners) counts.set(owner, (counts.get(owner) || 0) + 1);
    const total = cluster.nodes.reduce((sum, node) => sum + (node.bytes || 0), 0);
    replaceRows(this.legend, cluster.nodes.map((node) => {
      const [word, text] = stateOf(node);
      const sectors = counts.get(node.id) || 0;
      return el("tr", { "data-node": node.id, class: node.up ? "" : "down" },
        el("td", {}, swatch(node.id), el("span", { class: "mono", text: node.id })),
        el("td", {}, el("span", { class: `state ${word}`, text })),
        el("td", { class: "num", text: sectors }),
        el("td", { class: "num", text: percent(sectors, SECTORS) }),
        el("td", { class: "num", text: bytes(node.bytes) }),
        el("td", { class: "num", text: node.bytes === null ? "" : percent(node.bytes, total) }));
    }));
    this.summary.textContent =
      `policy ${cluster.policy}; ${bytes(total)} stored; fair share ${bytes(cluster.fair_share_bytes)} per node`;
  }
}
