// The login page: POST the key to /_console/api/login, which sets the session cookie,
// then load the console. The secret is sent once, in the body, and never stored here.
const form = document.getElementById("login");
const error = document.getElementById("login-error");
const button = document.getElementById("login-button");

form.addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  error.textContent = "";
  button.disabled = true;
  try {
    const response = await fetch("/_console/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        access_key: document.getElementById("access-key").value.trim(),
        secret: document.getElementById("secret").value,
      }),
    });
    if (response.ok) {
      location.replace("/_console/");
      return;
    }
    const answer = await response.json().catch(() => ({}));
    error.textContent = answer.message || `login failed (${response.status})`;
  } catch (failure) {
    error.textContent = `cannot reach the gateway: ${failure}`;
  } finally {
    button.disabled = false;
  }
});
