/*
 * alight.js: the browser client of alight (Phoenix Channels protocol, vsn 2.0.0).
 *
 * A plain script with no build step: it defines the global `alight` with `Socket`,
 * `Channel`, `Push` and `Presence`, with the API and wire behaviour of phoenix.js
 * for what it covers (WebSocket transport, JSON and binary frames).
 *
 *   const socket = new alight.Socket("/socket", {params: {token}})
 *   socket.connect()
 *   const channel = socket.channel("room:lobby", {})
 *   channel.on("shout", payload => console.log(payload))
 *   channel.join().receive("ok", resp => ...).receive("error", resp => ...)
 *   channel.push("ping", {}).receive("ok", resp => ...)
 *   const presence = new alight.Presence(channel)
 *   presence.onSync(() => render(presence.list()))
 *
 * Written from the protocol notes (PROTOCOL.md §1-§3, §6.4); served by every alight
 * endpoint at GET /alight.js.
 */
(function (root) {
  "use strict"

  var VSN = "2.0.0"
  var DEFAULT_TIMEOUT = 10000
  var WS_CLOSE_NORMAL = 1000
  var AUTH_TOKEN_PREFIX = "base64url.bearer.phx."
  var EVENTS = {
    close: "phx_close",
    error: "phx_error",
    join: "phx_join",
    reply: "phx_reply",
    leave: "phx_leave",
  }
  var LIFECYCLE = [EVENTS.close, EVENTS.error, EVENTS.join, EVENTS.reply, EVENTS.leave]
  var STATES = { closed: "closed", errored: "errored", joined: "joined", joining: "joining", leaving: "leaving" }

  function closure(value) {
    return typeof value === "function" ? value : function () { return value }
  }

  function noop() {}

  function clone(obj) {
    return JSON.parse(JSON.stringify(obj))
  }

  // -- query strings (phoenix's rules: nested keys in brackets, vsn last) ----------------

  function serialize(obj, parentKey) {
    var parts = []
    Object.keys(obj).forEach(function (key) {
      var value = obj[key]
      var name = parentKey ? parentKey + "[" + key + "]" : key
      if (value !== null && typeof value === "object") {
        parts.push(serialize(value, name))
      } else if (value === null) {
        parts.push("")
      } else {
        parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(value))
      }
    })
    return parts.join("&")
  }

  function appendParams(url, params) {
    if (Object.keys(params).length === 0) return url
    var prefix = url.indexOf("?") >= 0 ? "&" : "?"
    return url + prefix + serialize(params)
  }

  // -- backoff timer --------------------------------------------------------------------

  // Calls `callback` after `timerCalc(tries)` ms; each schedule counts one more try until
  // `reset`. `jitter` (0..1) takes up to that fraction off each delay at random, so that
  // many clients dropped together do not all come back in the same millisecond.
  function Timer(callback, timerCalc, jitter) {
    this.callback = callback
    this.timerCalc = timerCalc
    this.jitter = jitter || 0
    this.timer = null
    this.tries = 0
  }
  Timer.prototype.reset = function () {
    this.tries = 0
    clearTimeout(this.timer)
    this.timer = null
  }
  Timer.prototype.scheduleTimeout = function () {
    var self = this
    clearTimeout(this.timer)
    var delay = this.timerCalc(this.tries + 1)
    if (this.jitter > 0) delay = delay * (1 - this.jitter * Math.random())
    this.timer = setTimeout(function () {
      self.tries = self.tries + 1
      self.callback()
    }, delay)
  }

  // -- serializer (vsn 2.0.0) -------------------------------------------------------------

  var KIND_PUSH = 0
  var KIND_REPLY = 1
  var KIND_BROADCAST = 2
  var HEADER_LENGTH = 1
  var META_LENGTH = 4

  var Serializer = {
    encode: function (msg, callback) {
      if (msg.payload && msg.payload.constructor === ArrayBuffer) {
        return callback(this.binaryEncode(msg))
      }
      return callback(JSON.stringify([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload]))
    },
    decode: function (raw, callback) {
      if (raw && raw.constructor === ArrayBuffer) {
        return callback(this.binaryDecode(raw))
      }
      var arr = JSON.parse(raw)
      return callback({ join_ref: arr[0], ref: arr[1], topic: arr[2], event: arr[3], payload: arr[4] })
    },
    binaryEncode: function (msg) {
      var enc = new TextEncoder()
      var fields = [String(msg.join_ref), String(msg.ref), msg.topic, msg.event].map(function (s) {
        var bytes = enc.encode(s)
        if (bytes.length > 255) throw new Error("binary frame field too long: " + s)
        return bytes
      })
      var metaLength = META_LENGTH + fields.reduce(function (n, f) { return n + f.length }, 0)
      var header = new Uint8Array(HEADER_LENGTH + metaLength)
      header[0] = KIND_PUSH
      var offset = 1
      fields.forEach(function (f) { header[offset++] = f.length })
      fields.forEach(function (f) { header.set(f, offset); offset += f.length })
      var payload = new Uint8Array(msg.payload)
      var out = new Uint8Array(header.length + payload.length)
      out.set(header, 0)
      out.set(payload, header.length)
      return out.buffer
    },
    binaryDecode: function (buffer) {
      var view = new DataView(buffer)
      var dec = new TextDecoder()
      var kind = view.getUint8(0)
      var offset
      var read = function (len) {
        var s = dec.decode(buffer.slice(offset, offset + len))
        offset += len
        return s
      }
      if (kind === KIND_PUSH) {
        var jrLen = view.getUint8(1), tLen = view.getUint8(2), eLen = view.getUint8(3)
        offset = 4
        var joinRef = read(jrLen), topic = read(tLen), event = read(eLen)
        return { join_ref: joinRef, ref: null, topic: topic, event: event, payload: buffer.slice(offset) }
      }
      if (kind === KIND_REPLY) {
        var rjLen = view.getUint8(1), rLen = view.getUint8(2), rtLen = view.getUint8(3), sLen = view.getUint8(4)
        offset = 5
        var rJoinRef = read(rjLen), ref = read(rLen), rTopic = read(rtLen), status = read(sLen)
        return {
          join_ref: rJoinRef, ref: ref, topic: rTopic, event: EVENTS.reply,
          payload: { status: status, response: buffer.slice(offset) },
        }
      }
      if (kind === KIND_BROADCAST) {
        var bTLen = view.getUint8(1), bELen = view.getUint8(2)
        offset = 3
        var bTopic = read(bTLen), bEvent = read(bELen)
        return { join_ref: null, ref: null, topic: bTopic, event: bEvent, payload: buffer.slice(offset) }
      }
      throw new Error("unknown binary frame kind " + kind)
    },
  }

  // -- Push -----------------------------------------------------------------------------

  function Push(channel, event, payload, timeout) {
    this.channel = channel
    this.event = event
    this.payload = closure(payload || {})
    this.receivedResp = null
    this.timeout = timeout
    this.timeoutTimer = null
    this.recHooks = []
    this.sent = false
    this.ref = null
    this.refEvent = null
  }
  Push.prototype.resend = function (timeout) {
    this.timeout = timeout
    this.reset()
    this.send()
  }
  Push.prototype.send = function () {
    if (this.hasReceived("timeout")) return
    this.startTimeout()
    this.sent = true
    this.channel.socket.push({
      topic: this.channel.topic,
      event: this.event,
      payload: this.payload(),
      ref: this.ref,
      join_ref: this.channel.joinRef(),
    })
  }
  Push.prototype.receive = function (status, callback) {
    if (this.hasReceived(status)) callback(this.receivedResp.response)
    this.recHooks.push({ status: status, callback: callback })
    return this
  }
  Push.prototype.reset = function () {
    this.cancelRefEvent()
    this.ref = null
    this.refEvent = null
    this.receivedResp = null
    this.sent = false
  }
  Push.prototype.matchReceive = function (resp) {
    this.recHooks
      .filter(function (h) { return h.status === resp.status })
      .forEach(function (h) { h.callback(resp.response) })
  }
  Push.prototype.cancelRefEvent = function () {
    if (this.refEvent) this.channel.off(this.refEvent)
  }
  Push.prototype.cancelTimeout = function () {
    clearTimeout(this.timeoutTimer)
    this.timeoutTimer = null
  }
  Push.prototype.startTimeout = function () {
    var self = this
    if (this.timeoutTimer) this.cancelTimeout()
    this.ref = this.channel.socket.makeRef()
    this.refEvent = this.channel.replyEventName(this.ref)
    this.channel.on(this.refEvent, function (payload) {
      self.cancelRefEvent()
      self.cancelTimeout()
      self.receivedResp = payload
      self.matchReceive(payload)
    })
    this.timeoutTimer = setTimeout(function () { self.trigger("timeout", {}) }, this.timeout)
  }
  Push.prototype.hasReceived = function (status) {
    return !!(this.receivedResp && this.receivedResp.status === status)
  }
  Push.prototype.trigger = function (status, response) {
    this.channel.trigger(this.refEvent, { status: status, response: response })
  }

  // -- Channel --------------------------------------------------------------------------

  function Channel(topic, params, socket) {
    var self = this
    this.state = STATES.closed
    this.topic = topic
    this.params = closure(params || {})
    this.socket = socket
    this.bindings = []
    this.bindingRef = 0
    this.timeout = socket.timeout
    this.joinedOnce = false
    this.joinPush = new Push(this, EVENTS.join, this.params, this.timeout)
    this.pushBuffer = []
    this.stateChangeRefs = []
    this.rejoinTimer = new Timer(function () {
      if (self.socket.isConnected()) self.rejoin()
    }, socket.rejoinAfterMs)
    this.stateChangeRefs.push(socket.onError(function () { self.rejoinTimer.reset() }))
    this.stateChangeRefs.push(
      socket.onOpen(function () {
        self.rejoinTimer.reset()
        if (self.isErrored()) self.rejoin()
      })
    )
    this.joinPush.receive("ok", function () {
      self.state = STATES.joined
      self.rejoinTimer.reset()
      self.pushBuffer.forEach(function (p) { p.send() })
      self.pushBuffer = []
    })
    this.joinPush.receive("error", function () {
      self.state = STATES.errored
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.onClose(function () {
      self.rejoinTimer.reset()
      self.state = STATES.closed
      self.socket.remove(self)
    })
    this.onError(function () {
      if (self.isLeaving() || self.isClosed()) return
      if (self.isJoining()) self.joinPush.reset()
      self.state = STATES.errored
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.joinPush.receive("timeout", function () {
      var leavePush = new Push(self, EVENTS.leave, closure({}), self.timeout)
      leavePush.send()
      self.state = STATES.errored
      self.joinPush.reset()
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.on(EVENTS.reply, function (payload, ref) {
      self.trigger(self.replyEventName(ref), payload)
    })
  }
  Channel.prototype.join = function (timeout) {
    if (this.joinedOnce) {
      throw new Error("tried to join multiple times. 'join' can only be called a single time per channel instance")
    }
    this.timeout = timeout === undefined ? this.timeout : timeout
    this.joinedOnce = true
    this.rejoin()
    return this.joinPush
  }
  Channel.prototype.onClose = function (callback) {
    return this.on(EVENTS.close, callback)
  }
  Channel.prototype.onError = function (callback) {
    return this.on(EVENTS.error, function (reason) { callback(reason) })
  }
  Channel.prototype.on = function (event, callback) {
    var ref = this.bindingRef++
    this.bindings.push({ event: event, ref: ref, callback: callback })
    return ref
  }
  Channel.prototype.off = function (event, ref) {
    this.bindings = this.bindings.filter(function (b) {
      return !(b.event === event && (ref === undefined || ref === b.ref))
    })
  }
  Channel.prototype.canPush = function () {
    return this.socket.isConnected() && this.isJoined()
  }
  Channel.prototype.push = function (event, payload, timeout) {
    payload = payload || {}
    if (!this.joinedOnce) {
      throw new Error("tried to push '" + event + "' to '" + this.topic + "' before joining. Use channel.join() before pushing events")
    }
    var push = new Push(this, event, function () { return payload }, timeout === undefined ? this.timeout : timeout)
    if (this.canPush()) {
      push.send()
    } else {
      push.startTimeout()
      this.pushBuffer.push(push)
    }
    return push
  }
  Channel.prototype.leave = function (timeout) {
    var self = this
    timeout = timeout === undefined ? this.timeout : timeout
    this.rejoinTimer.reset()
    this.joinPush.cancelTimeout()
    this.state = STATES.leaving
    var onClose = function () { self.trigger(EVENTS.close, "leave") }
    var leavePush = new Push(this, EVENTS.leave, closure({}), timeout)
    leavePush.receive("ok", onClose).receive("timeout", onClose)
    leavePush.send()
    if (!this.canPush()) leavePush.trigger("ok", {})
    return leavePush
  }
  Channel.prototype.onMessage = function (event, payload) {
    return payload
  }
  Channel.prototype.isMember = function (topic, event, payload, joinRef) {
    if (this.topic !== topic) return false
    if (joinRef && joinRef !== this.joinRef()) return false
    return true
  }
  Channel.prototype.joinRef = function () {
    return this.joinPush.ref
  }
  Channel.prototype.rejoin = function (timeout) {
    if (this.isLeaving()) return
    this.socket.leaveOpenTopic(this.topic)
    this.state = STATES.joining
    this.joinPush.resend(timeout === undefined ? this.timeout : timeout)
  }
  Channel.prototype.trigger = function (event, payload, ref, joinRef) {
    var handled = this.onMessage(event, payload, ref, joinRef)
    if (payload && !handled) {
      throw new Error("channel onMessage callbacks must return the payload, modified or unmodified")
    }
    var bindings = this.bindings.filter(function (b) { return b.event === event })
    for (var i = 0; i < bindings.length; i++) {
      bindings[i].callback(handled, ref, joinRef || this.joinRef())
    }
  }
  Channel.prototype.replyEventName = function (ref) {
    return "chan_reply_" + ref
  }
  Channel.prototype.isClosed = function () { return this.state === STATES.closed }
  Channel.prototype.isErrored = function () { return this.state === STATES.errored }
  Channel.prototype.isJoined = function () { return this.state === STATES.joined }
  Channel.prototype.isJoining = function () { return this.state === STATES.joining }
  Channel.prototype.isLeaving = function () { return this.state === STATES.leaving }

  // -- Socket ---------------------------------------------------------------------------

  function Socket(endPoint, opts) {
    var self = this
    opts = opts || {}
    this.stateChangeCallbacks = { open: [], close: [], error: [], message: [] }
    this.channels = []
    this.sendBuffer = []
    this.ref = 0
    this.timeout = opts.timeout || DEFAULT_TIMEOUT
    this.transport = opts.transport || root.WebSocket
    this.encode = opts.encode || function (msg, cb) { return Serializer.encode(msg, cb) }
    this.decode = opts.decode || function (raw, cb) { return Serializer.decode(raw, cb) }
    this.binaryType = opts.binaryType || "arraybuffer"
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || 30000
    this.rejoinAfterMs = function (tries) {
      if (opts.rejoinAfterMs) return opts.rejoinAfterMs(tries)
      return [1000, 2000, 5000][tries - 1] || 10000
    }
    this.reconnectAfterMs = function (tries) {
      if (opts.reconnectAfterMs) return opts.reconnectAfterMs(tries)
      return [10, 50, 100, 150, 200, 250, 500, 1000, 2000][tries - 1] || 5000
    }
    this.reconnectJitter = opts.reconnectJitter === undefined ? 0.5 : opts.reconnectJitter
    this.logger = opts.logger || null
    this.params = closure(opts.params || {})
    this.endPoint = endPoint + "/websocket"
    this.vsn = opts.vsn || VSN
    this.authToken = opts.authToken
    this.heartbeatTimer = null
    this.heartbeatTimeoutTimer = null
    this.pendingHeartbeatRef = null
    this.closeWasClean = false
    this.conn = null
    this.reconnectTimer = new Timer(
      function () { self.teardown(function () { self.connect() }) },
      this.reconnectAfterMs,
      this.reconnectJitter
    )
  }
  Socket.prototype.protocol = function () {
    return root.location && root.location.protocol.match(/^https/) ? "wss" : "ws"
  }
  Socket.prototype.endPointURL = function () {
    var params = this.params()
    var query = {}
    Object.keys(params).forEach(function (k) { query[k] = params[k] })
    query.vsn = this.vsn
    var uri = appendParams(this.endPoint, query)
    if (uri.charAt(0) !== "/") return uri
    if (uri.charAt(1) === "/") return this.protocol() + ":" + uri
    return this.protocol() + "://" + root.location.host + uri
  }
  Socket.prototype.log = function (kind, msg, data) {
    if (this.logger) this.logger(kind, msg, data)
  }
  Socket.prototype.hasLogger = function () {
    return this.logger !== null
  }
  Socket.prototype.connect = function (params) {
    var self = this
    if (params) this.params = closure(params)
    if (this.conn) return
    this.closeWasClean = false
    var protocols
    if (this.authToken) {
      protocols = ["phoenix", AUTH_TOKEN_PREFIX + btoa(this.authToken).replace(/=/g, "")]
    }
    var conn = protocols ? new this.transport(this.endPointURL(), protocols) : new this.transport(this.endPointURL())
    this.conn = conn
    conn.binaryType = this.binaryType
    conn.onopen = function () { self.onConnOpen() }
    conn.onerror = function (error) { self.onConnError(error) }
    conn.onmessage = function (event) { self.onConnMessage(event) }
    conn.onclose = function (event) { self.onConnClose(event) }
  }
  Socket.prototype.disconnect = function (callback, code, reason) {
    this.closeWasClean = true
    this.clearHeartbeat()
    this.reconnectTimer.reset()
    this.teardown(callback, code, reason)
  }
  Socket.prototype.teardown = function (callback, code, reason) {
    callback = callback || noop
    var conn = this.conn
    if (!conn) return callback()
    this.conn = null
    conn.onopen = noop
    conn.onerror = noop
    conn.onmessage = noop
    conn.onclose = noop
    if (conn.readyState === 0 || conn.readyState === 1) {
      if (code) conn.close(code, reason || "")
      else conn.close()
    }
    callback()
  }
  Socket.prototype.onOpen = function (callback) { return this.addCallback("open", callback) }
  Socket.prototype.onClose = function (callback) { return this.addCallback("close", callback) }
  Socket.prototype.onError = function (callback) { return this.addCallback("error", callback) }
  Socket.prototype.onMessage = function (callback) { return this.addCallback("message", callback) }
  Socket.prototype.addCallback = function (kind, callback) {
    var ref = this.makeRef()
    this.stateChangeCallbacks[kind].push([ref, callback])
    return ref
  }
  Socket.prototype.off = function (refs) {
    var callbacks = this.stateChangeCallbacks
    Object.keys(callbacks).forEach(function (kind) {
      callbacks[kind] = callbacks[kind].filter(function (entry) { return refs.indexOf(entry[0]) === -1 })
    })
  }
  Socket.prototype.runCallbacks = function (kind, args) {
    this.stateChangeCallbacks[kind].slice().forEach(function (entry) { entry[1].apply(null, args) })
  }
  Socket.prototype.ping = function (callback) {
    if (!this.isConnected()) return false
    var self = this
    var ref = this.makeRef()
    var start = Date.now()
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: ref })
    var onMsgRef = this.onMessage(function (msg) {
      if (msg.ref === ref) {
        self.off([onMsgRef])
        callback(Date.now() - start)
      }
    })
    return true
  }
  Socket.prototype.onConnOpen = function () {
    this.log("transport", "connected to " + this.endPointURL())
    this.closeWasClean = false
    this.flushSendBuffer()
    this.reconnectTimer.reset()
    this.resetHeartbeat()
    this.runCallbacks("open", [])
  }
  Socket.prototype.onConnClose = function (event) {
    this.log("transport", "close", event)
    this.triggerChanError("connection_closed")
    this.clearHeartbeat()
    if (!this.closeWasClean) this.reconnectTimer.scheduleTimeout()
    this.runCallbacks("close", [event])
  }
  Socket.prototype.onConnError = function (error) {
    this.log("transport", "error", error)
    this.runCallbacks("error", [error])
    this.triggerChanError("connection_error")
  }
  Socket.prototype.triggerChanError = function (reason) {
    this.channels.slice().forEach(function (channel) {
      if (!(channel.isErrored() || channel.isLeaving() || channel.isClosed())) {
        channel.trigger(EVENTS.error, { source: "transport", reason: reason })
      }
    })
  }
  Socket.prototype.connectionState = function () {
    switch (this.conn && this.conn.readyState) {
      case 0: return "connecting"
      case 1: return "open"
      case 2: return "closing"
      default: return "closed"
    }
  }
  Socket.prototype.isConnected = function () {
    return this.connectionState() === "open"
  }
  Socket.prototype.remove = function (channel) {
    this.off(channel.stateChangeRefs)
    this.channels = this.channels.filter(function (c) { return c !== channel })
  }
  Socket.prototype.channel = function (topic, chanParams) {
    var chan = new Channel(topic, chanParams || {}, this)
    this.channels.push(chan)
    return chan
  }
  Socket.prototype.push = function (data) {
    var self = this
    var send = function () {
      self.encode(data, function (result) { self.conn.send(result) })
    }
    if (this.isConnected()) send()
    else this.sendBuffer.push({ joinRef: data.join_ref, topic: data.topic, send: send })
  }
  Socket.prototype.flushSendBuffer = function () {
    var self = this
    var buffer = this.sendBuffer
    this.sendBuffer = []
    buffer.forEach(function (entry) {
      // A push buffered for an earlier join of a channel is stale: drop it.
      var stale = self.channels.some(function (c) {
        return c.topic === entry.topic && entry.joinRef && c.joinRef() && c.joinRef() !== entry.joinRef
      })
      if (!stale && self.isConnected()) entry.send()
    })
  }
  Socket.prototype.makeRef = function () {
    var newRef = this.ref + 1
    this.ref = newRef === Number.MAX_SAFE_INTEGER ? 0 : newRef
    return this.ref.toString()
  }
  Socket.prototype.leaveOpenTopic = function (topic) {
    var dup = this.channels.find(function (c) { return c.topic === topic && (c.isJoined() || c.isJoining()) })
    if (dup) dup.leave()
  }

  // heartbeat: one in flight at a time; a missing reply closes and reconnects
  Socket.prototype.clearHeartbeat = function () {
    clearTimeout(this.heartbeatTimer)
    clearTimeout(this.heartbeatTimeoutTimer)
    this.heartbeatTimer = null
    this.heartbeatTimeoutTimer = null
  }
  Socket.prototype.resetHeartbeat = function () {
    var self = this
    this.pendingHeartbeatRef = null
    this.clearHeartbeat()
    this.heartbeatTimer = setTimeout(function () { self.sendHeartbeat() }, this.heartbeatIntervalMs)
  }
  Socket.prototype.sendHeartbeat = function () {
    var self = this
    if (!this.isConnected()) return
    this.pendingHeartbeatRef = this.makeRef()
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: this.pendingHeartbeatRef })
    this.heartbeatTimeoutTimer = setTimeout(function () { self.heartbeatTimeout() }, this.heartbeatIntervalMs)
  }
  Socket.prototype.heartbeatTimeout = function () {
    var self = this
    if (!this.pendingHeartbeatRef) return
    this.pendingHeartbeatRef = null
    this.log("transport", "heartbeat timeout. Attempting to re-establish connection")
    this.triggerChanError("heartbeat_timeout")
    this.clearHeartbeat()
    this.closeWasClean = false
    this.teardown(function () {
      self.runCallbacks("close", [{ code: WS_CLOSE_NORMAL, reason: "heartbeat timeout" }])
      self.reconnectTimer.scheduleTimeout()
    }, WS_CLOSE_NORMAL, "heartbeat timeout")
  }
  Socket.prototype.onConnMessage = function (rawMessage) {
    var self = this
    this.decode(rawMessage.data, function (msg) {
      if (msg.ref && msg.ref === self.pendingHeartbeatRef) {
        clearTimeout(self.heartbeatTimeoutTimer)
        self.heartbeatTimeoutTimer = null
        self.pendingHeartbeatRef = null
        self.heartbeatTimer = setTimeout(function () { self.sendHeartbeat() }, self.heartbeatIntervalMs)
      }
      self.log("receive", (msg.payload && msg.payload.status || "") + " " + msg.topic + " " + msg.event, msg.payload)
      var channels = self.channels.slice()
      for (var i = 0; i < channels.length; i++) {
        var channel = channels[i]
        if (!channel.isMember(msg.topic, msg.event, msg.payload, msg.join_ref)) continue
        channel.trigger(msg.event, msg.payload, msg.ref, msg.join_ref)
      }
      self.runCallbacks("message", [msg])
    })
  }

  // -- Presence -------------------------------------------------------------------------

  function Presence(channel, opts) {
    var self = this
    opts = opts || {}
    var events = opts.events || { state: "presence_state", diff: "presence_diff" }
    this.state = {}
    this.pendingDiffs = []
    this.channel = channel
    this.joinRef = null
    this.caller = { onJoin: noop, onLeave: noop, onSync: noop }
    channel.on(events.state, function (newState) {
      var caller = self.caller
      self.joinRef = self.channel.joinRef()
      self.state = Presence.syncState(self.state, newState, caller.onJoin, caller.onLeave)
      self.pendingDiffs.forEach(function (diff) {
        self.state = Presence.syncDiff(self.state, diff, caller.onJoin, caller.onLeave)
      })
      self.pendingDiffs = []
      caller.onSync()
    })
    channel.on(events.diff, function (diff) {
      var caller = self.caller
      if (self.inPendingSyncState()) {
        self.pendingDiffs.push(diff)
      } else {
        self.state = Presence.syncDiff(self.state, diff, caller.onJoin, caller.onLeave)
        caller.onSync()
      }
    })
  }
  Presence.prototype.onJoin = function (callback) { this.caller.onJoin = callback }
  Presence.prototype.onLeave = function (callback) { this.caller.onLeave = callback }
  Presence.prototype.onSync = function (callback) { this.caller.onSync = callback }
  Presence.prototype.list = function (by) { return Presence.list(this.state, by) }
  Presence.prototype.inPendingSyncState = function () {
    return !this.joinRef || this.joinRef !== this.channel.joinRef()
  }

  function refsOf(presence) {
    return presence.metas.map(function (m) { return m.phx_ref })
  }

  // The new state after a full `presence_state`: keys and metas missing from it leave,
  // new ones join (compared by phx_ref).
  Presence.syncState = function (currentState, newState, onJoin, onLeave) {
    var state = clone(currentState)
    var joins = {}
    var leaves = {}
    Object.keys(state).forEach(function (key) {
      if (!Object.prototype.hasOwnProperty.call(newState, key)) leaves[key] = state[key]
    })
    Object.keys(newState).forEach(function (key) {
      var newPresence = newState[key]
      var current = state[key]
      if (current) {
        var newRefs = refsOf(newPresence)
        var curRefs = refsOf(current)
        var joined = newPresence.metas.filter(function (m) { return curRefs.indexOf(m.phx_ref) < 0 })
        var left = current.metas.filter(function (m) { return newRefs.indexOf(m.phx_ref) < 0 })
        if (joined.length > 0) {
          joins[key] = clone(newPresence)
          joins[key].metas = clone(joined)
        }
        if (left.length > 0) {
          leaves[key] = clone(current)
          leaves[key].metas = clone(left)
        }
      } else {
        joins[key] = newPresence
      }
    })
    return Presence.syncDiff(state, { joins: joins, leaves: leaves }, onJoin, onLeave)
  }

  // Applies a `presence_diff` to `state` (in place, and returns it): joins first, then leaves.
  Presence.syncDiff = function (state, diff, onJoin, onLeave) {
    var d = clone(diff)
    var joins = d.joins || {}
    var leaves = d.leaves || {}
    onJoin = onJoin || noop
    onLeave = onLeave || noop
    Object.keys(joins).forEach(function (key) {
      var newPresence = joins[key]
      var current = state[key]
      state[key] = clone(newPresence)
      if (current) {
        var joinedRefs = refsOf(state[key])
        var kept = current.metas.filter(function (m) { return joinedRefs.indexOf(m.phx_ref) < 0 })
        state[key].metas = kept.concat(state[key].metas)
      }
      onJoin(key, current, newPresence)
    })
    Object.keys(leaves).forEach(function (key) {
      var left = leaves[key]
      var current = state[key]
      if (!current) return
      var refsToRemove = refsOf(left)
      current.metas = current.metas.filter(function (m) { return refsToRemove.indexOf(m.phx_ref) < 0 })
      onLeave(key, current, left)
      if (current.metas.length === 0) delete state[key]
    })
    return state
  }

  Presence.list = function (presences, chooser) {
    chooser = chooser || function (key, presence) { return presence }
    return Object.getOwnPropertyNames(presences).map(function (key) { return chooser(key, presences[key]) })
  }

  root.alight = {
    Socket: Socket,
    Channel: Channel,
    Push: Push,
    Presence: Presence,
    Serializer: Serializer,
    vsn: VSN,
  }
})(typeof self !== "undefined" ? self : typeof window !== "undefined" ? window : this)
