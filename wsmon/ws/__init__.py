"""A WebSocket client that knows nothing of wsmon: framing, the opening handshake, a connection on
a plain ``asyncio.Protocol``, an explicit HTTP CONNECT proxy, TLS contexts and target URLs."""
