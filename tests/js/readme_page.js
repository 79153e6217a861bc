// The README's alight.js block as a page, in headless Chromium: the page (served by the
// README's presence app, tests/integration/test_readme.py) connects ann over WebSocket
// and bob over long-poll; the block logs its presence list on every sync.
//
//   node readme_page.js URL EXPECTED_JSON [CHROMIUM]
//
// Waits until the page logs a list equal to EXPECTED_JSON, then prints
// {"check": "page", "logs": [...every logged value...], "errors": [...page errors...]}
// (or the same with "error" if it never does) and {"check": "done"}.
"use strict"

const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")

const [url, expected, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
if(!url || !expected){
  console.error("usage: node readme_page.js URL EXPECTED_JSON [CHROMIUM]")
  process.exit(2)
}
const WAIT_MS = 20000 * UNIT
startDeadline(40000 * UNIT)

async function main(){
  const browser = await launchChromium(executablePath)
  const logs = [], errors = []
  try {
    const page = await browser.newPage()
    page.on("pageerror", error => errors.push(String(error)))
    let resolve
    const seen = new Promise(res => { resolve = res })
    page.on("console", async message => {
      const values = await Promise.all(message.args().map(arg => arg.jsonValue().catch(() => null)))
      logs.push(values.length === 1 ? values[0] : values)
      if(values.length === 1 && JSON.stringify(values[0]) === expected){ resolve() }
    })
    await page.goto(url, {timeout: WAIT_MS})
    let timer
    const outcome = await Promise.race([
      seen.then(() => null),
      new Promise(res => { timer = setTimeout(() => res(`the page never logged ${expected}`), WAIT_MS) }),
    ])
    clearTimeout(timer)
    emit("page", outcome === null ? {logs, errors} : {logs, errors, error: outcome})
  } finally {
    await browser.close()
  }
  emit("done", {})
}

main().catch(error => {
  emit("page", {error: String(error && error.stack || error)})
  process.exit(1)
})
