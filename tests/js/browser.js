// The phoenix client inside headless Chromium (driven by playwright-core) against the
// reference app: join, ping and shout over WebSocket and over long-poll. The assertions
// are in tests/integration/test_browser.py.
//
//   node browser.js PAGE_URL APP_HOST:PORT [CHROMIUM]
//
// PAGE_URL is a page that loads phoenix.js (window.Phoenix). Prints one JSON line per
// transport: {"check": "websocket"|"longpoll", ...what the page saw}.
"use strict"


const [pageUrl, host, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")
const STEP_MS = 3000 * UNIT
const DEADLINE_MS = 40000 * UNIT

startDeadline(DEADLINE_MS)

// Runs in the page.
async function scenario({host, transport, stepMs}){
  const {Socket, LongPoll} = window.Phoenix
  const within = (promise, what) => {
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), stepMs)
    })
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
  }
  const reply = (push, what) => within(new Promise(resolve => {
    push.receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => resolve({status: "timeout"}))
  }), what)
  const open = user => {
    const socket = new Socket(`ws://${host}/socket`, {
      params: {user_id: user},
      transport: transport === "longpoll" ? LongPoll : window.WebSocket,
      timeout: stepMs,
    })
    const opened = new Promise(resolve => socket.onOpen(resolve))
    socket.connect()
    return within(opened, `${user} open`).then(() => socket)
  }
  const out = {user_agent: navigator.userAgent, page_origin: location.origin}
  const a = await open("browser-a")
  const b = await open("browser-b")
  out.transport = a.transport === LongPoll ? "LongPoll" : a.transport.name
  const room = a.channel("room:browser", {device: "chromium"})
  const roomB = b.channel("room:browser")
  const shouts = {a: [], b: []}
  const heard = {}
  heard.a = new Promise(resolve => room.on("shout", p => { shouts.a.push(p); resolve() }))
  heard.b = new Promise(resolve => roomB.on("shout", p => { shouts.b.push(p); resolve() }))
  out.join = await reply(room.join(), "join")
  out.join_b = await reply(roomB.join(), "join of b")
  out.ping = await reply(room.push("ping", {from: "the browser"}), "ping")
  room.push("shout", {msg: "from chromium"})
  await within(Promise.all([heard.a, heard.b]), "shouts")
  out.shouts = shouts
  out.user = await reply(room.push("user", {}), "user")
  a.disconnect()
  b.disconnect()
  return out
}

async function main(){
  const browser = await launchChromium(executablePath)
  try {
    for(const transport of ["websocket", "longpoll"]){
      const page = await browser.newPage()
      const consoleErrors = []
      page.on("console", message => { if(message.type() === "error"){ consoleErrors.push(message.text()) } })
      page.on("pageerror", error => consoleErrors.push(String(error)))
      try {
        await page.goto(pageUrl, {timeout: STEP_MS})
        const seen = await page.evaluate(scenario, {host, transport, stepMs: STEP_MS})
        emit(transport, {...seen, console_errors: consoleErrors})
      } catch(error){
        emit(transport, {error: String(error && error.message || error), console_errors: consoleErrors})
      } finally {
        await page.close()
      }
    }
  } finally {
    await browser.close()
  }
  emit("done", {})
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
