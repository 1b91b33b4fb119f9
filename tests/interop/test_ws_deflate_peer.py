"""Node's ``ws`` client (the WebSocket of ocpp-ws-io, ocpp-rpc and most station simulators) against our server's permessage-deflate.

``ws`` offers permessage-deflate on every connection and, as its documentation
says of its ``threshold``, leaves small messages uncompressed only when no
context takeover was negotiated; with context takeover it compresses every
message.  Our server asks for no context takeover by default, so a Heartbeat
from such a station arrives uncompressed and the server never inflates it.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ocpp_trio import HandlerContext, OCPPConnection, serve_ocpp
from ocpp_trio._websocket.deflate import LazyDeflate
from ocpp_trio._websocket.driver import WSTransport

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

#: Sends 5 Heartbeats (small) and one DataTransfer of 8,000 bytes (big), one at
#: a time, then prints the extensions ws negotiated and closes.
STATION = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1], ['ocpp1.6']);
let n = 0;
const big = 'x'.repeat(8000);
function next() {
    n += 1;
    if (n <= 5) ws.send(JSON.stringify([2, String(n), 'Heartbeat', {}]));
    else if (n === 6) ws.send(JSON.stringify([2, '6', 'DataTransfer', {vendorId: 'V', data: big}]));
    else { process.stdout.write(JSON.stringify({extensions: ws.extensions}) + '\n'); ws.close(1000); }
}
ws.on('open', next);
ws.on('message', next);
ws.on('error', (e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
"""


def _inflater_made(conn: OCPPConnection) -> bool:
    """Whether the server's permessage-deflate made a decompressor for this connection so far."""
    transport = conn._link.transport
    assert isinstance(transport, WSTransport)
    (extension,) = transport._proto.extensions
    assert isinstance(extension, LazyDeflate)
    return "decoder" in vars(extension)


@pytest.mark.parametrize("context_takeover", [False, True])
async def test_ws_sends_small_messages_uncompressed_unless_context_takeover(
    context_takeover: bool,
) -> None:
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.fail("ws is not installed: run `make node-deps` (make test does)")
    seen: list[tuple[str, bool]] = []

    async def on_station(conn: OCPPConnection) -> None:
        def record(ctx: HandlerContext) -> dict[str, Any]:
            # Before this message the inflater exists only if an earlier one was compressed.
            seen.append((ctx.method, _inflater_made(conn)))
            if ctx.method == "Heartbeat":
                return {"currentTime": "2026-12-02T00:00:00Z"}
            return {"status": "Accepted"}

        conn.handle("Heartbeat", record)
        conn.handle("DataTransfer", record)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve_ocpp,
                    on_station,
                    0,
                    host="127.0.0.1",
                    protocols=["ocpp1.6"],
                    compression_context_takeover=context_takeover,
                )
            )
            result = await trio.run_process(
                [NODE, "-e", STATION, f"ws://127.0.0.1:{server.port}/CP1"],
                capture_stdout=True,
                capture_stderr=True,
                env={"NODE_PATH": str(NODE_DIR / "node_modules"), "PATH": "/usr/bin:/bin"},
                check=False,
            )
            assert result.returncode == 0, result.stderr.decode()
            nursery.cancel_scope.cancel()
    extensions = json.loads(result.stdout)["extensions"]
    assert "permessage-deflate" in extensions
    assert [method for method, _ in seen] == ["Heartbeat"] * 5 + ["DataTransfer"]
    if context_takeover:
        # ws compresses every message: the first Heartbeat already needed inflating
        assert all(made for _, made in seen)
    else:
        # the Heartbeats came uncompressed: nothing was inflated before the big message
        assert not any(made for _, made in seen)
