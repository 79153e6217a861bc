// What every Node script of the conformance tests shares: the time unit, one JSON
// line per observation, a deadline that ends a stuck script, and a Waiter.
"use strict"

const UNIT = Number(process.env.ALIGHT_TEST_UNIT || "1")
const t0 = Date.now()

// One JSON line per observation: {"t", "check", ...fields}.
function emit(check, fields){
  process.stdout.write(JSON.stringify({t: Date.now() - t0, check, ...fields}) + "\n")
}

// Ends the script (exit 1, with an "error" line) if it runs past `ms`.
function startDeadline(ms){
  setTimeout(() => {
    emit("deadline", {error: `the script did not finish within ${ms} ms`})
    process.exit(1)
  }, ms).unref()
}

// Resolves `until(predicate)` once it holds, checked whenever `notify()` is called;
// rejects after `ms` (default: the one given to the constructor).
class Waiter {
  constructor(defaultMs){
    this.defaultMs = defaultMs
    this.waiting = []
  }
  until(predicate, what, ms = this.defaultMs){
    if(predicate()){ return Promise.resolve() }
    let resolve, timer
    const promise = new Promise((res, rej) => {
      resolve = res
      timer = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms)
    })
    this.waiting.push({predicate, resolve})
    return promise.finally(() => clearTimeout(timer))
  }
  notify(){
    this.waiting = this.waiting.filter(w => {
      if(w.predicate()){ w.resolve(); return false }
      return true
    })
  }
}

// Debian's chromium, headless, through playwright-core: the flags keep it quiet and off
// the network (no background services, no QUIC); close the browser in a finally block.
function launchChromium(executablePath){
  const {chromium} = require("playwright-core")
  return chromium.launch({
    executablePath,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 15000 * UNIT,
  })
}

module.exports = {UNIT, t0, emit, startDeadline, Waiter, launchChromium}
