// The official phoenix client through a TLS reverse proxy (docs/deploy.md, section 3):
// over wss:// and over long-poll (https://), it joins "info:proxy" and prints what the
// app replied (the client address it saw, the transport). The assertions are in
// tests/integration/test_deploy_guide.py; the proxy's certificate comes through
// NODE_EXTRA_CA_CERTS.
//
//   node behind_proxy.js HOST:PORT
"use strict"

const {Socket, LongPoll} = require("phoenix")
const WebSocket = require("ws")
const {UNIT, emit, startDeadline} = require("./_harness")

const [host] = process.argv.slice(2)
if(!host){
  console.error("usage: node behind_proxy.js HOST:PORT")
  process.exit(2)
}
const STEP_MS = 5000 * UNIT
startDeadline(20000 * UNIT)

function joinOver(name, transport){
  return new Promise(resolve => {
    const socket = new Socket(`wss://${host}/socket`, {transport, timeout: STEP_MS, reconnectAfterMs: () => 60000})
    socket.onError(error => emit(name, {error: String(error && (error.message || error.type) || error)}))
    socket.connect()
    const channel = socket.channel("info:proxy", {})
    channel.join()
      .receive("ok", reply => { emit(name, {reply}); socket.disconnect(); resolve() })
      .receive("error", reply => { emit(name, {error: reply}); socket.disconnect(); resolve() })
      .receive("timeout", () => { emit(name, {error: "join timed out"}); socket.disconnect(); resolve() })
  })
}

;(async () => {
  await joinOver("websocket", WebSocket)
  await joinOver("longpoll", LongPoll)
  emit("done", {})
  process.exit(0)
})()
