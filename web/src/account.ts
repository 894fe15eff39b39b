// Accounts in the browser: one's own password (forced first when someone else chose it:
// the first start's one-time password, an admin's reset), and the admins' Users page
// (add, change role, deactivate, reset a password).

import { Me, UserRow, api, errorText, setToken } from "./api";
import { el, toast } from "./dom";


/** Change one's own password; `forced` when it must happen before anything else. */
export function accountView(me: Me, header: HTMLElement | null, changed: (me: Me) => void): HTMLElement {
  const current = el("input", { id: "current-password", type: "password", autocomplete: "current-password" });
  const fresh = el("input", { id: "new-password", type: "password", autocomplete: "new-password" });
  const again = el("input", { id: "new-password-again", type: "password", autocomplete: "new-password" });
  const error = el("p", { class: "error", id: "password-error" });
  const form = el("form", { class: "login", id: "password-form" },
    el("h2", {}, me.must_change_password ? "Choose your password" : "Change your password"),
    ...(me.must_change_password ? [el("p", {}, "Your password was chosen by someone else " +
      "(the first start, or an admin's reset): choose your own before going on.")] : []),
    el("label", {}, "Current password", current), el("label", {}, "New password (8 characters or more)", fresh),
    el("label", {}, "New password again", again), el("button", { type: "submit" }, "Change password"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (fresh.value !== again.value) {
      error.textContent = "The two new passwords differ.";
      return;
    }
    try {
      const t = await api.changePassword(current.value, fresh.value);
      setToken(t.access_token);
      toast("Password changed.");
      changed(await api.me());
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  return el("main", { class: "account" }, ...(header ? [header] : []), form);
}

/** The Users page (admins): every user with their role and whether they may sign in. */
export async function usersView(header: HTMLElement, me: Me): Promise<HTMLElement> {
  const table = el("table", { class: "users", id: "users" });
  const render = (rows: UserRow[]) => table.replaceChildren(
    el("tr", {}, el("th", {}, "user"), el("th", {}, "role"), el("th", {}, "active"), el("th", {}, "")),
    ...rows.map((u) => userRow(u, me, reload)));
  const reload = async () => render(await api.users());
  await reload();
  return el("main", { class: "users-page" }, header, el("h2", {}, "Users"), table, addUserForm(reload));
}

function userRow(u: UserRow, me: Me, reload: () => Promise<void>): HTMLElement {
  const change = async (body: Record<string, unknown>, done: string) => {
    // the table is re-drawn before the toast says it is done, so nothing opened after the
    // toast (a reset form in another row) is thrown away by a late re-draw
    let message = done;
    let kind: "error" | undefined;
    try {
      await api.updateUser(u.username, body);
    } catch (e) {
      message = errorText(e);
      kind = "error";
    }
    await reload();
    toast(message, kind);
  };
  const role = el("select", { "aria-label": `role of ${u.username}` },
    ...["annotator", "reviewer", "admin"].map((r) => el("option", { value: r }, r)));
  role.value = u.role;
  role.onchange = () => void change({ role: role.value }, `${u.username} is now ${role.value}.`);
  const active = el("input", { type: "checkbox", "aria-label": `${u.username} may sign in` });
  active.checked = u.active;
  active.onchange = () => void change({ active: active.checked },
    `${u.username} ${active.checked ? "may sign in again" : "is deactivated"}.`);
  const reset = el("button", { class: "reset-password" }, "Reset password");
  reset.onclick = () => {
    const pw = el("input", { type: "password", class: "reset-value", placeholder: "new password (8+)" });
    const ok = el("button", { class: "reset-ok" }, "Set");
    ok.onclick = () => void change({ password: pw.value },
      `${u.username} has a new password and will choose their own at the next sign-in.`);
    reset.replaceWith(pw, ok);
    pw.focus();
  };
  const note = u.must_change_password ? " (must change password)" : "";
  return el("tr", { "data-user": u.username },
    el("td", {}, u.username + (u.username === me.username ? " (you)" : ""), note),
    el("td", {}, role), el("td", {}, active), el("td", {}, reset));
}

function addUserForm(reload: () => Promise<void>): HTMLElement {
  const name = el("input", { id: "new-username", placeholder: "username" });
  const pw = el("input", { id: "new-user-password", type: "password", placeholder: "password (8+)" });
  const role = el("select", { id: "new-user-role" },
    ...["annotator", "reviewer", "admin"].map((r) => el("option", { value: r }, r)));
  const add = el("button", { id: "add-user", type: "submit" }, "Add user");
  const form = el("form", { class: "panel" }, el("h3", {}, "Add a user"),
    el("div", { class: "row" }, name, pw, role, add));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.addUser(name.value.trim(), pw.value, role.value);
      const added = name.value.trim();
      name.value = pw.value = "";
      await reload();
      toast(`${added} added.`);
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
  return form;
}
