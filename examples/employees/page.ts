/** The Employee page: add an employee, list them. Plain HTML and fetch, no build step. */
export function employeesPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Employee Management</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; color: #222; }
  form { display: grid; grid-template-columns: repeat(4, 1fr) auto; gap: .5rem; margin-bottom: 1.5rem; }
  input, button { padding: .45rem; font: inherit; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #ddd; }
  #error { color: #b00020; min-height: 1.2em; }
</style>
</head>
<body>
<h1>Employee Management</h1>
<p>Each new employee is announced to every registered bank by a signed webhook.</p>
<form id="add">
  <input name="name" placeholder="Name" required aria-label="Name">
  <input name="email" type="email" placeholder="Email" required aria-label="Email">
  <input name="department" placeholder="Department" required aria-label="Department">
  <input name="startDate" type="date" required aria-label="Start date">
  <button type="submit">Add employee</button>
</form>
<div id="error" role="alert"></div>
<table>
  <thead><tr><th>#</th><th>Name</th><th>Email</th><th>Department</th><th>Start date</th></tr></thead>
  <tbody id="employees"></tbody>
</table>
<script>
const tbody = document.getElementById("employees");
const error = document.getElementById("error");
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
async function refresh() {
  const list = await (await fetch("/employees")).json();
  tbody.replaceChildren(...list.map((e) => {
    const tr = document.createElement("tr");
    tr.append(cell(e.id), cell(e.name), cell(e.email), cell(e.department), cell(e.startDate));
    return tr;
  }));
}
document.getElementById("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const res = await fetch("/employees", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(Object.fromEntries(form)),
  });
  if (res.ok) { event.target.reset(); error.textContent = ""; }
  else { error.textContent = (await res.json()).detail; }
  await refresh();
});
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>`;
}
