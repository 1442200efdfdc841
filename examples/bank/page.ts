/** The bank's accounts page; it refreshes itself so new accounts appear without a reload. */
export function accountsPage(bankName: string): string {
  const title = bankName.replace(/[<>&"]/g, "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}: accounts</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 48rem; color: #222; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #ddd; }
  .closed { color: #888; text-decoration: line-through; }
</style>
</head>
<body>
<h1>${title}</h1>
<p>Accounts opened from the Employee Management application's webhooks.</p>
<table>
  <thead><tr><th>Account</th><th>Employee</th><th>Holder</th><th>Email</th><th>Status</th></tr></thead>
  <tbody id="accounts"></tbody>
</table>
<script>
const tbody = document.getElementById("accounts");
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
async function refresh() {
  const list = await (await fetch("/accounts")).json();
  tbody.replaceChildren(...list.map((a) => {
    const tr = document.createElement("tr");
    if (a.status === "closed") tr.className = "closed";
    tr.dataset.employeeId = a.employeeId;
    tr.append(cell(a.id), cell(a.employeeId), cell(a.holder), cell(a.email), cell(a.status));
    return tr;
  }));
}
refresh();
setInterval(refresh, 500);
</script>
</body>
</html>`;
}
