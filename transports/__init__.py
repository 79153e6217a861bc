"""alight.transports: the Transport API, WebSocket and long-poll, the HTTP endpoint."""
