// Access keys: the list with each key's grants, create (the secret is shown once,
// here, and never again), revoke (delete), and allow or deny read/write per bucket.
import { confirmButton, dateTime, el, replaceRows } from "./format.js";
import { api } from "./http.js";

function grantsText(grants) {
  const entries = Object.entries(grants);
  if (!entries.length) return "";
  return entries
    .map(([bucket, grant]) => `${bucket}: ${grant.read ? "r" : ""}${grant.write ? "w" : ""}`)
    .join(", ");
}

export class KeysView {
  constructor(elements) {
    Object.assign(this, elements);
    this.createForm.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.create();
    });
    this.grantForm.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.grant(submitted.submitter ? submitted.submitter.value : "allow");
    });
  }

  async refresh() {
    const [{ keys }, { buckets }] = await Promise.all([api("GET", "keys"), api("GET", "buckets")]);
    replaceRows(this.table, keys.map((key) => el("tr", { "data-key": key.access_key },
      el("td", { class: "mono", text: key.access_key }),
      el("td", { text: key.root ? "(root)" : key.name }),
      el("td", { text: dateTime(key.created * 1000) }),
      el("td", { class: "mono", text: grantsText(key.grants) }),
      el("td", { class: "actions" }, key.root ? null : confirmButton("Revoke", async () => {
        await api("DELETE", `keys/${encodeURIComponent(key.access_key)}`);
        await this.refresh();
      })))));
    const chosen = this.grantKey.value;
    this.grantKey.replaceChildren(...keys.filter((key) => !key.root).map((key) =>
      el("option", { value: key.access_key, text: `${key.access_key} ${key.name}`, selected: key.access_key === chosen })));
    this.bucketChoices.replaceChildren(...buckets.map((bucket) => el("option", { value: bucket.name })));
  }

  async create() {
    const key = await api("POST", "keys", { json: { name: this.name.value } });
    this.name.value = "";
    this.newKey.replaceChildren(
      el("div", {}, "Access key ", el("code", { id: "new-access-key", text: key.access_key })),
      el("div", {}, "Secret key ", el("code", { id: "new-secret", text: key.secret })),
      el("div", { class: "muted", text: "The secret is shown only now: copy it somewhere safe." }),
      el("button", { class: "plain", type: "button", text: "Done", onclick: () => {
        this.newKey.replaceChildren();
        this.newKey.classList.add("hidden");
      } }));
    this.newKey.classList.remove("hidden");
    await this.refresh();
  }

  async grant(verb) {
    const key = this.grantKey.value;
    try {
      const grant = await api("POST", `keys/${encodeURIComponent(key)}/${verb}`, {
        json: { bucket: this.grantBucket.value.trim(), read: this.read.checked, write: this.write.checked },
      });
      const rights = [grant.read && "read", grant.write && "write"].filter(Boolean).join(" and ") || "nothing";
      this.status.textContent = `${key} may now ${rights} on ${grant.bucket}`;
      await this.refresh();
    } catch (failure) {
      this.status.textContent = failure.message;
    }
  }
}
