"""The WebSocket layer: the transport interface and its implementations."""
