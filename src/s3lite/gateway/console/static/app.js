// The console page: reads its session (and CSRF token), shows the tabs this key may
// use (the ring, nodes and keys need a key that may administer), and keeps them live:
// the cluster is polled every POLL_MS, the open bucket's listing every LIST_MS.
import { setNodes } from "./format.js";
import { api, setCsrf } from "./http.js";
import { JoinView } from "./joins.js";
import { KeysView } from "./keys.js";
import { drawNodes } from "./nodes.js";
import { ObjectsView } from "./objects.js";
import { RingView } from "./ring.js";

const POLL_MS = 2000;
const LIST_MS = 5000;
const byId = (id) => document.getElementById(id);

const session = await api("GET", "session");
setCsrf(session.csrf);
byId("who").textContent = `${session.access_key}${session.root ? " (root)" : ""}`;
for (const link of document.querySelectorAll("nav a[data-admin]")) {
  link.classList.toggle("hidden", !session.admin);
}

const banner = byId("banner");
function problem(failure) {
  banner.textContent = failure ? `${failure.message}` : "";
  banner.classList.toggle("hidden", !failure);
}

const ring = new RingView(byId("ring"), document.querySelector("#ring-legend tbody"), byId("ring-summary"));
const objects = new ObjectsView({
  bucketList: byId("bucket-list"),
  bucketForm: byId("bucket-form"),
  bucketName: byId("bucket-name"),
  bucketActions: byId("bucket-actions"),
  crumbTrail: byId("crumbs"),
  table: document.querySelector("#objects tbody"),
  more: byId("objects-more"),
  empty: byId("objects-empty"),
  uploadForm: byId("upload-form"),
  file: byId("upload-file"),
  uploadButton: byId("upload-button"),
  target: byId("upload-target"),
  bar: byId("upload-progress"),
  status: byId("upload-status"),
  details: byId("object-details"),
  detailsTitle: byId("details-title"),
  detailsFacts: byId("details-facts"),
  detailsParts: document.querySelector("#details-parts tbody"),
}, session);
const keys = new KeysView({
  table: document.querySelector("#keys tbody"),
  createForm: byId("key-form"),
  name: byId("key-name"),
  newKey: byId("new-key"),
  grantForm: byId("grant-form"),
  grantKey: byId("grant-key"),
  grantBucket: byId("grant-bucket"),
  bucketChoices: byId("grant-buckets"),
  read: byId("grant-read"),
  write: byId("grant-write"),
  status: byId("grant-status"),
});

let tab = "";

async function pollCluster() {
  if (!session.admin) return;
  try {
    const cluster = await api("GET", "cluster");
    setNodes(cluster.nodes);
    if (!joins.active) ring.draw(cluster);
    else ring.cluster = cluster;
    drawNodes(document.querySelector("#nodes tbody"), byId("nodes-summary"), cluster);
    joins.fromStatus(cluster);
    problem(null);
  } catch (failure) {
    problem(failure);
  }
}

const joins = new JoinView({
  panel: byId("join-panel"),
  form: byId("join-form"),
  input: byId("join-node"),
  button: byId("join-button"),
  status: byId("join-status"),
  progress: byId("join-progress"),
  log: byId("join-log"),
}, ring, pollCluster);

async function show(name) {
  tab = name;
  for (const section of document.querySelectorAll("section.tab")) {
    section.classList.toggle("hidden", section.id !== `tab-${name}`);
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.tab === name);
  }
  try {
    if (name === "objects") await objects.refresh();
    if (name === "keys") await keys.refresh();
    problem(null);
  } catch (failure) {
    problem(failure);
  }
}

function chosenTab() {
  const wanted = location.hash.slice(1);
  const allowed = session.admin ? ["ring", "nodes", "objects", "keys"] : ["objects"];
  return allowed.includes(wanted) ? wanted : allowed[0];
}

window.addEventListener("hashchange", () => show(chosenTab()));
byId("logout").addEventListener("click", async () => {
  await api("POST", "logout").catch(() => {});
  location.replace("/_console/");
});

async function loop(every, work) {
  for (;;) {
    await work();
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

await pollCluster();
await show(chosenTab());
document.body.setAttribute("data-ready", "");
loop(POLL_MS, pollCluster);
loop(LIST_MS, async () => {
  const confirming = document.querySelector("#tab-objects button.armed");
  if (tab === "objects" && !objects.uploading && !objects.next && !confirming) {
    await objects.refresh().catch(problem);
  }
});
