// alight.js's Presence with keys that name properties every object inherits
// ("constructor", "toString", "__proto__", ...): each is a presence like any other.
// Loads the script build into a fresh context (no browser needed: Presence is pure) and
// prints one JSON line per check: {"check", "names", "joined", "left"}, with "error"
// instead of "names" when the check threw.
"use strict"

const fs = require("fs")
const path = require("path")
const vm = require("vm")
const {emit} = require("./_harness")

const source = fs.readFileSync(path.join(__dirname, "..", "..", "channels", "static", "alight.js"), "utf8")
const context = {setTimeout, clearTimeout, console}
context.self = context
vm.createContext(context)
vm.runInContext(source, context)
const {Presence} = context.alight

const KEYS = ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf", "alice"]
const meta = (ref) => ({phx_ref: ref, device: "d-" + ref})
const presenceOf = (...refs) => ({metas: refs.map(meta)})
// What the server sends, as the client receives it: parsed JSON (own "__proto__" keys).
const wire = (obj) => JSON.parse(JSON.stringify(obj))

function run(check, body){
  const joined = [], left = []
  try {
    const names = body((key) => joined.push(key), (key) => left.push(key))
    emit(check, {names, joined, left})
  } catch(error){
    emit(check, {joined, left, error: String(error)})
  }
}

const fullState = {}
KEYS.forEach((key, i) => { Object.defineProperty(fullState, key, {value: presenceOf("r" + i), enumerable: true}) })

// A presence_state with every key, then a second device of each, then all leave.
run("state", (onJoin, onLeave) => {
  const state = Presence.syncState({}, wire(fullState), onJoin, onLeave)
  return Presence.list(state, (key) => key).sort()
})

run("diff_join_then_leave", (onJoin, onLeave) => {
  let state = Presence.syncState({}, wire(fullState))
  const second = {}
  KEYS.forEach((key, i) => { Object.defineProperty(second, key, {value: presenceOf("s" + i), enumerable: true}) })
  state = Presence.syncDiff(state, wire({joins: second, leaves: {}}), onJoin, onLeave)
  const devices = Presence.list(state, (key, p) => key + ":" + p.metas.length).sort()
  state = Presence.syncDiff(state, wire({joins: {}, leaves: second}))
  state = Presence.syncDiff(state, wire({joins: {}, leaves: fullState}), null, onLeave)
  return {devices, after: Presence.list(state, (key) => key)}
})

// A later full state without some keys: they leave.
run("resync", (onJoin, onLeave) => {
  const state = Presence.syncState({}, wire(fullState))
  const fewer = wire(fullState)
  delete fewer.constructor
  delete fewer.alice
  return Presence.list(Presence.syncState(state, fewer, onJoin, onLeave), (key) => key).sort()
})
