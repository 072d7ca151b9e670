// Buckets and objects: a bucket's listing with "/" as the delimiter (prefixes shown as
// folders), upload with a progress bar (one PUT up to the part size, a multipart
// upload in parts of that size above it), download, delete and the details of an
// object: its segments, and the sector and node of every part.
import { bytes, colourOf, confirmButton, dateTime, el, replaceRows, swatch } from "./format.js";
import { api, apiUrl, putWithProgress } from "./http.js";

export class ObjectsView {
  constructor(elements, session) {
    Object.assign(this, elements);
    this.partSize = session.part_size;
    this.bucket = null;
    this.prefix = "";
    this.next = null;
    this.uploading = false;
    this.more.addEventListener("click", () => this.list(true));
    this.bucketForm.addEventListener("submit", async (submitted) => {
      submitted.preventDefault();
      const name = this.bucketName.value.trim();
      await this.guard(async () => {
        await api("POST", "buckets", { query: { bucket: name } });
        this.bucketName.value = "";
        await this.open(name, "");
      });
    });
    this.uploadForm.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.upload();
    });
  }

  async refresh() {
    const { buckets } = await api("GET", "buckets");
    if (!this.bucket && buckets.length) this.bucket = buckets[0].name;
    this.bucketList.replaceChildren(...buckets.map((bucket) => el("a", {
      href: "#objects",
      class: bucket.name === this.bucket ? "active" : "",
      "data-bucket": bucket.name,
      text: bucket.name,
      onclick: (clicked) => {
        clicked.preventDefault();
        this.open(bucket.name, "");
      },
    })));
    if (!buckets.length) {
      this.bucketList.replaceChildren(el("p", { class: "muted", text: "No bucket this key can see." }));
    }
    if (this.bucket && !this.next) await this.list(false);
    if (!this.bucket) {
      this.table.replaceChildren();
      this.crumbTrail.replaceChildren();
      this.bucketActions.replaceChildren();
    }
  }

  // Run `work`, showing its failure in the upload status line.
  async guard(work) {
    try {
      await work();
    } catch (failure) {
      this.status.textContent = failure.message;
    }
  }

  async open(bucket, prefix) {
    this.bucket = bucket;
    this.prefix = prefix;
    this.next = null;
    this.details.classList.add("hidden");
    await this.refresh();
  }

  crumbs() {
    const trail = [el("a", { href: "#objects", text: this.bucket, onclick: (c) => { c.preventDefault(); this.open(this.bucket, ""); } })];
    let walked = "";
    for (const piece of this.prefix.split("/").filter(Boolean)) {
      walked += `${piece}/`;
      const target = walked;
      trail.push(" / ", el("a", { href: "#objects", text: piece, onclick: (c) => { c.preventDefault(); this.open(this.bucket, target); } }));
    }
    this.crumbTrail.replaceChildren(...trail);
    const bucket = this.bucket;
    this.bucketActions.replaceChildren(confirmButton("Delete bucket", () => this.guard(async () => {
      await api("DELETE", "buckets", { query: { bucket } });
      this.bucket = null;
      await this.open(null, "");
    })));
    this.target.textContent = `to ${this.bucket}/${this.prefix}`;
  }

  async list(more) {
    const query = { bucket: this.bucket, prefix: this.prefix };
    if (more && this.next) query.after = this.next;
    const page = await api("GET", "objects", { query });
    this.crumbs();
    const rows = [
      ...page.folders.map((folder) => el("tr", { class: "folder", "data-folder": folder },
        el("td", {}, el("a", { href: "#objects", text: folder.slice(this.prefix.length), onclick: (c) => { c.preventDefault(); this.open(this.bucket, folder); } })),
        el("td"), el("td"), el("td"), el("td"))),
      ...page.objects.map((object) => this.row(object)),
    ];
    if (more) this.table.append(...rows);
    else replaceRows(this.table, rows);
    this.next = page.next;
    this.more.classList.toggle("hidden", !page.next);
    this.empty.textContent = this.table.children.length ? "" : "Nothing here yet.";
  }

  row(object) {
    const query = { bucket: this.bucket, key: object.key };
    return el("tr", { "data-key": object.key },
      el("td", { class: "mono", text: object.key.slice(this.prefix.length) }),
      el("td", { class: "num", text: bytes(object.size) }),
      el("td", { text: dateTime(object.last_modified) }),
      el("td", { text: object.storage_class }),
      el("td", { class: "actions" },
        el("button", { class: "plain details", type: "button", text: "Details", onclick: () => this.showDetails(object.key) }),
        el("a", { href: apiUrl("download", query), download: object.key.split("/").pop(), class: "download", text: "Download" }),
        confirmButton("Delete", async () => {
          await api("DELETE", "object", { query });
          this.next = null;
          await this.list(false);
        })));
  }

  async showDetails(key) {
    const object = await api("GET", "object", { query: { bucket: this.bucket, key } });
    this.detailsTitle.textContent = `${this.bucket}/${object.key}`;
    const facts = [
      ["size", `${bytes(object.size)} (${object.size} bytes)`],
      ["ETag", object.etag],
      ["storage class", object.storage_class],
      ["content type", object.content_type],
      ["modified", dateTime(object.last_modified)],
      ["parts", object.parts_count ? `multipart, ${object.parts_count} parts` : "one (a single upload)"],
    ];
    if (!object.segments) facts.push(["placement", "shown to keys that may administer"]);
    this.detailsFacts.replaceChildren(...facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { class: "mono", text: value })]));
    const rows = [];
    for (const segment of object.segments || []) {
      for (const part of segment.parts) {
        const moving = part.moving_to ? ` (moving to ${part.moving_to})` : "";
        const node = el("td", {}, swatch(part.node), el("span", { class: "mono", text: part.node + moving }));
        node.firstChild.style.background = colourOf(part.node);
        rows.push(el("tr", { class: "part", "data-node": part.node, "data-sector": part.sector },
          el("td", { text: segment.number }),
          el("td", { text: part.index }),
          el("td", { text: part.kind }),
          el("td", { class: "num", text: part.sector }),
          node,
          el("td", { class: "num", text: bytes(part.length) })));
      }
    }
    replaceRows(this.detailsParts, rows);
    this.detailsParts.parentElement.classList.toggle("hidden", !object.segments);
    this.details.classList.remove("hidden");
  }

  async upload() {
    const file = this.file.files[0];
    if (!file || !this.bucket || this.uploading) return;
    const key = this.prefix + file.name;
    const query = { bucket: this.bucket, key };
    this.uploading = true;
    this.uploadButton.disabled = true;
    this.bar.value = 0;
    const show = (sent) => {
      this.bar.value = file.size ? sent / file.size : 1;
      this.status.textContent = `uploading ${key}: ${bytes(sent)} of ${bytes(file.size)} (${Math.floor(100 * this.bar.value)}%)`;
    };
    try {
      if (file.size <= this.partSize) {
        await putWithProgress("object", query, file, show);
      } else {
        await this.multipart(file, query, show);
      }
      show(file.size);
      this.status.textContent = `uploaded ${key} (${bytes(file.size)})`;
      this.status.setAttribute("data-uploaded", key);
      this.next = null;
      await this.list(false);
    } catch (failure) {
      this.status.textContent = `the upload of ${key} failed: ${failure.message}`;
    } finally {
      this.uploading = false;
      this.uploadButton.disabled = false;
    }
  }

  async multipart(file, query, show) {
    const { upload_id: id } = await api("POST", "uploads", { query: { ...query, content_type: file.type } });
    try {
      const parts = [];
      for (let number = 1, offset = 0; offset < file.size; number += 1, offset += this.partSize) {
        const piece = file.slice(offset, offset + this.partSize);
        const done = offset;
        const part = await putWithProgress(`uploads/${encodeURIComponent(id)}`, { ...query, part: number }, piece, (sent) => show(done + sent));
        parts.push({ number, etag: part.etag });
      }
      await api("POST", `uploads/${encodeURIComponent(id)}/complete`, { query, json: { parts } });
    } catch (failure) {
      await api("DELETE", `uploads/${encodeURIComponent(id)}`, { query }).catch(() => {});
      throw failure;
    }
  }
}
