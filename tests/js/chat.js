// The chat page of `alight demo` (demo/chat/static/index.html) in headless Chromium,
// driven through its UI on a real cluster started by `alight demo`. The assertions
// are in tests/cluster/test_chat_demo.py.
//
//   node chat.js URL SCREENSHOT CONSOLE_BLOCK_FILE [CHROMIUM]
//
// Two browser contexts (alice, bob) pick names and chat in room:lobby; a third one
// (alice on a second device) comes and goes; bob's console runs the README's console block
// (CONSOLE_BLOCK_FILE); alice crashes her channel, bob his socket; alice joins a second
// room, then kills the node she is connected to; a screenshot of alice's page
// (1280x800) goes to SCREENSHOT. One JSON line per step: {"check": STEP, ...what the pages
// showed} (or {"check": STEP, "error": ...}; the steps after a failed one are skipped),
// then {"check": "pages"} (uncaught page errors) and {"check": "done"}.
"use strict"

const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")

const [url, screenshot, consoleFile, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
if(!url || !screenshot || !consoleFile){
  console.error("usage: node chat.js URL SCREENSHOT CONSOLE_BLOCK_FILE [CHROMIUM]")
  process.exit(2)
}
const consoleBlock = require("fs").readFileSync(consoleFile, "utf8")
const STEP_MS = 20000 * UNIT
const DEADLINE_MS = 150000 * UNIT
const TOPIC = "room:lobby"

startDeadline(DEADLINE_MS)

// -- reading a page (these run inside it) ------------------------------------------------------

function pageView(topic){
  const room = window.chat.rooms.get(topic)
  const status = document.getElementById("status")
  return {
    status: status.dataset.state,
    status_text: status.textContent,
    node: room ? room.node : null,
    channel_state: room ? room.channel.state : null,
    presence: Array.from(document.querySelectorAll("#presence-list li")).map(li => ({
      name: li.dataset.name, devices: Number(li.dataset.devices),
    })),
    metas: room ? room.presence.list((key, p) => p.metas.map(m => ({name: key, ref: m.phx_ref, node: m.node})))
      .flat() : [],
    messages: Array.from(document.querySelectorAll("#messages .msg[data-id]")).map(div => ({
      name: div.querySelector(".who").textContent,
      body: div.querySelector(".body").textContent,
      meta: div.querySelector(".meta").textContent,
    })),
    log: window.chat.log.map(entry => entry.text),
    console_ok: typeof window.socket === "object" && typeof window.channels[topic] === "object",
  }
}

const view = page => page.evaluate(() => window.__view())

// Resolves once `predicate(view, arg)` holds in the page (polled there, every 50 ms),
// or fails after STEP_MS saying what the page showed.
async function until(page, predicate, what, arg = null){
  try {
    await page.waitForFunction(([source, arg]) => {
      const holds = (0, eval)(`(${source})`)
      return holds(window.__view(), arg)
    }, [predicate.toString(), arg], {timeout: STEP_MS, polling: 50})
  } catch(error){
    const seen = await view(page).catch(() => null)
    throw new Error(`timed out waiting for ${what}; the page shows ${JSON.stringify(seen)}`)
  }
}

async function say(page, body){
  await page.fill("#message-input", body)
  await page.press("#message-input", "Enter")
}

// -- the scenario ---------------------------------------------------------------------------------

async function step(check, body){
  try {
    emit(check, await body())
    return true
  } catch(error){
    emit(check, {error: String(error && error.message || error)})
    return false
  }
}

async function enter(browser, name){
  const context = await browser.newContext({viewport: {width: 1280, height: 800}})
  const page = await context.newPage()
  page.pageErrors = []
  page.on("pageerror", error => page.pageErrors.push(String(error)))
  await page.addInitScript({content: `window.__view = () => (${pageView})(${JSON.stringify(TOPIC)})`})
  await page.goto(url, {timeout: STEP_MS})
  await page.fill("#name-input", name)
  await page.click("#enter")
  return {context, page}
}

async function scenario(browser){
  const alice = await enter(browser, "alice")
  const bob = await enter(browser, "bob")
  const a = alice.page
  const b = bob.page
  const pages = [a, b]
  const both = v => v.status === "connected" && v.presence.map(p => p.name).join() === "alice,bob"

  const steps = [
    ["presence", async () => {
      await until(a, both, "alice to see alice and bob")
      await until(b, both, "bob to see alice and bob")
      return {alice: await view(a), bob: await view(b)}
    }],
    ["devices", async () => {
      const second = await enter(browser, "alice")  // another browser: another device id
      await until(b, v => v.presence.some(p => p.name === "alice" && p.devices === 2), "alice on 2 devices")
      const two = (await view(b)).presence
      await second.context.close()
      await until(b, v => v.presence.some(p => p.name === "alice" && p.devices === 1), "alice back to 1 device")
      return {two, one: (await view(b)).presence}
    }],
    ["chat", async () => {
      await say(a, "hi bob")
      await until(b, v => v.messages.some(m => m.name === "alice" && m.body === "hi bob"), "bob to get alice's message")
      await say(b, "hello alice")
      const both = v => v.messages.map(m => `${m.name}: ${m.body}`).join("|") === "alice: hi bob|bob: hello alice"
      await until(a, both, "alice to see both messages")
      await until(b, both, "bob to see both messages")
      return {alice: (await view(a)).messages, bob: (await view(b)).messages}
    }],
    ["console", async () => {
      // The README's console block, as pasted into bob's devtools: a classic script, so its
      // `const s` is a global binding as it is in the console.
      const joined = new Promise(resolve => {
        b.on("console", message => { if(message.text().startsWith("joined on ")){ resolve(message.text()) } })
      })
      await b.addScriptTag({content: consoleBlock})
      let timer
      const line = await Promise.race([joined, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the console block never logged its join")), STEP_MS)
      })]).finally(() => clearTimeout(timer))
      await until(a, v => v.messages.some(m => m.name === "console" && m.body === "hello from the console")
        && v.presence.some(p => p.name === "console"), "alice to see the console user and message")
      await b.evaluate(() => s.disconnect())  // eslint-disable-line no-undef: the block's socket
      await until(a, v => !v.presence.some(p => p.name === "console"), "the console user to leave")
      return {logged: line}
    }],
    ["crash_channel", async () => {
      await a.click("#crash-channel")
      await until(a, v => v.log.some(t => t.includes("channel crashed")), "alice's channel to crash")
      await until(a, (v, topic) => v.log.some(t => t.startsWith(`rejoined ${topic}`)) && v.channel_state === "joined",
        "alice's channel to rejoin", TOPIC)
      await say(a, "my channel crashed and I am still here")
      await until(b, v => v.messages.some(m => m.body === "my channel crashed and I am still here"), "bob to get it")
      return {log: (await view(a)).log}
    }],
    ["crash_socket", async () => {
      await b.click("#crash-socket")
      await until(b, v => v.log.some(t => t.startsWith("connection closed (code 1011)")), "bob's socket to close")
      await until(b, v => v.log.some(t => t.startsWith("socket reconnected")) && v.channel_state === "joined"
        && v.status === "connected", "bob to reconnect and rejoin")
      await say(b, "socket crashed, reconnected in a blink")
      await until(a, v => v.messages.some(m => m.body === "socket crashed, reconnected in a blink"), "alice to get it")
      return {log: (await view(b)).log}
    }],
    ["rooms", async () => {
      await a.fill("#room-input", "random")
      await a.press("#room-input", "Enter")
      await until(a, v => v.log.some(t => t.startsWith("joined room:random on ")), "alice to join room:random")
      await a.fill("#room-input", "no spaces!")
      await a.press("#room-input", "Enter")
      await until(a, v => v.log.some(t => t.startsWith("join room:no spaces! refused: room names are")),
        "the bad room name to be refused")
      const tabs = await a.$$eval("#room-list li", items => items.map(li => li.dataset.topic))
      await a.click('#room-list li[data-topic="room:lobby"]')
      await until(a, v => v.status === "connected" && v.presence.length === 2, "alice back in room:lobby")
      return {tabs, log: (await view(a)).log}
    }],
    ["kill_node", async () => {
      const before = await view(a)
      const seenByBob = (await view(b)).metas.filter(m => m.name === "alice").map(m => m.ref)
      await a.click("#kill-node")
      await until(a, v => v.log.some(t => t.startsWith("connection closed")), "alice's connection to drop")
      await until(a, (v, topic) => {
        const closed = v.log.findLastIndex(t => t.startsWith("connection closed"))
        const rejoined = v.log.findLastIndex(t => t.startsWith(`rejoined ${topic}`))
        return v.status === "connected" && rejoined > closed
      }, "alice to reconnect and rejoin", TOPIC)
      // Bob sees alice's old presence leave (once her node is found down) and a new one join.
      await until(b, (v, old) => {
        const refs = v.metas.filter(m => m.name === "alice").map(m => m.ref)
        return refs.length > 0 && refs.every(r => !old.includes(r))
      }, "bob to see alice leave and return", seenByBob)
      await say(a, "back after my node was killed")
      await until(b, v => v.messages.some(m => m.body === "back after my node was killed"), "bob to get alice's message after the kill")
      await say(b, "welcome back!")
      await until(a, v => v.messages.some(m => m.body === "welcome back!"), "alice to get bob's message after the kill")
      const after = await view(a)
      return {
        killed: before.node, node_after: after.node, status_after: after.status_text,
        alice_log: after.log, bob_log: (await view(b)).log, bob_metas: (await view(b)).metas,
        old_refs: seenByBob,
      }
    }],
    ["screenshot", async () => {
      await a.bringToFront()
      await a.screenshot({path: screenshot})
      return {path: screenshot}
    }],
  ]
  for(const [check, body] of steps){
    if(!await step(check, body)){ break }
  }
  emit("pages", {
    page_errors: pages.flatMap(p => p.pageErrors),
    console_api: await Promise.all(pages.map(p => view(p).then(v => v.console_ok))),
  })
}

async function main(){
  const browser = await launchChromium(executablePath)
  try {
    await scenario(browser)
  } finally {
    await browser.close()
  }
  emit("done", {})
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
