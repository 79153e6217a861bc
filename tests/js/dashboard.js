// The dashboard page (GET /dashboard, served by the node itself) in headless Chromium,
// driven by playwright-core. The assertions are in tests/integration/test_dashboard.py
// and tests/cluster/test_dashboard_cluster.py.
//
//   node dashboard.js URL CHROMIUM [--view NODE] [--kill PATH] [--screenshot FILE] [--down PGID]
//
// Opens URL (http://HOST:PORT/dashboard), waits for the nodes table and the supervision
// tree, sorts the process table, optionally views another node (--view) and kills the
// process at tree path PATH (--kill), waiting for its supervisor to restart it. With
// --down, then SIGKILLs the process group PGID (the viewed node) and waits for the page
// to show that node down.
// Prints JSON lines: {"check": "page"}, "sorted", "viewed", "killed", "screenshot",
// "down", then {"check": "done"}; a step that fails prints its check with an "error".
"use strict"

const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")

const [url, executablePath, ...rest] = process.argv.slice(2)
const option = name => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : null }
const viewNode = option("--view")
const killPath = option("--kill")
const screenshot = option("--screenshot")
const downGroup = option("--down")
const STEP_MS = 10000 * UNIT
startDeadline(60000 * UNIT)

// What the page shows, read from its DOM.
function readPage(){
  const text = el => el ? el.textContent.trim() : null
  return {
    title: document.title,
    viewing: text(document.getElementById("viewing")),
    status: text(document.getElementById("status")),
    nodes: [...document.querySelectorAll("#nodes tr[data-node]")].map(tr => ({
      name: tr.dataset.node, state: text(tr.children[1]),
    })),
    tree: [...document.querySelectorAll("#tree .row[data-path]")].map(row => ({
      path: row.dataset.path, pid: row.dataset.pid || null,
    })),
    processes: [...document.querySelectorAll("#processes tr[data-pid]")].map(tr => ({
      pid: tr.dataset.pid, name: text(tr.children[1]), status: text(tr.children[2]),
      mailbox: Number(text(tr.children[3]).replaceAll(",", "")), messages: Number(text(tr.children[4]).replaceAll(",", "")),
    })),
    topics: [...document.querySelectorAll("#topics tr[data-topic]")].map(tr => tr.dataset.topic),
    snapshot_node: window.alightDashboard.state.snapshot && window.alightDashboard.state.snapshot.node,
  }
}

const treePid = (page, path) => page.evaluate(path => {
  const row = [...document.querySelectorAll("#tree .row[data-path]")].find(r => r.dataset.path === path)
  return row ? row.dataset.pid || null : null
}, path)

async function step(check, body){
  try {
    const fields = await body()
    emit(check, fields || {})
    return true
  } catch(error){
    emit(check, {error: String(error && error.message || error)})
    return false
  }
}

async function main(){
  const browser = await launchChromium(executablePath)
  const consoleErrors = []
  try {
    const page = await browser.newPage({viewport: {width: 1440, height: 1000}})
    page.on("console", message => { if(message.type() === "error"){ consoleErrors.push(message.text()) } })
    page.on("pageerror", error => consoleErrors.push(String(error)))
    let ok = await step("page", async () => {
      await page.goto(url, {timeout: STEP_MS})
      await page.waitForSelector("#nodes tr[data-node]", {timeout: STEP_MS})
      await page.waitForSelector("#tree .row[data-path]", {timeout: STEP_MS})
      await page.waitForSelector("#processes tr[data-pid]", {timeout: STEP_MS})
      return page.evaluate(readPage)
    })
    ok = ok && await step("sorted", async () => {
      const orders = {}
      for(const [key, clicks] of [["mailbox", 0], ["messages", 1], ["name", 1], ["status", 1]]){
        for(let i = 0; i < clicks; i++){ await page.click(`#processes-table th[data-key="${key}"]`) }
        const seen = await page.evaluate(readPage)
        const header = await page.getAttribute(`#processes-table th[data-key="${key}"]`, "class")
        orders[key] = {header, values: seen.processes.map(p => p[key === "name" ? "name" : key])}
      }
      return {orders}
    })
    if(ok && viewNode){
      ok = await step("viewed", async () => {
        await page.click(`#nodes tr[data-node="${viewNode}"]`)
        await page.waitForFunction(node => {
          const s = window.alightDashboard.state
          return s.snapshot && s.snapshot.node === node && document.querySelector("#tree .row[data-path]")
        }, viewNode, {timeout: STEP_MS})
        return page.evaluate(readPage)
      })
    }
    if(ok && killPath){
      ok = await step("killed", async () => {
        await page.waitForFunction(path => [...document.querySelectorAll("#tree .row[data-path]")]
          .some(r => r.dataset.path === path && r.dataset.pid), killPath, {timeout: STEP_MS})
        const before = await treePid(page, killPath)
        await page.click(`#tree .row[data-path="${killPath}"] .id`)
        await page.waitForFunction(pid => document.getElementById("detail-pid")?.textContent === pid
          && !document.getElementById("kill").disabled, before, {timeout: STEP_MS})
        const detail = await page.evaluate(() => document.getElementById("detail").innerText)
        await page.click("#kill")
        await page.waitForSelector("#note.ok", {timeout: STEP_MS})
        const note = await page.textContent("#note")
        const after = await treePid(page, killPath)
        await page.waitForFunction(pid => document.getElementById("detail-pid")?.textContent === pid
          && !document.getElementById("kill").disabled, after, {timeout: STEP_MS})
        const afterDetail = await page.evaluate(() => document.getElementById("detail").innerText)
        return {before, after, note, detail, after_detail: afterDetail}
      })
    }
    if(ok && screenshot){
      await step("screenshot", async () => {
        await page.click('#processes-table th[data-key="mailbox"]')  // the busiest first
        await page.screenshot({path: screenshot, fullPage: true})
        return {path: screenshot}
      })
    }
    if(ok && downGroup){
      await step("down", async () => {
        process.kill(-Number(downGroup), "SIGKILL")
        await page.waitForFunction(node => {
          const row = document.querySelector(`#nodes tr[data-node="${node}"]`)
          return row && row.children[1].textContent.trim() === "down"
        }, viewNode, {timeout: STEP_MS})
        return page.evaluate(readPage)
      })
    }
    await page.close()
  } finally {
    await browser.close()
  }
  emit("console", {errors: consoleErrors})
  emit("done", {})
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
