// Small helpers shared by the console's views: building elements (text is always set
// as text, never as HTML), sizes, times, and each node's colour.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

export function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(count) {
  if (count === null || count === undefined) return "unknown";
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function percent(part, whole) {
  if (!whole) return "";
  return `${((100 * part) / whole).toFixed(1)}%`;
}

export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function ago(seconds) {
  const total = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString([], { hour12: false });
}

// Node colours: by a node's place in the cluster (which never changes: nodes only
// join), spread around the hue circle by the golden angle so neighbours differ.
const colours = new Map();

export function setNodes(nodes) {
  nodes.forEach((node, index) => {
    colours.set(node.id, `hsl(${((index * 137.508 + 210) % 360).toFixed(1)}, 60%, 55%)`);
  });
}

export function colourOf(nodeId) {
  return colours.get(nodeId) || "#9aa3b2";
}

export function swatch(nodeId) {
  const mark = el("span", { class: "swatch" });
  mark.style.background = colourOf(nodeId);
  return mark;
}

// One word for a node's state, and the text shown for it.
export function stateOf(node) {
  if (node.condition === "down") {
    return ["down", `down since ${clock(node.since)} (${ago(node.since)} ago)`];
  }
  return [node.condition, node.condition];
}

// A button that asks for a second click before it acts.
export function confirmButton(label, action) {
  const button = el("button", { class: "danger", type: "button", text: label });
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.classList.add("armed");
      button.textContent = `${label}: sure?`;
      return;
    }
    button.disabled = true;
    await action();
  });
  return button;
}
