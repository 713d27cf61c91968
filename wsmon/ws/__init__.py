"""A WebSocket client that knows nothing of wsmon: framing, the opening handshake, a connection on
a plain ``asyncio.Protocol``, a transport that stamps what it reads with the kernel's arrival time,
an explicit HTTP CONNECT proxy, TLS contexts and target URLs."""
